//! Many threads calling hello() at once: every greeting is logged exactly
//! once, intact, by the task of the thread that asked for it, and nothing
//! else is logged.

mod common;

use std::time::Duration;

use common::{boot, finish};
use lkl_harness::hello::HelloArgs;
use lkl_harness::stress::{self, Loudness};
use lkl_harness::{Kernel, StressOptions};

/// Far longer than a passing run takes even in a debug build; only a
/// kernel that stopped answering gets there.
const WATCHDOG: Duration = Duration::from_secs(300);

#[test]
fn sixty_four_threads_by_five_hundred_mixed_calls_log_every_line_once() {
    let kernel = boot();
    let _watchdog = kernel.watchdog(WATCHDOG);
    let options = StressOptions {
        threads: 64,
        calls: 500,
        ..StressOptions::default()
    };
    let summary = stress::run(&kernel, &options, &|_| {});
    if let Err(err) = summary.verify() {
        panic!("{err}\n{summary}");
    }
    assert_eq!(summary.counts.calls, 32_000);
    assert_eq!(summary.counts.loud_calls, 8_000, "every 4th call is loud");
    assert_eq!(summary.counts.expected_lines, 40_000);
    assert_eq!(summary.counts.lines_captured, 40_000);
    assert_eq!(summary.counts.lines_lost, 0);
    finish(kernel);
}

#[test]
fn a_fixed_name_is_counted_across_threads() {
    let kernel = boot();
    let _watchdog = kernel.watchdog(WATCHDOG);
    let options = StressOptions {
        threads: 8,
        calls: 100,
        loud: Loudness::All,
        name: Some("everyone".into()),
    };
    let summary = stress::run(&kernel, &options, &|_| {});
    summary.verify().expect("every call logged both lines");
    assert_eq!(summary.counts.lines_captured, 1_600);
    let greetings = kernel
        .log()
        .iter()
        .filter(|r| r.text == "Hello, everyone!")
        .count();
    assert_eq!(greetings, 800);
    finish(kernel);
}

#[test]
fn progress_reports_add_up_to_the_calls() {
    let kernel = boot();
    let reported = std::sync::atomic::AtomicU64::new(0);
    let options = StressOptions {
        threads: 3,
        calls: 1000,
        loud: Loudness::Never,
        name: None,
    };
    let summary = stress::run(&kernel, &options, &|n| {
        reported.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    });
    summary.verify().expect("a clean run");
    assert_eq!(reported.into_inner(), 3_000);
    finish(kernel);
}

#[test]
fn long_fixed_names_are_expected_truncated_like_the_kernel_truncates() {
    let kernel = boot();
    let long = "n".repeat(200);
    let options = StressOptions {
        threads: 2,
        calls: 10,
        loud: Loudness::Every(2),
        name: Some(long.clone()),
    };
    let summary = stress::run(&kernel, &options, &|_| {});
    summary.verify().expect("long names are expected truncated");
    let truncated = format!("Hello, {}!", &long[..stress::NAME_MAX_PRINTED]);
    assert_eq!(
        kernel.log().iter().filter(|r| r.text == truncated).count(),
        20
    );
    finish(kernel);
}

/// A quiet run of one thread × 300 calls, during which the worker calls
/// `intrude` once (from the progress callback, in the middle of the run).
fn run_with_an_intrusion(kernel: &Kernel, intrude: impl Fn() + Sync) -> stress::Summary {
    let options = StressOptions {
        threads: 1,
        calls: 300,
        loud: Loudness::Never,
        name: None,
    };
    let once = std::sync::Once::new();
    stress::run(kernel, &options, &|_| once.call_once(&intrude))
}

#[test]
fn verification_catches_a_line_nobody_asked_for() {
    let kernel = boot();
    // One extra greeting from the worker is a line the run did not ask
    // for.
    let summary = run_with_an_intrusion(&kernel, || {
        kernel
            .hello(&HelloArgs::new(c"intruder", 0))
            .expect("hello");
    });
    assert_eq!(summary.counts.lines_unexpected, 1, "{summary}");
    assert_eq!(summary.counts.lines_captured, 301);
    assert_eq!(summary.counts.lines_lost, 0);
    let err = summary.verify().expect_err("an extra line fails the run");
    assert!(
        err.problems.iter().any(|p| p.contains("Hello, intruder!")),
        "{err}"
    );
    finish(kernel);
}

/// A record of a task outside the run is the rest of the kernel talking
/// (it says `random: crng init done` a minute or so after boot, from an
/// interrupt): the summary shows it apart and it fails nothing, while the
/// run's own lines stay counted exactly. Here the record is a greeting
/// from a thread that is not one of the run's workers.
#[test]
fn a_record_of_a_task_outside_the_run_is_shown_but_fails_nothing() {
    let kernel = boot();
    let summary = run_with_an_intrusion(&kernel, || {
        // Joined here: its task has exited before the run ends.
        std::thread::scope(|s| {
            s.spawn(|| {
                kernel
                    .hello(&HelloArgs::new(c"bystander", 0))
                    .expect("hello")
            });
        });
    });
    assert_eq!(summary.counts.lines_other, 1, "{summary}");
    assert_eq!(summary.counts.lines_unexpected, 0, "{summary}");
    assert_eq!(summary.counts.lines_captured, 300, "{summary}");
    summary
        .verify()
        .unwrap_or_else(|e| panic!("another task's record failed the run: {e}\n{summary}"));
    assert!(
        summary.table().contains("Hello, bystander!"),
        "the record is shown: {summary}"
    );
    finish(kernel);
}

#[test]
fn capture_returns_only_the_calling_threads_records_while_others_log() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let kernel = boot();
    let _watchdog = kernel.watchdog(WATCHDOG);
    let stop = AtomicBool::new(false);
    let noise_calls = AtomicU64::new(0);
    let (result, records) = std::thread::scope(|scope| {
        let noise: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        kernel.hello(&HelloArgs::new(c"noise", 0)).expect("hello");
                        noise_calls.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        let captured = kernel.capture(|k| {
            for call in 0..50 {
                k.hello(&HelloArgs::new(c"me", 0))?;
                if call == 25 {
                    // Make sure the others log in the middle of the capture.
                    let seen = noise_calls.load(Ordering::Relaxed);
                    while noise_calls.load(Ordering::Relaxed) < seen + 4 {
                        std::thread::yield_now();
                    }
                }
            }
            Ok::<(), lkl_harness::Errno>(())
        });
        stop.store(true, Ordering::Relaxed);
        // Joined: a join waits for the thread's exit, TLS destructors
        // (which leave the kernel) included, before the kernel halts.
        for thread in noise {
            thread.join().expect("a noise thread");
        }
        captured
    });
    assert_eq!(result, Ok(()));
    let texts: Vec<&str> = records.iter().map(|r| r.text.as_str()).collect();
    assert_eq!(texts, vec!["Hello, me!"; 50]);
    finish(kernel);
}
