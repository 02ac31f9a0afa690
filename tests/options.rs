//! Bad boot options are refused before anything boots: the error names the
//! option, what it may be and the fix, and no thread is left behind.
//!
//! One test in this binary, so that the process's thread count is this
//! test's alone.

use std::time::Duration;

use lkl_harness::kernel::{MAX_CPUS, MAX_MEM_MIB, MIN_MEM_MIB};
use lkl_harness::{BootOptions, Error, Kernel};

/// The threads of this process, from `/proc/self/task`.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .count()
}

#[test]
fn every_bad_option_is_refused_before_boot_naming_option_range_and_fix() {
    let default = BootOptions::default;
    let cases: Vec<(&str, BootOptions, &str)> = vec![
        (
            "mem_mib",
            BootOptions {
                mem_mib: 0,
                ..default()
            },
            "MiB",
        ),
        (
            "mem_mib",
            BootOptions {
                mem_mib: MIN_MEM_MIB - 1,
                ..default()
            },
            "MiB",
        ),
        (
            "mem_mib",
            BootOptions {
                mem_mib: MAX_MEM_MIB + 1,
                ..default()
            },
            "MiB",
        ),
        (
            "mem_mib",
            BootOptions {
                mem_mib: 1_000_000,
                ..default()
            },
            "MiB",
        ),
        (
            "mem_mib",
            BootOptions {
                mem_mib: u32::MAX,
                ..default()
            },
            "MiB",
        ),
        (
            "cpus",
            BootOptions {
                cpus: 0,
                ..default()
            },
            "CONFIG_NR_CPUS",
        ),
        (
            "cpus",
            BootOptions {
                cpus: MAX_CPUS + 1,
                ..default()
            },
            "CONFIG_NR_CPUS",
        ),
        (
            "cmdline",
            BootOptions {
                cmdline: "quiet mem=1G".into(),
                ..default()
            },
            "BootOptions::mem_mib",
        ),
        (
            "cmdline",
            BootOptions {
                cmdline: "nr_cpus=4".into(),
                ..default()
            },
            "BootOptions::cpus",
        ),
        (
            "cmdline",
            BootOptions {
                cmdline: "a\0b".into(),
                ..default()
            },
            "NUL",
        ),
        (
            "boot_timeout",
            BootOptions {
                boot_timeout: Duration::ZERO,
                ..default()
            },
            "20 s",
        ),
    ];
    let before = threads();
    for (want, options, hint) in cases {
        let err = Kernel::boot(options.clone())
            .err()
            .unwrap_or_else(|| panic!("{options:?} booted"));
        let Error::BadOption {
            option,
            accepted,
            fix,
            ..
        } = &err
        else {
            panic!("{options:?}: expected Error::BadOption, got {err}");
        };
        assert_eq!(*option, want, "{err}");
        assert!(!accepted.is_empty() && !fix.is_empty(), "{err}");
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("bad boot option {want} = ")) && message.contains(hint),
            "{message}"
        );
        // The linked kernel checks the same way.
        assert!(
            matches!(Kernel::boot_linked(options), Err(Error::BadOption { .. })),
            "boot_linked took {want}"
        );
    }
    assert_eq!(threads(), before, "a refused boot left a thread behind");

    // The range's ends are good values: the smallest kernel boots, with
    // that memory by its own account, and no more.
    let smallest = Kernel::boot(BootOptions {
        mem_mib: MIN_MEM_MIB,
        cpus: 1,
        ..default()
    })
    .expect("the smallest kernel boots");
    let memory = format!("/{}K available", MIN_MEM_MIB * 1024);
    assert!(smallest.dmesg().contains(&memory), "{}", smallest.dmesg());
    let info = smallest.sysinfo().expect("sysinfo");
    let total = info.totalram * u64::from(info.mem_unit);
    assert!(
        total > 0 && total <= u64::from(MIN_MEM_MIB) << 20,
        "totalram {total} for {MIN_MEM_MIB} MiB"
    );
    smallest.halt().expect("halt");
}
