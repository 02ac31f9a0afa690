//! The fault handler behind fast user copies must only catch faults inside
//! those copies: any other fault reaches the handler that was there before
//! (here: Rust's stack-overflow guard, or the default action).

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

const ROLE: &str = "LKL_SIM_FAULT_CHILD";

/// Arms the handler by making one copy that faults and one that does not.
fn arm_handler() {
    let mut buf = [0u8; 8];
    // SAFETY: NULL is invalid memory (the copy faults, caught).
    let missed = unsafe { lkl_sim::uaccess::copy_from_user_slice(&mut buf, std::ptr::null()) };
    assert_eq!(missed, 8);
    let good = [7u8; 8];
    // SAFETY: `good` is ours and nobody writes it.
    let missed = unsafe { lkl_sim::uaccess::copy_from_user_slice(&mut buf, good.as_ptr()) };
    assert_eq!(missed, 0);
    assert_eq!(buf, good);
}

fn run_child(test: &str, role: &str) -> std::process::Output {
    Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .output()
        .expect("child runs")
}

#[test]
fn a_fault_outside_a_copy_still_kills_with_sigsegv() {
    if std::env::var(ROLE).as_deref() == Ok("segv") {
        arm_handler();
        // SAFETY: deliberately invalid: this child must die of SIGSEGV.
        unsafe { std::ptr::read_volatile(16 as *const u64) };
        unreachable!("reading address 16 must fault");
    }
    let out = run_child("a_fault_outside_a_copy_still_kills_with_sigsegv", "segv");
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV), "child: {out:?}");
}

#[test]
fn rust_stack_overflow_detection_still_works() {
    if std::env::var(ROLE).as_deref() == Ok("overflow") {
        arm_handler();
        #[allow(unconditional_recursion)] // the point: overflow the stack
        fn recurse(n: u64) -> u64 {
            let pad = std::hint::black_box([n; 64]);
            recurse(n + 1) + pad[3]
        }
        let child = std::thread::spawn(|| recurse(0));
        let _ = child.join();
        unreachable!("the stack overflow must abort the process");
    }
    let out = run_child("rust_stack_overflow_detection_still_works", "overflow");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("has overflowed its stack"),
        "Rust's guard did not report: {out:?}"
    );
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "child: {out:?}");
}
