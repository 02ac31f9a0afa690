//! Host memory per host thread: a thread that makes a system call and
//! exits must leave nothing behind on the host side (its kernel task, its
//! thread-local state, the host's bookkeeping). The only test in its
//! binary: RSS is the whole process's.
//!
//! The host side is the same for every kernel variant; the debug kernel's
//! KASAN shadow and quarantine would make RSS move for reasons of their
//! own, so this runs on the default kernel.

#![cfg(lkl_kernel = "default")]

mod common;

use common::{arena, boot, finish};

/// VmRSS of this process, in bytes.
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib << 10
}

/// Bytes of `(start, len)` resident in memory (`mincore`).
fn resident((start, len): (usize, usize)) -> usize {
    let page = common::page_size();
    let mut pages = vec![0u8; len.div_ceil(page)];
    // SAFETY: the range is the kernel's arena, one mapping of this
    // process; mincore only writes one byte per page into `pages`.
    let rc = unsafe { libc::mincore(start as *mut libc::c_void, len, pages.as_mut_ptr()) };
    assert_eq!(rc, 0, "mincore on the arena");
    pages.iter().filter(|&&p| p & 1 != 0).count() * page
}

#[test]
fn short_lived_threads_leave_no_host_memory_behind() {
    const THREADS: usize = 1000;
    const ROUNDS: usize = 20;
    // Rounds before this one warm up thread stacks, malloc arenas and
    // the kernel's caches.
    const SETTLED: usize = 8;
    // 12,000 threads after SETTLED: 190 bytes each (what the issue saw)
    // would be 2.3 MB.
    const BOUND: usize = 1 << 20;
    let kernel = boot();
    let arena = arena(&kernel);
    // Host memory: the process's, less the kernel's own pages.
    let host = || rss() - resident(arena);
    let mut samples = Vec::new();
    for _ in 0..ROUNDS {
        std::thread::scope(|s| {
            let threads: Vec<_> = (0..THREADS)
                .map(|_| s.spawn(|| kernel.getpid().expect("getpid")))
                .collect();
            for thread in threads {
                // A join waits for the thread's exit, TLS destructors too.
                thread.join().expect("a calling thread");
            }
        });
        kernel.take_log();
        samples.push(host());
    }
    let growth = samples[ROUNDS - 1].saturating_sub(samples[SETTLED - 1]);
    assert!(
        growth < BOUND,
        "host memory grew by {growth} bytes over {} short-lived threads after round {SETTLED} \
         ({} bytes each); host memory after each round of {THREADS}: {samples:?}",
        (ROUNDS - SETTLED) * THREADS,
        growth / ((ROUNDS - SETTLED) * THREADS)
    );
    finish(kernel);
}
