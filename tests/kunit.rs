//! The kernel's KUnit suites as cargo tests: every suite the KUnit kernel
//! builds (`lkl/config/kunit.config`: `KUNIT_ALL_TESTS` on the project's
//! configuration) is one test here, run alone in a private KUnit kernel,
//! so `cargo test --test kunit list` and nextest filter them by name.
//! hello's own suite (`lkl/patches/0007-*`) is proven to catch a seeded
//! bug of hello().
//!
//! The KUnit kernel does not depend on `LKL_KERNEL`, so these run only in
//! the default kernel's suite.
#![cfg(lkl_kernel = "default")]

use lkl_harness::kunit::{self, Status};
use lkl_harness::seeded;

lkl_harness::kunit_suites! {
    hello => "hello",
    lkl_delay => "lkl-delay",
    lkl_atomic => "lkl-atomic" (min_cpus = 2),
    lkl_sched => "lkl-sched" (min_cpus = 2),
    example => "example",
    example_init => "example_init",
    time_test_cases => "time_test_cases",
    resource => "resource",
    sysctl_test => "sysctl_test",
    exec => "exec",
    string => "string",
    string_helpers => "string_helpers",
    cpumask => "cpumask",
    hash => "hash",
    list_sort => "list_sort",
    lib_sort => "lib_sort",
    kunit_executor_test => "kunit_executor_test",
    kunit_try_catch_test => "kunit-try-catch-test",
    kunit_resource_test => "kunit-resource-test",
    kunit_log_test => "kunit-log-test",
    kunit_status => "kunit_status",
    kunit_current => "kunit_current",
    kunit_device => "kunit_device",
    kunit_platform_device => "kunit_platform_device",
    kunit_platform_driver => "kunit_platform_driver",
    string_stream_test => "string-stream-test",
    kunit_assert => "kunit-assert",
    math_int_pow => "math-int_pow",
    bitfields => "bitfields",
    checksum => "checksum",
    list_kunit_test => "list-kunit-test",
    hlist => "hlist",
    klist => "klist",
    hashtable => "hashtable",
    bits_test => "bits-test",
    cmdline => "cmdline",
    memcpy => "memcpy",
    is_signed_type => "is_signed_type",
    overflow => "overflow",
    stackinit => "stackinit",
    siphash => "siphash",
    qos_kunit_test => "qos-kunit-test",
    property_entry => "property-entry",
}

/// Suites the KUnit kernel builds but that cannot test anything here,
/// with the reason. `KUNIT_ALL_TESTS` builds every suite whose
/// dependencies are met, and hides their options, so they are listed here
/// rather than configured out.
const EXCLUDED: &[(&str, &str)] = &[(
    "fortify",
    "every case skips: it needs CONFIG_FORTIFY_SOURCE, which needs \
     ARCH_HAS_FORTIFY_SOURCE, and the lkl port does not select it",
)];

/// Every suite of the KUnit kernel is a test above or excluded with its
/// reason: a suite that a new configuration or patch brings in cannot go
/// untested without notice.
#[test]
fn every_suite_of_the_kunit_kernel_is_a_test_or_excluded() {
    let names = kunit::list("*").expect("the KUnit kernel lists its tests");
    assert!(
        names.iter().any(|n| n == "hello.hello_test_args_layout"),
        "{names:#?}"
    );
    let mut listed = kunit::suites_of(&names);
    listed.sort();
    let mut known: Vec<String> = KUNIT_SUITES
        .iter()
        .chain(EXCLUDED.iter().map(|(s, _)| s))
        .map(|s| s.to_string())
        .collect();
    known.sort();
    assert_eq!(
        listed, known,
        "the KUnit kernel's suites differ from the tests of tests/kunit.rs: add \
         the new ones to kunit_suites! (or to EXCLUDED, with the reason)"
    );
}

/// hello's suite runs its four cases, and each really passes (none is
/// skipped on this arch, which calls hello() directly).
#[test]
fn the_hello_suite_passes_every_case_on_this_arch() {
    let report = kunit::run("hello").expect("the KUnit kernel boots");
    assert!(report.passed(), "{}", report.render());
    let suite = report.suite("hello").expect("the hello suite ran");
    let cases: Vec<(&str, &Status)> = suite
        .cases
        .iter()
        .map(|c| (c.name.as_str(), &c.status))
        .collect();
    assert_eq!(
        cases,
        [
            ("hello_test_args_layout", &Status::Pass),
            ("hello_test_short_size_is_einval", &Status::Pass),
            ("hello_test_null_args_is_efault", &Status::Pass),
            ("hello_test_kernel_args_are_efault", &Status::Pass),
        ]
    );
    assert_eq!(report.suites.len(), 1, "the glob picks one suite");
}

/// A seeded bug (`lkl/mutants/size-off-by-one.patch`: a 15-byte size
/// accepted) fails hello's suite, at the expectation's line, with the
/// size that broke it; the other cases still pass.
#[test]
fn the_hello_suite_catches_a_size_off_by_one() {
    let spec = kunit::spec(vec![seeded::mutant_patch("size-off-by-one")]);
    let report = kunit::run_on(&spec, "hello", Default::default()).expect("the mutant boots");
    assert!(!report.passed(), "{}", report.render());
    let suite = report.suite("hello").expect("the hello suite ran");
    assert_eq!(suite.status, Status::Fail);
    let failed: Vec<&kunit::Case> = suite
        .cases
        .iter()
        .filter(|c| c.status == Status::Fail)
        .collect();
    assert_eq!(failed.len(), 1, "{}", report.render());
    assert_eq!(failed[0].name, "hello_test_short_size_is_einval");
    let diagnostics = failed[0].diagnostics.join("\n");
    assert!(
        diagnostics.contains("EXPECTATION FAILED at kernel/hello_kunit.c:"),
        "{diagnostics}"
    );
    assert!(diagnostics.contains("size 15"), "{diagnostics}");
    let text = report.render();
    assert!(
        text.contains("[FAILED] hello_test_short_size_is_einval"),
        "{text}"
    );
    assert!(
        text.contains("Ran 4 tests: passed: 3, failed: 1, skipped: 0"),
        "{text}"
    );
}

/// A glob the command line cannot carry is refused before anything boots.
#[test]
fn a_bad_glob_is_refused_before_boot() {
    for glob in ["", "two words", "quo\"te"] {
        let err = kunit::run(glob).expect_err("refused");
        assert!(err.to_string().contains("suite glob"), "{glob:?}: {err}");
    }
}
