//! What the kernel sets up at boot, read back: boot-time work that the
//! series makes faster must leave the same result behind.
//!
//! - `lkl/patches/0010-*` adds the sysfs parameters of each built-in
//!   module at once instead of one at a time: every parameter must still
//!   be there, with its value.
//! - `lkl/patches/0009-*` replaces the enum names in trace event formats
//!   in one pass per format instead of one per enum: each must still be
//!   replaced (kernels with tracing: debug and race, whose lockdep brings
//!   it in).

mod common;

use common::{boot_with, dir_entries, finish, read_file};
use lkl_harness::{BootOptions, Kernel};

fn mount_sysfs(kernel: &Kernel) {
    match kernel.mkdir(c"/sys", 0o555) {
        Ok(()) | Err(lkl_harness::Errno::EEXIST) => {}
        Err(e) => panic!("mkdir /sys: {e}"),
    }
    kernel
        .mount(c"sysfs", c"/sys", c"sysfs", 0)
        .expect("mount sysfs");
}

#[test]
fn every_built_in_module_parameter_is_in_sysfs_with_its_value() {
    let kernel = boot_with(BootOptions {
        cmdline: "rcutree.qhimark=12345 rcutree.rcu_divisor=6 printk.time=0".into(),
        ..BootOptions::default()
    });
    mount_sysfs(&kernel);
    // A module of many parameters, one of two, and the core_param()s,
    // whose names have no module prefix.
    let expected: [(&str, &[&str]); 3] = [
        (
            "rcutree",
            &[
                "blimit",
                "dump_tree",
                "gp_cleanup_delay",
                "gp_init_delay",
                "jiffies_till_first_fqs",
                "jiffies_till_next_fqs",
                "jiffies_to_sched_qs",
                "kthread_prio",
                "qhimark",
                "qlowmark",
                "qovld",
                "rcu_divisor",
                "rcu_fanout_leaf",
                "rcu_min_cached_objs",
                "rcu_resched_ns",
                "use_softirq",
            ],
        ),
        (
            "printk",
            &[
                "always_kmsg_dump",
                "console_suspend",
                "ignore_loglevel",
                "time",
            ],
        ),
        (
            "kernel",
            &["initcall_debug", "panic", "panic_on_warn", "pause_on_oops"],
        ),
    ];
    for (module, names) in expected {
        let dir = format!("/sys/module/{module}/parameters");
        let found = dir_entries(&kernel, &dir);
        for name in names {
            assert!(
                found.iter().any(|f| f == name),
                "{dir}: no {name} in {found:?}"
            );
        }
    }
    let rcutree = dir_entries(&kernel, "/sys/module/rcutree/parameters");
    assert!(
        rcutree.len() >= 25,
        "rcutree has {} parameters: {rcutree:?}",
        rcutree.len()
    );
    for (path, value) in [
        ("/sys/module/rcutree/parameters/qhimark", "12345\n"),
        ("/sys/module/rcutree/parameters/rcu_divisor", "6\n"),
        ("/sys/module/rcutree/parameters/qlowmark", "100\n"),
        ("/sys/module/printk/parameters/time", "N\n"),
        ("/sys/module/kernel/parameters/initcall_debug", "N\n"),
    ] {
        assert_eq!(read_file(&kernel, path), value, "{path}");
    }
    finish(kernel);
}

/// The enum and sizeof names that `TRACE_DEFINE_ENUM()` and
/// `TRACE_DEFINE_SIZEOF()` give numbers to, in the systems of this
/// kernel's events that have them: none may be left in a format.
#[cfg(any(lkl_kernel = "debug", lkl_kernel = "race"))]
const EVAL_NAMES: &str = r"\b(ALARM_[A-Z_]+|[A-Z_]+_SOFTIRQ|___GFP_[A-Z0-9_]+_BIT|TICK_DEP_BIT_[A-Z_]+|LRU_[A-Z_]+|WB_REASON_[A-Z_]+|ZONE_[A-Z]+|DMA_[A-Z_]+|ERROR_DETECTOR_[A-Z]+)\b";

#[cfg(any(lkl_kernel = "debug", lkl_kernel = "race"))]
#[test]
fn trace_event_formats_give_enums_by_value() {
    use common::subdirectories;

    let kernel = common::boot();
    kernel.mkdir(c"/tracing", 0o700).expect("mkdir /tracing");
    kernel
        .mount(c"tracefs", c"/tracing", c"tracefs", 0)
        .expect("mount tracefs");
    let names = regex::Regex::new(EVAL_NAMES).unwrap();
    let mut formats = 0;
    for system in subdirectories(&kernel, "/tracing/events") {
        let dir = format!("/tracing/events/{system}");
        for event in subdirectories(&kernel, &dir) {
            let path = format!("{dir}/{event}/format");
            let format = read_file(&kernel, &path);
            formats += 1;
            let left: Vec<_> = names.find_iter(&format).map(|m| m.as_str()).collect();
            assert!(left.is_empty(), "{path} still names {left:?}:\n{format}");
        }
    }
    assert!(formats > 100, "only {formats} event formats");
    let softirq = read_file(&kernel, "/tracing/events/irq/softirq_entry/format");
    assert!(
        softirq.contains(r#"{ 0, "HI" }, { 1, "TIMER" }"#),
        "{softirq}"
    );
    finish(kernel);
}
