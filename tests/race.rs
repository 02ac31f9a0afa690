//! The race kernel (`LKL_KERNEL=race cargo test`): KCSAN watches every
//! access, and a data race in a system call fails the test that caused
//! it, naming both racing accesses with their source lines.
//!
//! These tests exist only in the race kernel's build: the other kernels
//! have no KCSAN to test.
#![cfg(lkl_kernel = "race")]

mod common;

use common::{boot, finish};
use lkl_harness::stress::{self, Loudness};
use lkl_harness::{seeded, BootOptions, Error, Kernel, StressOptions};

fn stress_options() -> StressOptions {
    StressOptions {
        threads: 4,
        calls: 1_000,
        loud: Loudness::Every(4),
        name: None,
    }
}

#[test]
fn kcsan_is_on_and_passed_its_selftest() {
    let kernel = boot();
    let log = kernel.dmesg();
    assert!(log.contains("kcsan: enabled early"), "{log}");
    assert!(log.contains("kcsan: selftest: 3/3 tests passed"), "{log}");
    finish(kernel);
}

/// KCSAN watches one access in thousands, and a watch sees the race only
/// if the other CPU's host thread runs during its 80 µs delay. On an idle
/// two-core host the racy kernel is caught in run 4 or so (1 to 10 in
/// eight boots), but on a host whose cores are busy with other work it
/// took up to 55 runs: CI on a shared machine once went past 40. The
/// loop ends at the first report, so the bound costs nothing when the
/// tool works and only fails a KCSAN that is really blind.
const ROUNDS: u32 = 500;
/// The unmodified kernel must pass every one of these runs.
const UNMODIFIED_ROUNDS: u32 = 12;

#[test]
fn the_unmodified_hello_passes_stress_runs_under_kcsan() {
    let kernel = boot();
    let repeated = stress::repeat(&kernel, &stress_options(), UNMODIFIED_ROUNDS, &|_| {});
    repeated
        .verify()
        .unwrap_or_else(|e| panic!("{e}\n{}", repeated.last));
    assert_eq!(repeated.rounds, UNMODIFIED_ROUNDS);
    finish(kernel);
}

#[test]
fn kcsan_reports_the_shared_buffer_race_naming_both_accesses() {
    let spec = seeded::with_mutant("shared-buffer-race");
    // A race needs two CPUs, even in `LKL_CPUS=1 cargo test`.
    let options = BootOptions {
        cpus: 2.max(lkl_harness::kernel::default_cpus()),
        ..BootOptions::default()
    };
    let kernel = Kernel::boot_seeded(&spec, options)
        .unwrap_or_else(|e| panic!("the racy kernel did not boot: {e}"));
    // The garbled greetings fail the verdict in the first run or so; the
    // runs go on until KCSAN has reported too.
    let mut rounds = 0;
    let summary = loop {
        rounds += 1;
        let summary = stress::run(&kernel, &stress_options(), &|_| {});
        if !summary.splats.is_empty() || rounds == ROUNDS {
            break summary;
        }
        kernel.take_log();
    };
    let Err(err) = kernel.check_log() else {
        panic!("KCSAN did not report the race in {rounds} runs: {summary}");
    };
    let Error::Splat { lines, reports, .. } = &err else {
        panic!("a KCSAN report is a splat: {err}");
    };
    // One line names both accesses, each with its function and line.
    let summary_line = lines
        .iter()
        .find(|l| l.starts_with("BUG: KCSAN: data-race in") && l.contains("racing with"))
        .unwrap_or_else(|| panic!("a summary names both accesses: {lines:#?}"));
    let located =
        regex::Regex::new(r"in [a-z_]+\+0x[0-9a-f]+/0x[0-9a-f]+ \([a-z/_]+\.c:\d+\)").unwrap();
    assert_eq!(located.find_iter(summary_line).count(), 2, "{summary_line}");
    // The report in full, whose traces go through the system call.
    let report = reports
        .iter()
        .find(|r| r.contains("BUG: KCSAN: data-race"))
        .unwrap_or_else(|| panic!("{reports:#?}"));
    assert!(report.contains("(kernel/hello.c:"), "{report}");
    assert!(
        report.contains("read to 0x") && report.contains("write to 0x"),
        "{report}"
    );
    assert!(!summary.splats.is_empty(), "the stress verdict has it too");
    // For `--nocapture`: what a developer sees first.
    eprintln!("found in run {rounds}:\n{summary_line}\n\n{report}");
    assert!(summary.verify().is_err());
    kernel.halt().expect("halt");
}
