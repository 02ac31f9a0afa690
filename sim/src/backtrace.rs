//! Call traces (`backtrace`): kernel code runs on host stacks, which only
//! the host can walk. The kernel's `show_stack()` asks for the calling
//! thread's stack and prints it into its log, so a WARN shows the kernel
//! functions and the test code that led to it.

use std::ffi::{c_char, c_int, c_ulong, c_void};

use crate::ffi::guard;

extern "C" {
    // libgcc's unwinder, which Rust's standard library links: it walks
    // frames by their unwind tables, kernel and host code alike.
    fn _Unwind_Backtrace(
        trace: unsafe extern "C" fn(ctx: *mut c_void, arg: *mut c_void) -> c_int,
        arg: *mut c_void,
    ) -> c_int;
    fn _Unwind_GetIP(ctx: *mut c_void) -> usize;
}

/// `_URC_NO_REASON`: go on walking.
const URC_NO_REASON: c_int = 0;
/// `_URC_END_OF_STACK`: stop.
const URC_END_OF_STACK: c_int = 5;

/// Where [`stack_walk`] collects addresses.
struct Walk {
    pcs: *mut c_ulong,
    max: usize,
    /// Frames still to skip: the walk's own.
    skip: usize,
    count: usize,
}

/// One frame of [`stack_walk`].
///
/// # Safety
///
/// `ctx` is the unwinder's context; `arg` the `Walk` of the walk.
unsafe extern "C" fn collect(ctx: *mut c_void, arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the &mut Walk that stack_walk passed in.
    let walk = unsafe { &mut *arg.cast::<Walk>() };
    if walk.skip > 0 {
        walk.skip -= 1;
        return URC_NO_REASON;
    }
    if walk.count == walk.max {
        return URC_END_OF_STACK;
    }
    // SAFETY: `ctx` is valid during the callback.
    let ip = unsafe { _Unwind_GetIP(ctx) };
    if ip == 0 {
        return URC_END_OF_STACK;
    }
    // SAFETY: `count < max`, and `pcs` has room for `max` entries.
    unsafe { *walk.pcs.add(walk.count) = ip as c_ulong };
    walk.count += 1;
    URC_NO_REASON
}

/// `stack_walk(pcs, max)`: fills `pcs` with the return addresses of the
/// calling thread's frames, innermost first, starting with its caller's
/// own frame; returns how many (at most `max`). For the kernel's
/// `arch_stack_walk()`: lockdep, KCSAN and the other users of stack
/// traces get the real call chain.
///
/// # Safety
///
/// `pcs` must be writable for `max` entries.
pub unsafe extern "C" fn stack_walk(pcs: *mut c_ulong, max: c_ulong) -> c_ulong {
    // No guard(): nothing here can panic, and the walk must not see a
    // closure's frame. This function's own frame is skipped.
    let mut walk = Walk {
        pcs,
        max: max as usize,
        skip: 1,
        count: 0,
    };
    if pcs.is_null() {
        return 0;
    }
    // SAFETY: `collect` matches the callback type and `walk` outlives the
    // call.
    unsafe { _Unwind_Backtrace(collect, (&mut walk as *mut Walk).cast()) };
    walk.count as c_ulong
}

/// The frames of the calling thread that matter for debugging the kernel,
/// innermost first, one per line (`function` or `function at file:line`):
/// the kernel's and the caller's own, without runtime plumbing.
pub fn frames() -> Vec<String> {
    all_frames()
        .into_iter()
        .filter(|f| !is_plumbing(f))
        .collect()
}

/// Every frame of the calling thread below this module.
fn all_frames() -> Vec<String> {
    let trace = std::backtrace::Backtrace::force_capture().to_string();
    let mut frames: Vec<String> = Vec::new();
    for line in trace.lines() {
        let text = line.trim_start();
        match text.split_once(": ") {
            Some((index, name)) if index.chars().all(|c| c.is_ascii_digit()) => {
                frames.push(name.to_string())
            }
            _ => {
                if let (Some(last), Some(location)) = (frames.last_mut(), text.strip_prefix("at "))
                {
                    last.push_str(" at ");
                    last.push_str(location);
                }
            }
        }
    }
    // Drop the frames of the capture itself and of this module.
    let own = frames
        .iter()
        .rposition(|f| {
            f.starts_with("lkl_sim::backtrace::frames")
                || f.starts_with("lkl_sim::backtrace::all_frames")
                || f.starts_with("lkl_sim::backtrace::backtrace")
        })
        .map_or(0, |i| i + 1);
    frames.split_off(own)
}

