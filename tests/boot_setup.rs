//! What the kernel sets up at boot, read back: boot-time work that the
//! series makes faster must leave the same result behind.
//!
//! - `lkl/patches/0010-*` adds the sysfs parameters of each built-in
//!   module at once instead of one at a time: every parameter must still
//!   be there, with its value.
//! - `lkl/patches/0009-*` replaces the enum names in trace event formats
//!   in one pass per format instead of one per enum: each must still be
//!   replaced (the kernel with tracing: race, whose lockdep brings it
//!   in; the debug kernel leaves it out, `lkl/patches/0015-*`).
//! - `lkl/patches/0011-*` has lockdep set a lock class up when it first
//!   uses it instead of all 8,192 at the first lock: lockdep must work
//!   (every debug and race test) and write only the classes it uses.
//! - `lkl/patches/0015-*` lets lockdep track the IRQ state without the
//!   tracing core, which the debug kernel leaves out: lockdep must still
//!   tell locks taken in a hard interrupt, and tracefs must be gone.

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
#[cfg(lkl_kernel = "race")]
const EVAL_NAMES: &str = r"\b(ALARM_[A-Z_]+|[A-Z_]+_SOFTIRQ|___GFP_[A-Z0-9_]+_BIT|TICK_DEP_BIT_[A-Z_]+|LRU_[A-Z_]+|WB_REASON_[A-Z_]+|ZONE_[A-Z]+|DMA_[A-Z_]+|ERROR_DETECTOR_[A-Z]+)\b";

#[cfg(lkl_kernel = "race")]
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

/// A count from `/proc/lockdep_stats`: the number on the line `name:`.
#[cfg(any(lkl_kernel = "debug", lkl_kernel = "race"))]
fn lockdep_stat(stats: &str, name: &str) -> u64 {
    stats
        .lines()
        .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
        .and_then(|n| n.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {name:?} count in\n{stats}"))
}

/// Lockdep tracks the IRQ state (`TRACE_IRQFLAGS`): it has seen locks
/// taken in the timer's hard interrupt and locks taken with interrupts
/// on, which it only can through the hooks of `trace_preemptirq.c`. The
/// debug kernel builds them without the tracing core
/// (`lkl/patches/0015-*`), which tracefs being unknown shows.
#[cfg(any(lkl_kernel = "debug", lkl_kernel = "race"))]
#[test]
fn lockdep_tracks_the_irq_state() {
    let kernel = common::boot();
    // Let the tick interrupt a few times.
    kernel
        .nanosleep(std::time::Duration::from_millis(30))
        .expect("nanosleep");
    common::mount_proc(&kernel);
    let stats = read_file(&kernel, "/proc/lockdep_stats");
    for name in ["hardirq-safe locks", "hardirq-unsafe locks"] {
        let n = lockdep_stat(&stats, name);
        assert!(n > 0, "{name}: {n}\n{stats}");
    }
    kernel.mkdir(c"/tracing", 0o700).expect("mkdir /tracing");
    let tracefs = kernel.mount(c"tracefs", c"/tracing", c"tracefs", 0);
    if cfg!(lkl_kernel = "debug") {
        assert_eq!(tracefs, Err(lkl_harness::Errno::ENODEV), "tracefs");
    } else {
        assert_eq!(tracefs, Ok(()), "tracefs");
    }
    finish(kernel);
}

/// The classes lockdep uses, from `/proc/lockdep_stats`: (in use, max).
#[cfg(any(lkl_kernel = "debug", lkl_kernel = "race"))]
fn lock_classes_in_use(kernel: &Kernel) -> (usize, usize) {
    let stats = read_file(kernel, "/proc/lockdep_stats");
    let line = stats
        .lines()
        .find_map(|l| l.trim().strip_prefix("lock-classes:"))
        .unwrap_or_else(|| panic!("no lock-classes line in\n{stats}"));
    // " 1234 [max: 8192]"
    let numbers: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    assert_eq!(numbers.len(), 2, "{line:?}");
    (numbers[0], numbers[1])
}

#[cfg(any(lkl_kernel = "debug", lkl_kernel = "race"))]
#[test]
fn lockdep_writes_only_the_lock_classes_it_uses() {
    use object::{Object, ObjectSymbol};

    let library = std::fs::read(env!("LKL_SHARED_LIBRARY")).expect("read the kernel library");
    let elf = object::File::parse(&*library).expect("parse the kernel library");
    let symbol = elf
        .symbols()
        .find(|s| s.name() == Ok("lock_classes"))
        .expect("a lock_classes symbol in the kernel library");
    let kernel = common::boot();
    common::mount_proc(&kernel);
    // Classes in use only grow: they are counted after the pages are.
    let max = lock_classes_in_use(&kernel).1;
    // The library is mapped from its first address: symbol values are
    // offsets from the image's start.
    let start = kernel.image_range().0 + symbol.address() as usize;
    let size = symbol.size() as usize;
    assert_eq!(
        size % max,
        0,
        "lock_classes is {size} bytes for {max} classes"
    );
    let page = common::page_size();
    let first = start / page * page;
    let pages = (start + size).div_ceil(page) - first / page;
    let mut resident = vec![0u8; pages];
    // SAFETY: the range lies in the kernel library's mapping, which stays
    // mapped while `kernel` lives; mincore only writes one byte per page
    // into `resident`.
    let rc = unsafe {
        libc::mincore(
            first as *mut libc::c_void,
            pages * page,
            resident.as_mut_ptr(),
        )
    };
    assert_eq!(rc, 0, "mincore on lock_classes");
    // The last page also holds what follows the array (lockdep's bitmap
    // of classes in use, written at each registration): left out.
    let resident = resident[..pages - 1]
        .iter()
        .filter(|&&r| r & 1 != 0)
        .count();
    let (used, _) = lock_classes_in_use(&kernel);
    assert!(used > 0 && used < max, "{used} of {max} classes in use");
    // The classes in use are the first ones (none was freed yet): the
    // pages they span.
    let mut bound = (start + used * (size / max)).div_ceil(page) - first / page;
    // Where the host backs anonymous memory with huge pages unasked, a
    // page written brings in its whole huge page.
    let thp =
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    if thp.contains("[always]") {
        bound = bound.next_multiple_of(512) + 512;
    }
    assert!(
        resident <= bound,
        "{resident} of the first {} pages of lock_classes[] are in memory, for {used} of \
         {max} classes in use ({} bytes each): at most {bound} should be",
        pages - 1,
        size / max
    );
    finish(kernel);
}
