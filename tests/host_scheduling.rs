//! The kernel's host threads (its tasks' and its timers') run in the short
//! slices of `lkl_sim::sched`, so that a CPU handed to one of them on a
//! busy host is taken up at once; the test's own threads keep theirs.
//!
//! The only test in its binary: `set_short_slices` is process-wide.

mod common;

use common::{boot, finish};
use lkl_sim::sched::{self, SHORT_SLICE_NS};
use lkl_sim::thread::TASK_THREAD_NAME;
use lkl_sim::timer::TIMER_THREAD_NAME;

/// The slice of every live thread of this process named `lkl-task` or
/// `lkl-timer`, with its name and id.
fn kernel_thread_slices() -> Vec<(String, libc::pid_t, u64)> {
    let mut slices = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let name = entry.expect("a task entry").file_name();
        let tid: libc::pid_t = name.to_str().and_then(|n| n.parse().ok()).expect("a tid");
        let Ok(comm) = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")) else {
            continue; // gone since the listing
        };
        let comm = comm.trim_end().to_owned();
        if comm != TASK_THREAD_NAME && comm != TIMER_THREAD_NAME {
            continue;
        }
        match sched::slice_of(tid) {
            Ok(slice) => slices.push((comm, tid, slice)),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => continue,
            Err(e) => panic!("sched_getattr({tid}): {e}"),
        }
    }
    slices
}

#[test]
fn the_kernels_threads_run_in_short_slices_and_the_tests_thread_keeps_its_own() {
    let mine = sched::slice_of(0).expect("this thread's slice");
    let expected = if sched::host_grants_slices() {
        SHORT_SLICE_NS
    } else {
        mine
    };

    let kernel = boot();
    assert_eq!(kernel.getpid(), Ok(1));
    let slices = kernel_thread_slices();
    // kthreadd, pid 1's thread, ksoftirqd and the other kthreads, a
    // secondary CPU's idle task, the timers: a dozen or more.
    assert!(
        slices.len() >= 8,
        "only {} of the kernel's host threads found: {slices:?}",
        slices.len()
    );
    let wrong: Vec<_> = slices.iter().filter(|(_, _, s)| *s != expected).collect();
    assert!(
        wrong.is_empty(),
        "threads not in slices of {expected} ns: {wrong:?}"
    );
    assert_eq!(
        sched::slice_of(0).expect("this thread's slice"),
        mine,
        "the test's thread, a host task now, was given another slice"
    );
    finish(kernel);
    let first: Vec<libc::pid_t> = slices.iter().map(|(_, tid, _)| *tid).collect();

    // Turned off, the kernel's threads keep the slice of the thread that
    // started them, the test's. (Threads of the first kernel that have
    // not quite exited yet are left out.)
    sched::set_short_slices(false);
    let kernel = boot();
    assert_eq!(kernel.getpid(), Ok(1));
    let slices: Vec<_> = kernel_thread_slices()
        .into_iter()
        .filter(|(_, tid, _)| !first.contains(tid))
        .collect();
    sched::set_short_slices(true);
    assert!(slices.len() >= 8, "{slices:?}");
    let wrong: Vec<_> = slices.iter().filter(|(_, _, s)| *s != mine).collect();
    assert!(
        wrong.is_empty(),
        "with short slices off, threads not in this thread's slices of {mine} ns: {wrong:?}"
    );
    finish(kernel);
}
