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
    // Joined, not left to the scope: a join waits for the thread's exit,
    // its TLS destructors (which leave the kernel) included.
    std::thread::scope(|s| {
        let threads: Vec<_> = kernels
            .iter()
            .map(|kernel| {
                s.spawn(move || {
                    for _ in 0..3 {
                        let outcome = run_hello_selftest(kernel);
                        assert_eq!(outcome.status, 0, "{}", outcome.output);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("a selftest thread");
        }
    });
    for kernel in &kernels {
        let want: Vec<&str> = SELFTEST_GREETINGS.repeat(3);
        assert_eq!(greetings_logged(kernel), want);
    }
}

// ---------------------------------------------------------------------
// `selftest PATH`: kselftest programs compiled at run time, each run in a
// runner process of its own against fresh kernels.

mod programs {
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use lkl_harness::selftest::{self, CaseResult, Exit, SelftestError, SelftestOptions};
    use lkl_harness::selftest::{SelftestReport, Verdict};

    fn options() -> SelftestOptions {
        SelftestOptions::new(PathBuf::from(env!("CARGO_BIN_EXE_lkl-harness")))
    }

    fn here(path: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
    }

    /// A selftest of the kernel tree (`tools/testing/selftests/PATH`).
    fn upstream(path: &str) -> PathBuf {
        Path::new(env!("LKL_SOURCE_TREE"))
            .join("tools/testing/selftests")
            .join(path)
    }

    /// Runs the one program at `path`.
    fn run_one(path: &Path, options: &SelftestOptions) -> SelftestReport {
        let mut reports = selftest::run(path, options).expect("compiles and runs");
        assert_eq!(reports.len(), 1, "one program at {}", path.display());
        reports.remove(0)
    }

    /// Runs the program at `path` and requires it to pass, with every case
    /// it planned reported and none failed.
    fn passes(path: &Path) -> SelftestReport {
        let report = run_one(path, &options());
        assert!(report.passed(), "{}", report.render());
        assert!(!report.kernels.is_empty(), "{}", report.render());
        if let Some(plan) = report.plan {
            assert_eq!(report.cases.len(), plan, "{}", report.render());
        }
        report
    }

    fn greetings(report: &SelftestReport) -> Vec<String> {
        report
            .kernels
            .iter()
            .flat_map(|k| k.dmesg.lines().map(String::from).collect::<Vec<_>>())
            .filter(|l| l.contains("Hello, ") || l.contains("HELLO, "))
            .collect()
    }

    #[test]
    fn the_seeds_selftest_passes_with_errno_h_supplied() {
        let report = passes(&here("tests/selftests/seed/hello_test.c"));
        assert!(
            report.output.contains("All tests passed"),
            "{}",
            report.render()
        );
        assert_eq!(report.exit, Exit::Code(0));
        // The runner said what it supplied: the seed lacks <errno.h>.
        assert!(
            report
                .program
                .notes
                .iter()
                .any(|n| n.contains("-include errno.h")),
            "{:?}",
            report.program.notes
        );
        // Its one valid call greeted, in the kernel it ran against.
        let greeted = greetings(&report);
        assert_eq!(greeted.len(), 1, "{greeted:?}");
        assert!(greeted[0].ends_with("Hello, world!"), "{greeted:?}");
    }

    #[test]
    fn the_patchs_selftest_directory_passes() {
        let report = passes(&upstream("hello"));
        assert_eq!(report.program.name, "hello_test");
        assert!(
            report.output.contains("All tests passed"),
            "{}",
            report.render()
        );
        assert!(
            report.program.notes.is_empty(),
            "{:?}",
            report.program.notes
        );
        assert_eq!(greetings(&report).len(), 4, "{}", report.render());
    }

    #[test]
    fn a_seeded_wrong_errno_fails_the_seeds_selftest_at_its_assert() {
        let spec = lkl_harness::seeded::with_mutant("wrong-errno");
        let library = lkl_harness::seeded::build(&spec).expect("the mutant kernel builds");
        let mut options = options();
        options.library = Some(library);
        let report = run_one(&here("tests/selftests/seed/hello_test.c"), &options);
        assert_eq!(report.verdict(), Verdict::Fail, "{}", report.render());
        assert_eq!(
            report.exit,
            Exit::Signal(libc::SIGABRT),
            "{}",
            report.render()
        );
        assert!(
            report.output.contains(
                "hello_test.c:33: main: Assertion `ret == -1 && errno == EFAULT' failed."
            ),
            "{}",
            report.render()
        );
        // The log of the process that aborted was handed over.
        assert_eq!(report.kernels.len(), 1, "{}", report.render());
    }

    #[test]
    fn a_kselftest_harness_program_runs_every_test_in_a_fresh_kernel() {
        let report = passes(&here("tests/selftests/hello_harness"));
        let names: Vec<&str> = report.cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "global.greets_a_static_name",
                "global.unknown_flag_is_einval",
                "global.null_name_is_efault",
                "global.a_leaves_a_file_behind",
                "global.b_finds_no_file_left_behind",
                "named.greets_the_name_read_back",
                "named.loud_greeting",
            ]
        );
        assert!(report.cases.iter().all(|c| c.result == CaseResult::Pass));
        // One kernel per test: the harness forks a process per test (a
        // grandchild for a fixture's), and each boots its own.
        assert_eq!(report.kernels.len(), 7, "{}", report.render());
        // Greetings: one plain, two loud (two lines each).
        assert_eq!(greetings(&report).len(), 5, "{}", report.render());
    }

    #[test]
    fn a_failing_kselftest_harness_case_fails_with_its_file_and_line() {
        let report = run_one(
            &here("tests/selftests/broken/wrong_expectation.c"),
            &options(),
        );
        assert_eq!(report.verdict(), Verdict::Fail, "{}", report.render());
        assert_eq!(report.exit, Exit::Code(selftest::program::KSFT_FAIL));
        let results: Vec<(&str, CaseResult)> = report
            .cases
            .iter()
            .map(|c| (c.name.as_str(), c.result))
            .collect();
        assert_eq!(
            results,
            [
                ("global.full_size_greets", CaseResult::Pass),
                ("global.short_size_greets", CaseResult::Fail)
            ]
        );
        let failed = &report.cases[1];
        assert!(
            failed
                .diagnostics
                .iter()
                .any(|d| d.contains("wrong_expectation.c:27:short_size_greets:Expected 0 (0) ==")),
            "{failed:?}"
        );
        assert!(
            report
                .problems()
                .iter()
                .any(|p| p == "not ok 2 global.short_size_greets"),
            "{:?}",
            report.problems()
        );
    }

    #[test]
    fn a_process_forked_after_a_system_call_is_reported_not_passed() {
        let report = run_one(
            &here("tests/selftests/broken/fork_after_call.c"),
            &options(),
        );
        // The program itself says ok: the runner must not.
        assert_eq!(report.exit, Exit::Code(0), "{}", report.render());
        assert_eq!(report.verdict(), Verdict::Fail, "{}", report.render());
        assert!(
            report.kernels.iter().any(|k| k.forked_from.is_some()),
            "{}",
            report.render()
        );
        assert!(
            report.output.contains("fail with ENOSYS"),
            "{}",
            report.render()
        );
    }

    #[test]
    fn a_hung_program_is_killed_at_the_timeout_and_fails() {
        let mut options = options();
        options.timeout = Duration::from_secs(2);
        let report = run_one(&here("tests/selftests/broken/sleeps_forever.c"), &options);
        assert_eq!(report.exit, Exit::TimedOut, "{}", report.render());
        assert_eq!(report.verdict(), Verdict::Fail);
        assert!(report.render().contains("ran past the timeout"));
    }

    #[test]
    fn a_kernel_warning_during_the_run_fails_the_program() {
        let mut options = options();
        options.boot.cmdline = "lkl_test_warn=1".into();
        let report = run_one(&here("tests/selftests/seed/hello_test.c"), &options);
        assert_eq!(report.exit, Exit::Code(0), "{}", report.render());
        assert_eq!(report.verdict(), Verdict::Fail, "{}", report.render());
        let reports: Vec<&String> = report.kernels.iter().flat_map(|k| &k.reports).collect();
        assert!(
            reports.iter().any(|r| r.contains("WARNING")),
            "{}",
            report.render()
        );
    }

    #[test]
    fn a_program_that_does_not_compile_is_an_error_with_the_compilers_message() {
        let path = here("tests/selftests/broken/does_not_compile.c");
        match selftest::run(&path, &options()) {
            Err(SelftestError::Compile { program, message }) => {
                assert_eq!(program, "does_not_compile");
                assert!(message.contains("undeclared_thing"), "{message}");
            }
            other => panic!("expected a compile error, got {other:?}"),
        }
        // The same directory's good programs are untouched by it; and a
        // path that is not there is refused with the fix.
        let missing = here("tests/selftests/no-such-test.c");
        let err = selftest::run(&missing, &options()).unwrap_err();
        assert!(
            err.to_string()
                .contains("give a .c file or a selftest directory"),
            "{err}"
        );
    }

    #[test]
    fn a_warm_run_reuses_the_compiled_program() {
        let path = here("tests/selftests/seed/hello_test.c");
        let first = passes(&path);
        let second = passes(&path);
        assert!(second.program.cached, "{:?}", second.program);
        assert_eq!(first.program.object, second.program.object);
    }

    // Upstream selftests of existing system calls, unmodified (README:
    // "Selftests" says why these).

    #[test]
    fn upstream_openat2_openat2_test() {
        let report = passes(&upstream("openat2/openat2_test.c"));
        assert!(report.counts()[0] > 100, "{}", report.render());
    }

    #[test]
    fn upstream_openat2_resolve_test() {
        let report = passes(&upstream("openat2/resolve_test.c"));
        assert!(report.counts()[0] > 80, "{}", report.render());
    }

    #[test]
    fn upstream_fchmodat2_fchmodat2_test() {
        passes(&upstream("fchmodat2/fchmodat2_test.c"));
    }

    #[test]
    fn upstream_prctl_set_process_name() {
        passes(&upstream("prctl/set-process-name.c"));
    }

    #[test]
    fn upstream_pidfd_pidfd_open_test() {
        passes(&upstream("pidfd/pidfd_open_test.c"));
    }

    #[test]
    fn upstream_proc_self() {
        passes(&upstream("proc/self.c"));
    }

    #[test]
    fn upstream_proc_proc_uptime_001() {
        passes(&upstream("proc/proc-uptime-001.c"));
    }

    #[test]
    fn upstream_proc_fd_002_posix_eq() {
        passes(&upstream("proc/fd-002-posix-eq.c"));
    }
}
