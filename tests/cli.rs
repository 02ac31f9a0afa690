//! The command line, run as a user runs it: the `lkl-harness` binary,
//! with the kernel linked into it.

use std::process::{Command, Output};

fn lkl_harness(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lkl-harness"))
        .args(args)
        .env_remove("LKL_CPUS")
        .output()
        .expect("the lkl-harness binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_small_stress_run_passes_and_says_so() {
    let out = lkl_harness(&["--threads", "2", "--calls", "200", "--loud-every", "8"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains("calls  400 (2 threads × 200, 50 loud)"),
        "{stdout}"
    );
    assert!(stdout.contains("lines lost  0"), "{stdout}");
    // The kernel booted and greeted: its log's last lines are shown.
    assert!(stdout.contains("] Hello, t"), "{stdout}");
}

#[test]
fn rounds_repeats_the_run_until_one_fails_or_all_pass() {
    let out = lkl_harness(&["--threads", "2", "--calls", "100", "--rounds", "3"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains("Run 3 of up to 3 passed, the runs before it passed."),
        "{stdout}"
    );
}

#[test]
fn rounds_in_json_counts_the_runs() {
    let out = lkl_harness(&["--threads", "1", "--calls", "10", "--rounds", "2", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(report["rounds"], 2);
    assert_eq!(report["max_rounds"], 2);
    assert_eq!(report["summary"]["lines_lost"], 0);
}

#[test]
fn zero_rounds_is_refused_before_boot() {
    let out = lkl_harness(&["--rounds", "0"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--rounds"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing ran: {}", text(&out.stdout));
}

#[test]
fn a_bad_cpu_count_is_refused_before_boot_naming_the_fix() {
    let out = lkl_harness(&["--cpus", "0", "--threads", "1", "--calls", "1"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("cpus"), "{stderr}");
    assert!(stderr.contains("use 1 for a uniprocessor"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing ran: {}", text(&out.stdout));
}

#[test]
fn lkl_cpus_sets_the_default_and_a_bad_one_is_named() {
    let out = Command::new(env!("CARGO_BIN_EXE_lkl-harness"))
        .args(["--threads", "1", "--calls", "1"])
        .env("LKL_CPUS", "many")
        .output()
        .expect("the lkl-harness binary runs");
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("LKL_CPUS=\"many\""), "{stderr}");
}

#[test]
fn selftest_prints_each_programs_output_and_verdict_and_fails_a_failing_one() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/selftests");
    let seed = format!("{dir}/seed/hello_test.c");
    let out = lkl_harness(&["selftest", &seed]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("\n  All tests passed\n"), "{stdout}");
    assert!(stdout.contains("PASS hello_test: exit 0;"), "{stdout}");
    assert!(stdout.contains("-include errno.h"), "{stdout}");

    let broken = format!("{dir}/broken/wrong_expectation.c");
    let out = lkl_harness(&["selftest", &broken]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("  not ok 2 global.short_size_greets\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("FAIL wrong_expectation: exit 1; 2 case(s): 1 pass, 1 fail"),
        "{stdout}"
    );
    assert!(
        text(&out.stderr).contains("selftest: wrong_expectation did not pass"),
        "{}",
        text(&out.stderr)
    );

    // kselftest_harness's own options reach the program after `--`.
    let harness = format!("{dir}/hello_harness");
    let out = lkl_harness(&["selftest", &harness, "--", "-t", "loud_greeting"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("ok 1 named.loud_greeting"), "{stdout}");
    assert!(stdout.contains("1 case(s): 1 pass"), "{stdout}");
}

/// On the debug kernel the main job scans for leaks before it checks the
/// log: a leak fails the run and is named.
#[cfg(lkl_kernel = "debug")]
#[test]
fn a_leak_fails_the_main_job_on_the_debug_kernel() {
    let out = lkl_harness(&[
        "--threads",
        "2",
        "--calls",
        "50",
        "--cmdline",
        "lkl_test_leak=1",
    ]);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("memory leak(s) confirmed by a scan"),
        "{stdout}\n{stderr}"
    );
}

/// `bench` with every count cut down, so that it takes seconds: it runs
/// to its end and prints each figure, the SMP ones beside their
/// `cpus = 1` counterparts, and no stress round of it loses a line. The
/// figures themselves are timings, which no test asserts on.
#[test]
fn a_small_bench_prints_every_figure() {
    let out = lkl_harness(&[
        "bench",
        "--boots",
        "1",
        "--instances",
        "1",
        "--getpid-calls",
        "2000",
        "--hello-calls",
        "1000",
        "--idle-seconds",
        "1",
        "--no-debug",
        "--no-coverage",
        "--no-selftest",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    for figure in [
        "getpid() through the library",
        "valid hello() call, one thread",
        "getpid(), 1 thread, cpus = 1",
        "getpid(), 1 thread, cpus = 4",
        "getpid() throughput, 2 threads / 1 thread",
        "host getpid() throughput, 2 threads / 1 thread",
        "hello() throughput, 64 threads, cpus = 2",
        "idle kernel, cpus = 4: CPU used",
        "boot, cpus = 4 / cpus = 1",
        "seeded shared-buffer race found, cpus = 2",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(figure)),
            "no {figure:?} row:\n{stdout}"
        );
    }
    let lost: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("log lines lost"))
        .collect();
    assert_eq!(lost.len(), 6, "{stdout}");
    for line in lost {
        assert!(line.contains(" 0 of "), "{line}");
    }
}
