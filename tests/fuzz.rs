//! The fuzzer: guided by the coverage kernel's blocks, checked by the
//! contract of hello(2) and the kernel's own reports.

mod common;

use lkl_harness::fuzz::{self, hello::Hello, Event, Options};
use lkl_harness::kbuild::{Spec, Variant};
use lkl_harness::{seeded, BootOptions, Kernel};

fn boot(spec: &Spec) -> Kernel {
    Kernel::boot_seeded(spec, BootOptions::default())
        .unwrap_or_else(|e| panic!("the kernel did not boot: {e}"))
}

/// Fuzzes hello(2) on a fresh kernel of `spec` for `execs` calls from an
/// empty corpus; returns the kernel and the outcome.
fn fuzz_hello(spec: &Spec, seed: u64, execs: u64) -> (Kernel, fuzz::Outcome) {
    let kernel = boot(spec);
    let options = Options {
        seed,
        max_execs: Some(execs),
        duration: None,
        ..Options::default()
    };
    let boot_again =
        || Kernel::boot_seeded(spec, BootOptions::default()).map_err(|e| e.to_string());
    let outcome = fuzz::run(
        &kernel,
        &options,
        &mut Hello::new(),
        &boot_again,
        |_: Event<'_>| {},
    );
    (kernel, outcome)
}

/// From an empty corpus, a fixed number of calls on the unmodified
/// kernel reach every block of kernel/hello.c and find nothing: the
/// fuzzer's contract of hello(2) is the kernel's.
#[test]
fn the_unmodified_kernel_has_no_finding_and_every_block_of_hello_c_is_reached() {
    let spec = Spec::of(Variant::Default).with_coverage();
    let library = seeded::build(&spec).expect("the coverage kernel builds");
    let map = lkl_harness::coverage::Map::load(&library).expect("its blocks");
    let hello: std::collections::HashSet<u32> = map
        .sites
        .iter()
        .filter(|s| s.unit() == Some("kernel/hello.c"))
        .map(|s| s.offset)
        .collect();
    let (kernel, outcome) = fuzz_hello(&spec, 7, 20_000);
    if let Some(f) = &outcome.finding {
        panic!(
            "a finding on the unmodified kernel: {}\n{}",
            f.message, f.decoded
        );
    }
    let missed: Vec<_> = map
        .sites
        .iter()
        .filter(|s| hello.contains(&s.offset) && !outcome.blocks.contains(&s.offset))
        .collect();
    assert!(missed.is_empty(), "blocks never reached: {missed:#?}");
    assert_eq!(outcome.stats.execs, 20_000);
    common::finish(kernel);
}

/// A WARN only sizes 81 to 128 reach (`lkl/fuzz-mutants/
/// small-extension-warn.patch`, which the fixed tests miss): the fuzzer
/// finds it from an empty corpus, minimises it, and the minimised input
/// fails on the mutant and passes on the unmodified kernel.
#[test]
fn a_warn_only_a_rare_size_reaches_is_found_minimised_and_reproduced() {
    let spec = Spec {
        variant: Variant::Default,
        mutants: vec![seeded::fuzz_mutant_patch("small-extension-warn")],
        coverage: true,
    };
    let (kernel, outcome) = fuzz_hello(&spec, 3, 500_000);
    let finding = outcome.finding.expect("the fuzzer finds the WARN");
    assert!(finding.message.contains("WARNING:"), "{}", finding.message);
    assert!(
        finding.message.contains("kernel/hello.c"),
        "{}",
        finding.message
    );
    assert!(finding.minimised.len() <= finding.input.len());
    assert!(finding.decoded.contains("Extended"), "{}", finding.decoded);
    drop(kernel);
    let mutant = boot(&spec);
    let again = fuzz::hello::replay(&mutant, &finding.minimised);
    assert!(
        again.is_err_and(|m| m.contains("WARNING:")),
        "the reproducer fails on the mutant"
    );
    drop(mutant);
    let fixed = boot(&Spec::of(Variant::Default));
    fuzz::hello::replay(&fixed, &finding.minimised)
        .expect("the reproducer passes on the fixed kernel");
    common::finish(fixed);
}

/// A bug that takes the whole process down (`lkl/fuzz-mutants/
/// direct-user-read.patch`: a memcpy() from a user pointer, reached with
/// a bad pointer and a size of 65 to 128) does not take the fuzzer with
/// it: `lkl-harness fuzz` runs its workers in child processes, reports the
/// crash with the minimised input, and that input crashes a fresh process
/// on the mutant and passes on the unmodified kernel.
#[test]
fn a_crash_is_a_finding_with_its_input_and_the_fuzzer_survives_it() {
    use lkl_harness::fuzz::campaign::{self, Campaign};
    let program = std::path::PathBuf::from(env!("CARGO_BIN_EXE_lkl-harness"));
    let corpus = std::env::temp_dir().join(format!("lkl-fuzz-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&corpus);
    let mutant = seeded::fuzz_mutant_patch("direct-user-read");
    let c = Campaign {
        program: program.clone(),
        seconds: 60,
        seed: 5,
        cpus: 2,
        corpus: corpus.clone(),
        jobs: 1,
        variant: Variant::Default,
        mutants: vec![mutant.clone()],
    };
    let summary = campaign::run(&c, |_| {}).expect("the campaign runs");
    let finding = summary.finding.expect("the crash is found");
    assert!(finding.contains("SIGSEGV"), "{finding}");
    let input = std::fs::read(&summary.reproducer[0]).expect("the input is saved");
    let test = std::fs::read_to_string(&summary.reproducer[1]).expect("the test is saved");
    assert!(test.contains("fuzz::hello::replay"), "{test}");
    let library = seeded::build(&Spec {
        variant: Variant::Default,
        mutants: vec![mutant],
        coverage: true,
    })
    .expect("the mutant builds");
    let status =
        campaign::replay_in_child(&program, &library, &input, &corpus).expect("the replay runs");
    assert_eq!(
        status.code(),
        None,
        "the input crashes a fresh process: {status}"
    );
    let fixed = boot(&Spec::of(Variant::Default));
    fuzz::hello::replay(&fixed, &input).expect("it passes on the unmodified kernel");
    common::finish(fixed);
    let _ = std::fs::remove_dir_all(&corpus);
}
