//! The debug kernel (`LKL_KERNEL=debug cargo test`): KASAN, UBSAN and
//! kmemleak watch the kernel, and a memory bug in a system call fails the
//! test that made it at `finish()`, with the bug class and the source line.
//!
//! Each checker is proven on a seeded bug from `lkl/mutants/` that it
//! must catch, while the unmodified kernel passes the whole suite.
//!
//! These tests exist only in the debug kernel's build: the other kernels
//! have no memory checkers to test.
#![cfg(lkl_kernel = "debug")]

mod common;

use common::{boot, finish};
use lkl_harness::check::LEAK_REPORTS_LOGGED;
use lkl_harness::hello::{HelloArgs, HELLO_FLAG_LOUD};
use lkl_harness::{seeded, BootOptions, Error, Kernel};

#[test]
fn kasan_and_kmemleak_are_on_and_a_clean_run_reports_nothing() {
    let kernel = boot();
    let log = kernel.dmesg();
    assert!(log.contains("KernelAddressSanitizer initialized"), "{log}");
    assert!(
        log.contains("kmemleak: Kernel memory leak detector initialized"),
        "{log}"
    );
    // The stacks KASAN and kmemleak save go to a table sized for one
    // test (lkl/config/debug.config), not KASAN's 16 MiB default.
    assert!(
        log.contains("stackdepot hash table entries: 16384 (order: 6, 262144 bytes"),
        "{log}"
    );
    for flags in [0, HELLO_FLAG_LOUD] {
        kernel
            .hello(&HelloArgs::new(c"world", flags))
            .expect("hello");
    }
    assert_eq!(
        kernel.scan_for_leaks(),
        Ok(true),
        "the debug kernel has kmemleak"
    );
    finish(kernel);
}

/// Boots the debug kernel with `mutant`, greets `world` loudly three times
/// (each greeting must still succeed: the memory bugs are silent), and
/// returns what `finish()` said, which must be a report.
fn finish_with_mutant(mutant: &str) -> (Vec<String>, Vec<String>) {
    finish_with(mutant, true)
}

fn finish_with(mutant: &str, silent: bool) -> (Vec<String>, Vec<String>) {
    let kernel = Kernel::boot_seeded(&seeded::with_mutant(mutant), BootOptions::default())
        .unwrap_or_else(|e| panic!("the kernel with {mutant} did not boot: {e}"));
    for _ in 0..3 {
        let result = kernel.hello(&HelloArgs::new(c"world", HELLO_FLAG_LOUD));
        if silent {
            result.expect("the bug does not change the result");
        }
    }
    match kernel.finish() {
        Err(Error::Splat { lines, reports, .. }) => {
            // For `--nocapture`: what a developer sees.
            eprintln!(
                "{mutant}:\n  {}\n\n{}",
                lines.join("\n  "),
                reports.join("\n")
            );
            (lines, reports)
        }
        Err(e) => panic!("{mutant}: finish() failed, but not with a report: {e}"),
        Ok(()) => panic!("{mutant}: finish() found nothing"),
    }
}

/// The report whose text contains `title`.
fn report<'a>(reports: &'a [String], title: &str) -> &'a str {
    reports
        .iter()
        .find(|r| r.contains(title))
        .unwrap_or_else(|| panic!("no report with {title:?}: {reports:#?}"))
}

#[test]
fn kasan_reports_a_use_after_free_with_its_line_and_both_stacks() {
    let (lines, reports) = finish_with_mutant("use-after-free");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("BUG: KASAN: slab-use-after-free in")),
        "{lines:#?}"
    );
    let report = report(&reports, "BUG: KASAN: slab-use-after-free");
    assert!(report.contains("Read of size 1 at addr"), "{report}");
    // The access, the allocation and the free each come from hello().
    assert!(report.contains("Allocated by task"), "{report}");
    assert!(report.contains("Freed by task"), "{report}");
    assert!(report.matches("(kernel/hello.c:").count() >= 3, "{report}");
}

#[test]
fn kasan_reports_a_stack_out_of_bounds_write_with_its_line() {
    let (lines, reports) = finish_with_mutant("stack-out-of-bounds");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("BUG: KASAN: stack-out-of-bounds in")),
        "{lines:#?}"
    );
    let report = report(&reports, "BUG: KASAN: stack-out-of-bounds");
    assert!(report.contains("Write of size 65 at addr"), "{report}");
    assert!(report.contains("(kernel/hello.c:"), "{report}");
}

