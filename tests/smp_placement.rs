//! Where the scheduler puts the tasks of host threads that call in turn.
//!
//! A binary of its own: cargo runs test binaries one after another, so
//! no other test of the suite keeps the host's cores busy meanwhile. A
//! kernel thread whose host thread the host preempts holds its CPU until
//! the host runs it again, and a CPU busy that way is, rightly, no CPU
//! to spread to. In `tests/smp.rs`, beside a seeded kernel's build and
//! the stress runs, that failed this test in one CI run and brought it
//! near failing in one local run of 15. Here it passed 30 runs of 30;
//! with two busy loops of the host's own on its two cores, 17 of 20.

mod common;

use std::sync::Barrier;

use common::{boot_with, finish};
use lkl_harness::{BootOptions, Kernel};

/// Rounds of one trial: in each, one thread calls while the other waits
/// in host code, then the other way round.
const ROUNDS: usize = 200;
/// Trials, each on a fresh kernel from two tasks put on one CPU. A
/// kernel that wakes a task from the CPU it shares (the bug this test is
/// for, emulated by starting `lkl_task_wake_and_wait()`'s scan at its
/// second pass) still spread the two in about one fresh kernel in four:
/// the wake-up's own scan for an idle CPU found CPU 1 before the CPUs
/// looked busy. Trials on one kernel failed or passed together. Five
/// fresh ones caught that bug in 20 runs of 20, three in 18, and one
/// trial on a single kernel in 14.
const TRIALS: usize = 5;

/// One trial: both threads' tasks are pinned to CPU 0, then let free,
/// then the threads call in turn. Returns the CPU of each thread's call
/// in each round.
fn trial(kernel: &Kernel) -> [Vec<u32>; 2] {
    let turn = Barrier::new(2);
    let cpus: Vec<Vec<u32>> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..2)
            .map(|me| {
                let turn = &turn;
                s.spawn(move || {
                    kernel.pin_current_thread(0).expect("pin");
                    assert_eq!(kernel.current_cpu(), 0);
                    turn.wait();
                    kernel.unpin_current_thread().expect("unpin");
                    turn.wait();
                    (0..ROUNDS)
                        .map(|_| {
                            let mut cpu = 0;
                            for caller in 0..2 {
                                if caller == me {
                                    cpu = kernel.current_cpu();
                                }
                                turn.wait();
                            }
                            cpu
                        })
                        .collect()
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("a caller"))
            .collect()
    });
    let [a, b]: [Vec<u32>; 2] = cpus.try_into().expect("two threads");
    [a, b]
}

/// Two threads that call in turn, their tasks first put on one CPU and
/// then let free, spread over the two CPUs: the thread whose task sleeps
/// wakes it from the idle CPU, where the scheduler then places it. Woken
/// from the shared CPU instead, the task often stayed queued there (a
/// wake-up scans for idle CPUs only while the CPUs look lightly used, and
/// a host task counts as running while its thread runs host code), and
/// two threads took turns on one CPU for as long as they called.
#[test]
fn two_threads_that_share_a_cpu_spread_to_the_idle_one() {
    for n in 0..TRIALS {
        let kernel = boot_with(BootOptions {
            cpus: 2,
            ..BootOptions::default()
        });
        let cpus = trial(&kernel);
        finish(kernel);
        let apart = (0..ROUNDS).filter(|&r| cpus[0][r] != cpus[1][r]).count();
        assert!(
            cpus[0][ROUNDS - 1] != cpus[1][ROUNDS - 1] && apart >= ROUNDS / 2,
            "trial {n}: two threads calling in turn shared a CPU in {} of {ROUNDS} \
             rounds, the last among them: {cpus:?}",
            ROUNDS - apart
        );
    }
}