/// Frames no one debugging a system call wants to read: the Rust runtime,
/// this crate, the test harness and libc's thread start-up.
fn is_plumbing(frame: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "std::",
        "core::",
        "alloc::",
        "<std::",
        "<core::",
        "<alloc::",
        "lkl_sim::",
        "__rust",
        "start_thread",
        "clone",
        "__libc_start",
        "_start",
        "test::",
        "<test::",
    ];
    PREFIXES.iter().any(|p| frame.starts_with(p))
}

/// `backtrace(ctx, buf, len)`: writes [`frames`] into `buf`, a line each,
/// NUL-terminated, truncated to `len` bytes; returns the length written.
///
/// # Safety
///
/// `buf` must be writable for `len` bytes.
pub unsafe extern "C" fn backtrace(_ctx: *mut c_void, buf: *mut c_char, len: c_ulong) -> c_ulong {
    guard("backtrace", || {
        let len = len as usize;
        if buf.is_null() || len == 0 {
            return 0;
        }
        let mut text = frames().join("\n");
        text.truncate(len - 1);
        while !text.is_char_boundary(text.len()) {
            text.pop();
        }
        // SAFETY: `buf` is writable for `len` bytes and `text` is shorter.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
            *buf.add(text.len()) = 0;
        }
        text.len() as c_ulong
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn a_distinctive_caller() -> Vec<String> {
        let frames = all_frames();
        // Work after the call: no tail call may remove this frame.
        std::hint::black_box(frames)
    }

    #[test]
    fn plumbing_is_left_out() {
        assert!(is_plumbing("std::thread::lifecycle::spawn_unchecked"));
        assert!(is_plumbing("lkl_sim::thread::create::{{closure}}"));
        assert!(!is_plumbing("warn_slowpath_fmt"));
        assert!(!is_plumbing("my_tests::hello_works at tests/my.rs:3:5"));
    }

    #[test]
    fn frames_name_the_callers_and_not_this_module() {
        let frames = a_distinctive_caller();
        assert!(
            frames[0].contains("a_distinctive_caller"),
            "innermost frame first: {frames:?}"
        );
        assert!(!frames
            .iter()
            .any(|f| f.contains("lkl_sim::backtrace::frames ")));
    }

    #[inline(never)]
    fn walk_from_here(pcs: &mut [c_ulong]) -> usize {
        // SAFETY: `pcs` is writable for its length.
        let n = unsafe { stack_walk(pcs.as_mut_ptr(), pcs.len() as c_ulong) } as usize;
        std::hint::black_box(n)
    }

    #[test]
    fn stack_walk_returns_the_callers_frames() {
        let mut pcs = [0 as c_ulong; 64];
        let n = walk_from_here(&mut pcs);
        assert!(n > 3, "{n} frames");
        // The first address is in walk_from_here, which called it (a small
        // function: its code is within a page of its start).
        let here = walk_from_here as *const () as usize;
        assert!(
            (here..here + 4096).contains(&(pcs[0] as usize)),
            "{:x} not in walk_from_here at {here:x}",
            pcs[0]
        );
        let mut few = [0 as c_ulong; 2];
        assert_eq!(walk_from_here(&mut few), 2, "at most max");
    }

    #[test]
    fn the_c_op_writes_a_terminated_truncated_string() {
        let mut buf = [0x7f as c_char; 64];
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { backtrace(std::ptr::null_mut(), buf.as_mut_ptr(), 64) } as usize;
        assert!(n > 0 && n < 64);
        assert_eq!(buf[n], 0);
    }
}