#[test]
fn ubsan_reports_an_undefined_shift_at_its_line() {
    // Its result is undefined too (x86 takes shift counts modulo 32).
    let (lines, _) = finish_with("undefined-shift", false);
    let line = lines
        .iter()
        .find(|l| l.contains("UBSAN: shift-out-of-bounds in kernel/hello.c:"))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert!(
        regex::Regex::new(r"hello\.c:\d+:\d+")
            .unwrap()
            .is_match(line),
        "{line}"
    );
}

#[test]
fn kmemleak_reports_a_leak_with_the_allocation_stack() {
    let (lines, reports) = finish_with_mutant("leak");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("3 memory leak(s) confirmed by a scan")),
        "{lines:#?}"
    );
    let report = report(&reports, "unreferenced object 0x");
    assert!(report.contains("comm \""), "{report}");
    assert!(report.contains("kstrdup"), "{report}");
    assert!(report.contains("(kernel/hello.c:"), "{report}");
}

/// A leak scanned for twice is reported once.
#[test]
fn kmemleak_reports_each_leak_once_however_often_it_scans() {
    let kernel = Kernel::boot_seeded(&seeded::with_mutant("leak"), BootOptions::default())
        .expect("the leak mutant boots");
    kernel
        .hello(&HelloArgs::new(c"world", HELLO_FLAG_LOUD))
        .expect("the leak does not change the result");
    assert_eq!(kernel.scan_for_leaks(), Ok(true));
    let Err(Error::Splat { lines, .. }) = kernel.finish() else {
        panic!("finish() must report the leak");
    };
    let objects = lines
        .iter()
        .filter(|l| l.contains("unreferenced object 0x"))
        .count();
    assert_eq!(objects, 1, "{lines:#?}");
}

/// A system call that leaks on every call: every leak is counted, the
/// first [`LEAK_REPORTS_LOGGED`] are in the log whole, and the rest cost no
/// time writing them.
#[test]
fn many_leaks_are_all_counted_and_the_first_few_logged_whole() {
    let kernel = Kernel::boot_seeded(&seeded::with_mutant("leak"), BootOptions::default())
        .expect("the leak mutant boots");
    let calls = LEAK_REPORTS_LOGGED + 24;
    for _ in 0..calls {
        kernel
            .hello(&HelloArgs::new(c"world", 0))
            .expect("the leak does not change the result");
    }
    let Err(Error::Splat { lines, .. }) = kernel.finish() else {
        panic!("finish() must report the leaks");
    };
    let objects = lines
        .iter()
        .filter(|l| l.contains("unreferenced object 0x"))
        .count();
    assert_eq!(objects, LEAK_REPORTS_LOGGED, "{lines:#?}");
    let counted = format!(
        "{calls} memory leak(s) confirmed by a scan {} ms after the first; {} of them are \
         not shown above",
        lkl_harness::check::LEAK_SETTLE.as_millis(),
        calls - LEAK_REPORTS_LOGGED
    );
    assert!(
        lines.iter().any(|l| l.contains(&counted)),
        "{counted:?} in {lines:#?}"
    );
}

/// Objects that wait for a grace period to be freed (a mount that failed,
/// freed through task work and then RCU) are still referenced, if only
/// from a local variable of another CPU's kernel code while it frees them:
/// no scan may call them leaks. Each round leaves such objects just
/// before it scans.
#[test]
fn kmemleak_does_not_report_objects_freed_after_a_grace_period() {
    let kernel = boot();
    assert_eq!(kernel.scan_for_leaks(), Ok(true));
    for round in 0..10 {
        for _ in 0..4 {
            // sysfs is already mounted there: the new mount is made, then
            // dropped, and freed after a grace period.
            assert_eq!(
                kernel.mount(c"sysfs", c"/sys", c"sysfs", 0),
                Err(lkl_harness::Errno::EBUSY),
                "round {round}"
            );
        }
        assert_eq!(kernel.scan_for_leaks(), Ok(true), "round {round}");
    }
    finish(kernel);
}
