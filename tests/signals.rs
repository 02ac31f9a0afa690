//! Signals sent to host tasks: a system call that a signal interrupts
//! restarts or fails with `EINTR` by the usual rules, and the kernel's
//! internal restart codes (`-ERESTARTSYS` 512, `-ERESTART_RESTARTBLOCK`
//! 516, ...) never reach the caller. A handler cannot run in host code, so
//! a signal with a handler is taken as delivered to one that returns at
//! once (`lkl/arch/lkl/kernel/signal.c`).
//!
//! Every test signals a thread that is inside (or on its way into) a
//! blocking call, with no other call between: the signal is sent after
//! the thread's last call returned, so it interrupts the blocking one.

mod common;

use std::ffi::c_int;
use std::sync::mpsc;
use std::time::Duration;

use common::{boot, finish};
use lkl_harness::{sys, Errno, Kernel};

/// A handler the kernel records and never calls (it cannot: host code has
/// no user-mode frame for it).
extern "C" fn handler(_: c_int) {
    unreachable!("the kernel does not run signal handlers in host code");
}

/// `rt_sigaction(SIGUSR1, {handler, flags})`.
fn catch_sigusr1(kernel: &Kernel, flags: u32) {
    let action = sys::sigaction {
        sa_handler: Some(handler),
        sa_flags: u64::from(flags),
        ..Default::default()
    };
    let args = [
        i64::from(sys::SIGUSR1),
        &action as *const sys::sigaction as i64,
        0,
        std::mem::size_of_val(&action.sa_mask) as i64,
    ];
    // SAFETY: rt_sigaction reads the action, which lives across the call,
    // and writes nothing (no old action asked for).
    let ret = unsafe { kernel.syscall(sys::__NR_rt_sigaction, &args) };
    assert_eq!(ret, Ok(0), "rt_sigaction");
}

/// `tgkill(getpid(), tid, SIGUSR1)`.
fn signal(kernel: &Kernel, tid: i64) {
    let tgid = kernel.getpid().expect("getpid");
    let args = [tgid, tid, i64::from(sys::SIGUSR1)];
    // SAFETY: tgkill takes no pointer.
    let ret = unsafe { kernel.syscall(sys::__NR_tgkill, &args) };
    assert_eq!(ret, Ok(0), "tgkill");
}

/// `pipe2(0)`: the read and write ends.
fn pipe(kernel: &Kernel) -> (i64, i64) {
    let mut fds = [0i32; 2];
    let args = [fds.as_mut_ptr() as i64, 0];
    // SAFETY: pipe2 writes two ints into `fds`, which is that big.
    let ret = unsafe { kernel.syscall(sys::__NR_pipe2, &args) };
    assert_eq!(ret, Ok(0), "pipe2");
    (i64::from(fds[0]), i64::from(fds[1]))
}

/// Runs `blocking` on a thread of its own, signals that thread once it has
/// made its last call before `blocking`, then runs `after` (which may end
/// the wait), and returns what `blocking` returned.
fn interrupted<T: Send>(
    kernel: &Kernel,
    blocking: impl FnOnce(&Kernel) -> T + Send,
    after: impl FnOnce(&Kernel),
) -> T {
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel();
        let thread = s.spawn(move || {
            tx.send(kernel.gettid().expect("gettid")).expect("send");
            blocking(kernel)
        });
        let tid = rx.recv().expect("the thread's tid");
        signal(kernel, tid);
        after(kernel);
        thread.join().expect("the blocking thread")
    })
}

fn nanosleep(kernel: &Kernel, seconds: i64) -> (Result<i64, Errno>, sys::__kernel_timespec) {
    let request = sys::__kernel_timespec {
        tv_sec: seconds,
        tv_nsec: 0,
    };
    let mut remaining = sys::__kernel_timespec::default();
    let args = [&request as *const _ as i64, &mut remaining as *mut _ as i64];
    // SAFETY: nanosleep reads `request` and may write `remaining`, both
    // live across the call.
    let ret = unsafe { kernel.syscall(sys::__NR_nanosleep, &args) };
    (ret, remaining)
}

#[test]
fn a_caught_signal_interrupts_nanosleep_with_eintr_and_the_time_left() {
    let kernel = boot();
    catch_sigusr1(&kernel, 0);
    // An hour: only the signal can end it.
    let (ret, remaining) = interrupted(&kernel, |k| nanosleep(k, 3600), |_| {});
    assert_eq!(ret, Err(Errno::EINTR), "not 516 (ERESTART_RESTARTBLOCK)");
    assert!(
        remaining.tv_sec > 0 && remaining.tv_sec <= 3600,
        "{remaining:?}"
    );
    finish(kernel);
}

#[test]
fn sa_restart_restarts_a_blocked_read_and_without_it_the_read_is_eintr() {
    for (flags, restarts) in [(sys::SA_RESTART, true), (0, false)] {
        let kernel = boot();
        catch_sigusr1(&kernel, flags);
        let (rd, wr) = pipe(&kernel);
        let read = |k: &Kernel| {
            let mut byte = [0u8; 1];
            let args = [rd, byte.as_mut_ptr() as i64, 1];
            // SAFETY: read writes at most one byte into `byte`.
            let ret = unsafe { k.syscall(sys::__NR_read, &args) };
            (ret, byte[0])
        };
        let write = |k: &Kernel| {
            if restarts {
                // The restarted read is waiting again: give it its byte.
                let args = [wr, b"x".as_ptr() as i64, 1];
                // SAFETY: write reads one byte of a static.
                let ret = unsafe { k.syscall(sys::__NR_write, &args) };
                assert_eq!(ret, Ok(1));
            }
        };
        let (ret, byte) = interrupted(&kernel, read, write);
        if restarts {
            assert_eq!((ret, byte), (Ok(1), b'x'), "not 512 (ERESTARTSYS)");
        } else {
            assert_eq!(ret, Err(Errno::EINTR), "not 512 (ERESTARTSYS)");
        }
        finish(kernel);
    }
}

#[test]
fn a_caught_signal_ends_a_pause_with_eintr() {
    // asm-generic has no pause(): ppoll() on no descriptors, no timeout,
    // is how libc's pause() waits here.
    let kernel = boot();
    catch_sigusr1(&kernel, sys::SA_RESTART);
    let pause = |k: &Kernel| {
        let args = [0, 0, 0, 0, 0];
        // SAFETY: ppoll with no descriptors, timeout or mask reads nothing.
        unsafe { k.syscall(sys::__NR_ppoll, &args) }
    };
    let ret = interrupted(&kernel, pause, |_| {});
    // ERESTARTNOHAND: EINTR after a handler, SA_RESTART or not.
    assert_eq!(ret, Err(Errno::EINTR), "not 514 (ERESTARTNOHAND)");
    finish(kernel);
}

#[test]
fn a_signal_with_the_default_action_does_not_end_the_sleep() {
    // Host tasks are threads of pid 1: as for any init, a signal whose
    // action is the default is discarded, and the sleep runs to its end.
    let kernel = boot();
    let wake = Duration::from_millis(200);
    let (ret, _) = interrupted(
        &kernel,
        |k| {
            let request = sys::__kernel_timespec {
                tv_sec: 0,
                tv_nsec: wake.as_nanos() as i64,
            };
            let args = [&request as *const _ as i64, 0];
            // SAFETY: nanosleep reads `request`, which outlives the call.
            (unsafe { k.syscall(sys::__NR_nanosleep, &args) }, ())
        },
        |_| {},
    );
    assert_eq!(ret, Ok(0));
    finish(kernel);
}
