//! Call traces (`backtrace`): kernel code runs on host stacks, which only
//! the host can walk. The kernel's `show_stack()` asks for the calling
//! thread's stack and prints it into its log, so a WARN shows the kernel
//! functions and the test code that led to it.

use std::ffi::{c_char, c_ulong, c_void};

use crate::ffi::guard;

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

    #[test]
    fn the_c_op_writes_a_terminated_truncated_string() {
        let mut buf = [0x7f as c_char; 64];
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { backtrace(std::ptr::null_mut(), buf.as_mut_ptr(), 64) } as usize;
        assert!(n > 0 && n < 64);
        assert_eq!(buf[n], 0);
    }
}
