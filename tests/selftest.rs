//! The patch's C selftest (tools/testing/selftests/hello/hello_test.c),
//! run in-process against a booted kernel through the C glue.

mod common;

use common::{boot, boot_two_instances, texts};
use lkl_harness::selftest::run_hello_selftest;
use lkl_harness::Kernel;

/// What the selftest's calls log, in order: the valid call, the loud one
/// (two lines) and the larger struct with a zero tail. Every other call it
/// makes must fail and log nothing.
const SELFTEST_GREETINGS: [&str; 4] = [
    "Hello, world!",
    "Hello, world!",
    "HELLO, world!!!",
    "Hello, world!",
];

/// The hello records of the kernel's log since the last drain.
fn greetings_logged(kernel: &Kernel) -> Vec<String> {
    texts(&kernel.take_log())
        .into_iter()
        .filter(|t| t.starts_with("Hello, ") || t.starts_with("HELLO, "))
        .collect()
}

#[test]
fn hello_selftest_exits_0_and_says_all_tests_passed() {
    let kernel = boot();
    let outcome = run_hello_selftest(&kernel);
    assert_eq!(outcome.status, 0, "selftest output:\n{}", outcome.output);
    assert!(
        outcome.output.contains("All tests passed"),
        "the selftest's output did not reach the glue: {outcome:?}"
    );
    assert!(!outcome.output.contains("FAIL"), "{}", outcome.output);
}

#[test]
fn hello_selftest_greetings_are_in_the_kernel_log() {
    let kernel = boot();
    kernel.take_log();
    let outcome = run_hello_selftest(&kernel);
    assert_eq!(outcome.status, 0, "selftest output:\n{}", outcome.output);
    let log = texts(&kernel.take_log());
    assert_eq!(log, SELFTEST_GREETINGS, "the whole log of the run");
}

#[test]
fn hello_selftest_calls_only_the_kernel_it_is_given() {
    let (a, b) = boot_two_instances();
    a.take_log();
    b.take_log();
    assert_eq!(run_hello_selftest(&a).status, 0);
    assert_eq!(greetings_logged(&a), SELFTEST_GREETINGS);
    assert!(greetings_logged(&b).is_empty(), "b was not run");
    assert_eq!(run_hello_selftest(&b).status, 0);
    assert_eq!(greetings_logged(&b), SELFTEST_GREETINGS);
    assert!(greetings_logged(&a).is_empty(), "a was not run again");
}

#[test]
fn hello_selftest_runs_from_many_threads_are_serialised() {
    let kernels: Vec<Kernel> = (0..3).map(|_| boot()).collect();
    for kernel in &kernels {
        kernel.take_log();
    }
    std::thread::scope(|s| {
        for kernel in &kernels {
            s.spawn(move || {
                for _ in 0..3 {
                    let outcome = run_hello_selftest(kernel);
                    assert_eq!(outcome.status, 0, "{}", outcome.output);
                }
            });
        }
    });
    for kernel in &kernels {
        let want: Vec<&str> = SELFTEST_GREETINGS.repeat(3);
        assert_eq!(greetings_logged(kernel), want);
    }
}
