//! Coverage of the code under test, from the coverage kernel's own gcov
//! counters and trace-pc blocks. The coverage kernel is the default
//! kernel's configuration whatever `LKL_KERNEL` says (what `lkl-harness
//! coverage` measures), built on first use from the default kernel's build
//! directory plus the instrumented files.

mod common;

use lkl_harness::coverage::{self, gcov};
use lkl_harness::hello::HelloArgs;
use lkl_harness::kbuild::{Spec, Variant};
use lkl_harness::{seeded, BootOptions, Kernel};

/// The line of `kernel/hello.c` (in the tree the kernel was built from)
/// that contains `text`.
fn line_of(text: &str) -> u32 {
    let tree = seeded::cache().source_dir();
    let source = std::fs::read_to_string(tree.join("kernel/hello.c")).expect("hello.c");
    let found: Vec<usize> = source
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(text))
        .map(|(n, _)| n + 1)
        .collect();
    assert_eq!(found.len(), 1, "{text:?} is on exactly one line of hello.c");
    found[0] as u32
}

fn boot(spec: &Spec) -> Kernel {
    Kernel::boot_seeded(spec, BootOptions::default())
        .unwrap_or_else(|e| panic!("the coverage kernel did not boot: {e}"))
}

/// Calls made on two kernels, from two threads each, are all counted: the
/// greeting's line ran once per call, the loud line never (no call asked
/// for it), and the size check took one branch only.
#[test]
fn counters_of_every_kernel_and_thread_add_up_to_the_calls_made() {
    let spec = Spec::of(Variant::Default).with_coverage();
    let kernels = [boot(&spec), boot(&spec)];
    const CALLS: usize = 25;
    std::thread::scope(|s| {
        let threads: Vec<_> = kernels
            .iter()
            .flat_map(|kernel| [kernel, kernel])
            .map(|kernel| {
                s.spawn(move || {
                    let args = HelloArgs::new(c"coverage", 0);
                    for _ in 0..CALLS {
                        kernel.hello(&args).expect("hello works");
                    }
                })
            })
            .collect();
        // Joined: a join waits for the thread's exit, TLS destructors
        // included, before the counters are read and the kernels halt.
        for thread in threads {
            thread.join().expect("a calling thread");
        }
    });
    let counters: Vec<_> = kernels
        .iter()
        .map(|k| {
            gcov::read_all(k)
                .expect("the counters can be read")
                .expect("a coverage kernel has gcov")
        })
        .collect();
    let summed = gcov::sum(counters).expect("the counters add up");
    let report = coverage::report_of(&spec, &summed).expect("gcov reports");
    let greeting = line_of("pr_info(\"Hello, %s!\\n\", name);");
    let loud = line_of("pr_info(\"HELLO, %s!!!\\n\", name);");
    assert_eq!(
        report.line("kernel/hello.c", greeting),
        Some((kernels.len() * 2 * CALLS) as u64),
        "every call greets once"
    );
    assert_eq!(report.line("kernel/hello.c", loud), Some(0));
    let hello = report
        .files
        .iter()
        .find(|f| f.file == "kernel/hello.c")
        .expect("hello.c is reported");
    assert!(hello.uncovered().contains(&loud), "{:?}", hello.uncovered());
    let tree = seeded::cache().source_dir();
    let shown = report.render(&tree);
    assert!(
        shown.contains(&format!(
            "kernel/hello.c:{loud}: pr_info(\"HELLO, %s!!!\\n\", name);  never reached"
        )),
        "{shown}"
    );
    let lcov = report.lcov(&tree, "t");
    assert!(lcov.contains(&format!("DA:{loud},0\n")), "{lcov}");
    assert!(
        lcov.contains(&format!("DA:{greeting},{}\n", kernels.len() * 2 * CALLS)),
        "{lcov}"
    );
    for kernel in kernels {
        common::finish(kernel);
    }
}

/// The kernel linked in has no gcov (it is never a coverage kernel, even
/// when `LKL_LIBRARY` names one): reading its counters says so rather than
/// reporting a coverage of nothing.
#[test]
fn a_kernel_without_coverage_has_no_counters() {
    let kernel = Kernel::boot_linked(BootOptions::default()).expect("the linked kernel boots");
    assert!(gcov::read_all(&kernel).expect("no error").is_none());
    common::finish(kernel);
}

/// The coverage kernel's basic blocks reach the host per thread: a call
/// traced on this thread runs instrumented blocks of hello.c, a loud call
/// the same blocks and more (its second greeting), a call on another
/// thread none of this thread's, and the process's set has them all.
#[test]
fn a_trace_has_the_blocks_of_the_calls_of_its_thread() {
    use std::collections::BTreeSet;
    let spec = Spec::of(Variant::Default).with_coverage();
    let library = seeded::build(&spec).expect("the coverage kernel builds");
    let map = coverage::Map::load(&library).expect("the library has its blocks");
    let hello_blocks: BTreeSet<u32> = map
        .sites
        .iter()
        .filter(|s| s.unit() == Some("kernel/hello.c"))
        .map(|s| s.offset)
        .collect();
    assert!(hello_blocks.len() > 5, "{hello_blocks:?}");
    let kernel = boot(&spec);
    let traced = |flags| {
        let (r, t) = lkl_sim::coverage::trace(|| kernel.hello(&HelloArgs::new(c"t", flags)));
        r.expect("hello works");
        assert!(!t.truncated);
        t.blocks.into_iter().collect::<BTreeSet<u32>>()
    };
    let quiet = traced(0);
    let loud = traced(lkl_harness::hello::HELLO_FLAG_LOUD);
    assert!(!quiet.is_empty());
    assert!(
        quiet.is_subset(&hello_blocks),
        "{quiet:?} not in {hello_blocks:?}"
    );
    assert!(loud.is_subset(&hello_blocks));
    assert!(
        quiet.is_subset(&loud) && loud.len() > quiet.len(),
        "{quiet:?} {loud:?}"
    );
    assert_eq!(traced(0), quiet, "the same call runs the same blocks");
    let ((), other) = lkl_sim::coverage::trace(|| {
        std::thread::scope(|s| {
            s.spawn(|| {
                kernel
                    .hello(&HelloArgs::new(c"other", 0))
                    .expect("hello works")
            })
            .join()
            .expect("the other thread");
        });
    });
    assert!(other.blocks.is_empty(), "{:?}", other.blocks);
    let all: BTreeSet<u32> = lkl_sim::coverage::blocks().into_iter().collect();
    assert!(loud.is_subset(&all));
    common::finish(kernel);
}
