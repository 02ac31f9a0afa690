//! A boot whose kernel is up but whose hang monitor thread cannot be
//! spawned fails, and leaves the running kernel loaded: its threads run
//! its code, and unloading the library under them would crash the
//! process the next time one of them woke.
//!
//! One test in its own process: it counts this process's mappings of
//! private kernel libraries, which other tests would load and unload.

use lkl_harness::kernel::testing::FAIL_HANG_MONITOR_SPAWN;
use lkl_harness::{BootOptions, Error, Kernel};
use std::sync::atomic::Ordering;

/// The private kernel libraries mapped in this process, by the address
/// of their code: each instance (in a namespace of its own, or a copy in
/// the temporary directory) maps its file's code once.
fn mapped_kernels() -> std::collections::BTreeSet<String> {
    std::fs::read_to_string("/proc/self/maps")
        .expect("read /proc/self/maps")
        .lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            let file = fields.get(5)?.rsplit('/').next()?;
            let kernel = (file.starts_with("lkl-") || file.starts_with("liblkl"))
                && file.ends_with(".so")
                && fields[1] == "r-xp";
            kernel.then(|| l.to_string())
        })
        .collect()
}

#[test]
fn a_hang_monitor_that_cannot_start_fails_the_boot_and_keeps_the_kernel_loaded() {
    assert!(mapped_kernels().is_empty(), "{:?}", mapped_kernels());
    FAIL_HANG_MONITOR_SPAWN.store(true, Ordering::SeqCst);
    let err = Kernel::boot(BootOptions::default())
        .err()
        .expect("a boot without its hang monitor is an error");
    let Error::Load(message) = &err else {
        panic!("expected Error::Load, got {err}");
    };
    assert!(
        message.contains("cannot spawn the hang monitor thread"),
        "{message}"
    );
    // The kernel booted (the failure came after), and its library stays.
    assert_eq!(mapped_kernels().len(), 1, "{:?}", mapped_kernels());

    // The injection was used up: the next boot is whole, and its kernel
    // is unloaded when it halts.
    let kernel = Kernel::boot(BootOptions::default()).expect("the next boot");
    assert_eq!(kernel.getpid(), Ok(1));
    assert_eq!(mapped_kernels().len(), 2, "{:?}", mapped_kernels());
    kernel.halt().expect("the kernel halts");
    assert_eq!(mapped_kernels().len(), 1, "{:?}", mapped_kernels());
}
