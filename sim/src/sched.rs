//! How the host's scheduler runs the kernel's threads: in short slices.
//!
//! A CPU of the library kernel passes from host thread to host thread: a
//! context switch, a timer interrupt or a new kthread wakes one thread and
//! puts the current one to sleep, about 125 times in a default boot. On an
//! idle host the woken thread runs at once. On a busy one (the parallel
//! tests of `cargo test`, a build beside it) it waits in the host's run
//! queue until the task running there has used its slice, some
//! milliseconds each time, although the kernel had work for the host CPU
//! that was just given up. Measured by `bench` with a thread spinning on
//! each core of a 2-core machine: a default boot took 81 ms instead of
//! 6.5 ms.
//!
//! Linux 6.12's EEVDF scheduler lets a thread ask for a shorter slice
//! (`sched_setattr(2)`, `sched_runtime` on a `SCHED_OTHER` thread, 0.1 ms
//! at least). A thread with a shorter slice gets an earlier virtual
//! deadline when it wakes, so it is run first, and may preempt a thread
//! with a longer one; its share of the CPU, set by its weight, does not
//! change. Every thread started by [`crate::thread`] (the kernel's tasks
//! and timers) asks for [`SHORT_SLICE_NS`] as it starts; on the same
//! busy machine a default boot then takes 33 ms. Threads of the host
//! program (a test's, `main`) are left as they are.
//!
//! Hosts that cannot (Linux before 6.12 takes the request and ignores it;
//! real-time and deadline threads are not touched) run as before.
//! [`set_short_slices`] turns the request off, for comparisons (`bench`).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

/// The slice the kernel's host threads ask for, in nanoseconds: the
/// shortest that Linux grants.
pub const SHORT_SLICE_NS: u64 = 100_000;

/// Whether new threads ask for [`SHORT_SLICE_NS`].
static SHORT_SLICES: AtomicBool = AtomicBool::new(true);

/// `struct sched_attr` of `sched_setattr(2)`, as first defined (48 bytes,
/// `SCHED_ATTR_SIZE_VER0`).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

const SCHED_OTHER: u32 = 0;
const SCHED_BATCH: u32 = 3;
const SCHED_FLAG_RESET_ON_FORK: u64 = 1;

fn getattr(tid: libc::pid_t) -> io::Result<SchedAttr> {
    let mut attr = SchedAttr::default();
    // SAFETY: the kernel writes at most `size_of::<SchedAttr>()` bytes to
    // `attr`, which is that big and writable.
    let r = unsafe {
        libc::syscall(
            libc::SYS_sched_getattr,
            tid,
            &mut attr as *mut SchedAttr,
            std::mem::size_of::<SchedAttr>() as libc::c_uint,
            0 as libc::c_uint,
        )
    };
    if r == 0 {
        Ok(attr)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The slice host thread `tid` (0: the calling thread) runs in, in
/// nanoseconds, as `sched_getattr(2)` reports it: 0 on a host whose
/// scheduler has no slices to report (before Linux 6.12).
pub fn slice_of(tid: libc::pid_t) -> io::Result<u64> {
    getattr(tid).map(|a| a.runtime)
}

/// The scheduling a thread inherits from the thread that starts it:
/// policy, nice value and slice. See [`inheritable`].
#[derive(Debug, Clone, Copy)]
pub struct Inherited(SchedAttr);

/// The calling thread's scheduling, for a thread started earlier (a spare
/// of [`crate::thread`]) that runs work on its behalf to take on with
/// [`take_on`], as a thread it started itself would have inherited it.
/// `None` for a policy other than `SCHED_OTHER` and `SCHED_BATCH`, or
/// when the host does not tell.
pub(crate) fn inheritable() -> Option<Inherited> {
    let attr = getattr(0).ok()?;
    (attr.policy == SCHED_OTHER || attr.policy == SCHED_BATCH).then_some(Inherited(attr))
}

impl Inherited {
    /// The nice value.
    pub fn nice(&self) -> i32 {
        self.0.nice
    }
}

/// Makes the calling thread's scheduling what [`inheritable`] read on
/// another thread. A host that refuses leaves the thread as it was.
pub(crate) fn take_on(sched: &Inherited) {
    let _ = setattr(sched.0);
}

/// Sets the calling thread's scheduling to `attr` (its flags other than
/// reset-on-fork dropped, as `sched_getattr` reports more than
/// `sched_setattr` takes).
fn setattr(mut attr: SchedAttr) -> io::Result<()> {
    attr.size = std::mem::size_of::<SchedAttr>() as u32;
    attr.flags &= SCHED_FLAG_RESET_ON_FORK;
    // SAFETY: the kernel reads `attr.size` bytes of `attr`, all of it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_sched_setattr,
            0,
            &attr as *const SchedAttr,
            0 as libc::c_uint,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Asks the host to run the calling thread in slices of
/// [`SHORT_SLICE_NS`], keeping its policy and nice value; threads it
/// creates inherit the slice. Does nothing to a thread whose policy is not
/// `SCHED_OTHER` or `SCHED_BATCH`.
pub fn take_short_slice() -> io::Result<()> {
    let mut attr = getattr(0)?;
    if attr.policy != SCHED_OTHER && attr.policy != SCHED_BATCH {
        return Ok(());
    }
    attr.runtime = SHORT_SLICE_NS;
    setattr(attr)
}

/// Whether the threads started from now on ask for short slices (the
/// default), or keep the slice of the thread that starts them.
pub fn set_short_slices(on: bool) {
    SHORT_SLICES.store(on, Ordering::Relaxed);
}

/// Whether this host grants slices (Linux 6.12 and later): a scratch
/// thread asks for [`SHORT_SLICE_NS`] and reads it back.
pub fn host_grants_slices() -> bool {
    std::thread::spawn(|| take_short_slice().is_ok() && slice_of(0).ok() == Some(SHORT_SLICE_NS))
        .join()
        .unwrap_or(false)
}

/// Called by each thread [`crate::thread`] starts, first thing. A host
/// that refuses (a seccomp filter, say) costs speed under load and
/// nothing else, so a refusal is not an error.
pub(crate) fn on_thread_start() {
    if SHORT_SLICES.load(Ordering::Relaxed) {
        let _ = take_short_slice();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_that_takes_the_short_slice_keeps_its_nice_value() {
        std::thread::spawn(|| {
            // SAFETY: plain system calls, on this scratch thread only;
            // raising one's own nice value needs no privilege.
            let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as _, 5) };
            assert_eq!(r, 0);
            let before = getattr(0).unwrap();
            assert_eq!(before.nice, 5);
            take_short_slice().unwrap();
            let after = getattr(0).unwrap();
            assert_eq!(after.policy, before.policy);
            assert_eq!(after.nice, before.nice);
            if host_grants_slices() {
                assert_eq!(after.runtime, SHORT_SLICE_NS);
            } else {
                assert_eq!(after.runtime, before.runtime);
            }
        })
        .join()
        .unwrap();
    }

    #[test]
    fn the_threads_it_starts_inherit_the_short_slice() {
        std::thread::spawn(|| {
            take_short_slice().unwrap();
            let mine = slice_of(0).unwrap();
            let child = std::thread::spawn(|| slice_of(0).unwrap()).join().unwrap();
            assert_eq!(child, mine);
        })
        .join()
        .unwrap();
    }
}
