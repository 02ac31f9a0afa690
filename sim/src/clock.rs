//! Clocks (`time_ns`, `wall_ns`).
//!
//! `time_ns` is `CLOCK_MONOTONIC`, the same clock [`std::time::Instant`]
//! uses on Linux, so kernel time and timer deadlines agree.

use std::ffi::c_ulonglong;

use crate::ffi::guard;

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; the clock ids used here always
    // exist on Linux.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc != 0 {
        crate::ffi::fatal("clock_gettime failed");
    }
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// Nanoseconds of `CLOCK_MONOTONIC`.
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// Nanoseconds since the Unix epoch (`CLOCK_REALTIME`).
pub fn realtime_ns() -> u64 {
    clock_ns(libc::CLOCK_REALTIME)
}

/// `time_ns`: host monotonic clock in nanoseconds.
///
/// # Safety
///
/// Always safe to call; `unsafe` only to match the ops table type.
pub unsafe extern "C" fn time_ns() -> c_ulonglong {
    guard("time_ns", monotonic_ns)
}

/// `wall_ns`: host real-time clock in nanoseconds since the epoch.
///
/// # Safety
///
/// Always safe to call; `unsafe` only to match the ops table type.
pub unsafe extern "C" fn wall_ns() -> c_ulonglong {
    guard("wall_ns", realtime_ns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    #[test]
    fn monotonic_advances_with_sleep() {
        // SAFETY: always safe.
        let a = unsafe { time_ns() };
        std::thread::sleep(Duration::from_millis(20));
        // SAFETY: always safe.
        let b = unsafe { time_ns() };
        // A sleep may last longer, never shorter.
        assert!(b - a >= 20_000_000, "{a} -> {b}");
    }

    #[test]
    fn wall_matches_system_time() {
        let sys = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        // SAFETY: always safe.
        let wall = unsafe { wall_ns() };
        let after = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        // The same clock (CLOCK_REALTIME), read between two readings of
        // it; nothing sets it meanwhile on a test machine.
        assert!(sys <= wall && wall <= after, "{sys} {wall} {after}");
        assert!(wall > 1_600_000_000 * 1_000_000_000);
    }

    #[test]
    fn monotonic_agrees_with_instant() {
        // Instant is CLOCK_MONOTONIC on Linux: a span of one clock lies
        // between the spans of the other read just inside and outside it.
        let a0 = monotonic_ns();
        let i = std::time::Instant::now();
        let a1 = monotonic_ns();
        std::thread::sleep(Duration::from_millis(10));
        let b0 = monotonic_ns();
        let e = i.elapsed().as_nanos() as u64;
        let b1 = monotonic_ns();
        assert!(b0 - a1 <= e && e <= b1 - a0, "{a0} {a1} {b0} {e} {b1}");
    }
}
