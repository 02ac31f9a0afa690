//! kmemleak on the kernel linked into the test executable
//! (`Kernel::boot_linked`, what the command line uses): its data and bss
//! lie among the executable's own, and the leak scan must see them as the
//! roots they are: a leaked object is reported, with its allocation's
//! source line, and nothing else is.
//!
//! One test: the linked kernel boots once per process.

#![cfg(lkl_kernel = "debug")]

use lkl_harness::hello::HelloArgs;
use lkl_harness::{BootOptions, Error, Kernel};

#[test]
fn the_linked_kernel_reports_a_leak_and_only_that_leak() {
    // lkl_test_leak (arch/lkl/kernel/debug.c) allocates 333 bytes at
    // boot, fills them with 0x5a and forgets them.
    let kernel = Kernel::boot_linked(BootOptions {
        cmdline: "lkl_test_leak=1".into(),
        ..BootOptions::default()
    })
    .expect("the linked debug kernel boots");
    for _ in 0..3 {
        kernel
            .hello(&HelloArgs::new(c"world", 0))
            .expect("hello works");
    }
    match kernel.finish() {
        Err(Error::Splat { lines, reports, .. }) => {
            let all = reports.join("\n");
            assert!(
                lines
                    .iter()
                    .any(|l| l.contains("memory leak(s) confirmed by a scan")),
                "{lines:#?}"
            );
            assert!(
                all.contains("unreferenced object")
                    && all.contains("5a 5a 5a 5a 5a 5a 5a 5a 5a 5a 5a 5a 5a 5a 5a 5a  ZZZZ"),
                "{all}"
            );
            assert!(
                all.contains("lkl_test_leak_object") && all.contains("arch/lkl/kernel/debug.c:"),
                "the allocation's frame with its source line:\n{all}"
            );
            // The leak is the only one: the kernel's own objects, rooted in
            // its data and bss inside the executable, are not reported.
            assert_eq!(all.matches("unreferenced object").count(), 1, "{all}");
        }
        other => panic!("the leak must fail finish(), got {other:?}"),
    }
}
