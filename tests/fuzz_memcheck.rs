//! The fuzzer on the debug kernel: a memory bug only a name of 64 bytes
//! or more (with a non-ASCII 63rd byte) reaches, which the fixed tests
//! miss, is found by KASAN and UBSAN while fuzzing.

#![cfg(lkl_kernel = "debug")]

mod common;

use lkl_harness::fuzz::{self, hello::Hello, Event, Options};
use lkl_harness::kbuild::{Spec, Variant};
use lkl_harness::{seeded, BootOptions, Kernel};

#[test]
fn a_stack_overread_only_long_names_reach_is_found_on_the_debug_kernel() {
    let spec = Spec {
        variant: Variant::Debug,
        mutants: vec![seeded::fuzz_mutant_patch("utf8-cut-overread")],
        coverage: true,
    };
    let boot = || Kernel::boot_seeded(&spec, BootOptions::default()).map_err(|e| e.to_string());
    let kernel = boot().expect("the debug coverage kernel with the mutant boots");
    let options = Options {
        seed: 11,
        max_execs: Some(200_000),
        duration: None,
        minimise_tries: 40,
        ..Options::default()
    };
    let outcome = fuzz::run(
        &kernel,
        &options,
        &mut Hello::new(),
        &boot,
        |_: Event<'_>| {},
    );
    std::mem::forget(kernel);
    let finding = outcome.finding.expect("the fuzzer finds the over-read");
    assert!(
        finding.message.contains("BUG: KASAN: stack-out-of-bounds")
            || finding.message.contains("UBSAN: array-index-out-of-bounds"),
        "{}",
        finding.message
    );
    assert!(
        finding.message.contains("kernel/hello.c"),
        "{}",
        finding.message
    );
    let mutant = boot().expect("boots");
    assert!(
        fuzz::hello::replay(&mutant, &finding.minimised).is_err(),
        "fails on the mutant"
    );
    std::mem::forget(mutant);
    let fixed = common::boot();
    fuzz::hello::replay(&fixed, &finding.minimised).expect("passes on the unmodified kernel");
    common::finish(fixed);
}
