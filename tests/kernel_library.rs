//! The kernel library itself: it is real Linux, it boots, takes system
//! calls from many threads, keeps time and halts.

mod common;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{boot, boot_two_instances, boot_with, finish, from_c_chars, mount_proc};
use lkl_harness::{kbuild, sys, BootOptions, Errno, Kernel};

#[test]
fn a_private_kernel_is_loaded_from_this_builds_own_library() {
    let library = Path::new(env!("LKL_SHARED_LIBRARY"));
    // This build's output, not the shared cache, which a later build
    // (another profile, another checkout) rewrites.
    assert!(
        library.starts_with(env!("OUT_DIR")) && !library.starts_with(env!("LKL_CACHE_DIR")),
        "{} is not this build's own",
        library.display()
    );
    // Named for its content: a newer build installs another file and
    // leaves this one as it was.
    let digest = kbuild::stable_hash(&std::fs::read(library).expect("the library"));
    assert_eq!(
        library.file_name(),
        Some(OsStr::new(&format!("liblkl-{digest:016x}.so")))
    );
    // And it is what Kernel::boot loads, unless LKL_LIBRARY names another
    // (as `lkl-harness mutants` and `coverage` do).
    let expected = match std::env::var_os("LKL_LIBRARY").filter(|p| !p.is_empty()) {
        Some(other) => kbuild::stable_hash(&std::fs::read(other).expect("LKL_LIBRARY")),
        None => digest,
    };
    let kernel = boot();
    let loaded = kernel
        .with_image(|image| image.map(|image| image.path.clone()))
        .expect("the kernel's image");
    let bytes = std::fs::read(&loaded).expect("the loaded library");
    assert_eq!(
        kbuild::stable_hash(&bytes),
        expected,
        "{}",
        loaded.display()
    );
    finish(kernel);
}

/// A function's address in this process.
type Symbol = *const libc::c_void;

/// The file the dynamic linker says `address` is in.
fn object_of(address: Symbol) -> String {
    // SAFETY: an all-zero Dl_info is valid, and dladdr only writes it.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid place to write; dladdr reads no memory at
    // `address`.
    let found = unsafe { libc::dladdr(address, &mut info) };
    assert_ne!(found, 0, "dladdr found no object at {address:?}");
    // SAFETY: dladdr set dli_fname to a NUL-terminated path it owns.
    unsafe { std::ffi::CStr::from_ptr(info.dli_fname) }
        .to_string_lossy()
        .into_owned()
}

#[test]
fn the_kernels_own_symbols_stay_inside_it() {
    // The static library linked into this executable: the kernel's
    // memcpy and the like are its own, so this program's calls reach the
    // C library's.
    for (name, function) in [
        ("memcpy", libc::memcpy as Symbol),
        ("memset", libc::memset as Symbol),
        ("strlen", libc::strlen as Symbol),
        ("strcmp", libc::strcmp as Symbol),
    ] {
        let object = object_of(function);
        assert!(object.contains("libc.so"), "{name} is in {object}");
    }

    // A private copy of the shared library: it gives the API, and nothing
    // else of the kernel's, to the dynamic linker.
    let copy = std::env::temp_dir().join(format!("lkl-symbols-{}.so", std::process::id()));
    std::fs::copy(env!("LKL_SHARED_LIBRARY"), &copy).expect("copy the library");
    // SAFETY: the kernel library runs no code when loaded (no
    // initialisers), and this copy's file name is used by nothing else.
    let library = unsafe { libloading::Library::new(&copy) }.expect("load the copy");
    let resolves = |symbol: &str| {
        // SAFETY: the pointer is only compared with null, never called.
        unsafe { library.get::<Symbol>(symbol.as_bytes()) }.is_ok()
    };
    for api in lkl_harness::kbuild::API_SYMBOLS {
        assert!(resolves(api), "{api} is not exported");
    }
    for internal in [
        "start_kernel",
        "_printk",
        "memcpy",
        "kmalloc_caches",
        "init_task",
        "jiffies",
    ] {
        assert!(!resolves(internal), "the kernel exports {internal}");
    }
    drop(library);
    std::fs::remove_file(&copy).expect("remove the copy");
}

#[test]
fn boot_log_has_the_version_and_command_line() {
    let options = BootOptions {
        cmdline: "lkl_test_marker=1".into(),
        ..BootOptions::default()
    };
    let kernel = boot_with(options.clone());
    let log = kernel.dmesg();
    let first = kernel.log().into_iter().next().expect("a log");
    assert!(
        first.text.starts_with("Linux version 6.12"),
        "first record: {first:?}"
    );
    let line = format!("Kernel command line: {}", options.command_line());
    assert!(line.contains(" nr_cpus=") && line.ends_with(" lkl_test_marker=1"));
    assert!(log.contains(&line), "{log}");
    assert!(log.contains("Run /init as init process"), "{log}");
    kernel.halt().expect("halt");
}

#[test]
fn uname_says_linux_on_lkl() {
    let kernel = boot();
    let uts = kernel.uname().expect("uname");
    assert_eq!(from_c_chars(&uts.sysname), "Linux");
    assert_eq!(from_c_chars(&uts.machine), "lkl");
    assert!(from_c_chars(&uts.release).starts_with("6.12"));
}

#[test]
fn getpid_and_gettid_answer_for_the_calling_thread() {
    let kernel = boot();
    let pid = kernel.getpid().expect("getpid");
    let tid = kernel.gettid().expect("gettid");
    assert_eq!(pid, 1, "host threads are threads of pid 1");
    assert!(tid > 1, "the calling thread has a task of its own: {tid}");
    // The same thread keeps its task.
    assert_eq!(kernel.gettid(), Ok(tid));
}

#[test]
fn eight_threads_calling_at_once_get_distinct_tasks() {
    let kernel = boot();
    let tids: Vec<i64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let tid = kernel.gettid().expect("gettid");
                    for _ in 0..200 {
                        assert_eq!(kernel.gettid(), Ok(tid));
                        assert_eq!(kernel.getpid(), Ok(1));
                    }
                    tid
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let distinct: BTreeSet<i64> = tids.iter().copied().collect();
    assert_eq!(distinct.len(), 8, "tids: {tids:?}");
}

#[test]
fn nanosleep_sleeps_and_the_monotonic_clock_advances() {
    let kernel = boot();
    let monotonic = libc::CLOCK_MONOTONIC;
    let before = kernel.clock_gettime(monotonic).expect("clock_gettime");
    let started = Instant::now();
    kernel
        .nanosleep(Duration::from_millis(20))
        .expect("nanosleep");
    let slept = started.elapsed();
    let after = kernel.clock_gettime(monotonic).expect("clock_gettime");
    assert!(slept >= Duration::from_millis(20), "slept only {slept:?}");
    let kernel_ns =
        (after.tv_sec - before.tv_sec) * 1_000_000_000 + (after.tv_nsec - before.tv_nsec);
    assert!(
        kernel_ns >= 20_000_000,
        "kernel clock advanced {kernel_ns} ns"
    );
}

#[test]
fn sysinfo_reports_the_memory_it_was_given() {
    let kernel = boot_with(BootOptions {
        mem_mib: 48,
        ..BootOptions::default()
    });
    let info = kernel.sysinfo().expect("sysinfo");
    // All of mem= is RAM; what the page allocator manages is that less
    // the page array and the boot reservations.
    assert!(
        kernel.dmesg().contains("/49152K available"),
        "{}",
        kernel.dmesg()
    );
    let total = info.totalram * u64::from(info.mem_unit);
    // The debug kernel's stack depot (KASAN's and kmemleak's stacks)
    // takes a 16 MiB hash table from memblock at boot.
    let reserved: u64 = if cfg!(lkl_kernel = "debug") {
        18 << 20
    } else {
        2 << 20
    };
    assert!(
        total <= 48 << 20 && total > (48 << 20) - reserved,
        "totalram {total} for mem=48M"
    );
    assert!(info.freeram > 0 && info.freeram < total);
    assert!(info.procs >= 3, "kthreadd, init and more: {}", info.procs);
}

#[test]
fn proc_version_reads_through_open_and_read() {
    let kernel = boot();
    mount_proc(&kernel);
    let fd = kernel
        .open(c"/proc/version", sys::O_RDONLY, 0)
        .expect("open /proc/version");
    let mut buf = vec![0u8; 512];
    let n = kernel.read(fd, &mut buf).expect("read");
    kernel.close(fd).expect("close");
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("Linux version 6.12"), "{text}");
    // A missing file is the kernel's ENOENT, not a stub's.
    assert_eq!(
        kernel.open(c"/proc/no-such-file", sys::O_RDONLY, 0),
        Err(Errno::ENOENT)
    );
}

#[test]
fn two_kernels_in_one_process_are_independent() {
    let (a, b) = boot_two_instances();
    let path = c"/only-in-a";
    a.mkdir(path, 0o755).expect("mkdir in a");
    assert_eq!(b.mkdir(path, 0o755), Ok(()), "b has its own rootfs");
    assert_eq!(a.mkdir(path, 0o755), Err(Errno::EEXIST));
    assert!(a.dmesg().contains("lkl_instance=a") && !a.dmesg().contains("lkl_instance=b"));
    assert!(b.dmesg().contains("lkl_instance=b") && !b.dmesg().contains("lkl_instance=a"));
    a.halt().expect("halt a");
    assert_eq!(b.getpid(), Ok(1), "b lives on");
    b.halt().expect("halt b");
}

/// How a private kernel was loaded, from the file its code is mapped
/// from in /proc/self/maps: the build's library itself (`liblkl-*.so`, in
/// a link-map namespace of its own) or a copy (`lkl-PID-N.so`).
fn loaded_as(kernel: &Kernel) -> &'static str {
    let (start, end) = kernel.image_range();
    let maps = std::fs::read_to_string("/proc/self/maps").expect("/proc/self/maps");
    let code = maps
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (from, to) = fields[0].split_once('-')?;
            let from = usize::from_str_radix(from, 16).ok()?;
            let to = usize::from_str_radix(to, 16).ok()?;
            (from >= start && to <= end && fields[1] == "r-xp").then(|| fields.get(5).copied())
        })
        .flatten()
        .unwrap_or_else(|| panic!("no code mapping in the kernel's image {start:#x}-{end:#x}"));
    let file = code.rsplit('/').next().unwrap_or_default();
    if file.starts_with("liblkl") {
        "namespace"
    } else if file.starts_with(&format!("lkl-{}-", std::process::id())) {
        "copy"
    } else {
        panic!("the kernel's code is mapped from {code}")
    }
}

/// glibc has 15 link-map namespaces for `dlmopen`: the kernels booted
/// beyond them load as copies of their own, and every one is a kernel of
/// its own all the same.
#[test]
fn kernels_beyond_the_namespaces_load_as_copies_and_are_independent() {
    const KERNELS: usize = 17;
    let kernels: Vec<Kernel> = (0..KERNELS)
        .map(|i| {
            boot_with(BootOptions {
                mem_mib: 8,
                cmdline: format!("lkl_instance={i}"),
                ..BootOptions::default()
            })
        })
        .collect();
    let ways: Vec<&str> = kernels.iter().map(loaded_as).collect();
    let copies = ways.iter().filter(|&&w| w == "copy").count();
    assert!(
        copies >= KERNELS - 15,
        "{KERNELS} kernels at once: {ways:?}"
    );
    assert!(ways.contains(&"namespace"), "{ways:?}");
    let dir = |i: usize| std::ffi::CString::new(format!("/kernel-{i}")).expect("a path");
    for (i, kernel) in kernels.iter().enumerate() {
        assert_eq!(
            kernel.mkdir(&dir(i), 0o755),
            Ok(()),
            "kernel {i} ({})",
            ways[i]
        );
    }
    for (i, kernel) in kernels.iter().enumerate() {
        let own = format!("lkl_instance={i}");
        let dmesg = kernel.dmesg();
        let words: Vec<&str> = dmesg
            .lines()
            .filter(|line| line.contains("Kernel command line:"))
            .flat_map(str::split_whitespace)
            .filter(|w| w.starts_with("lkl_instance="))
            .collect();
        assert_eq!(words, [own.as_str()], "kernel {i} ({}): {dmesg}", ways[i]);
        // Its own directory only: the others made theirs in their rootfs.
        for j in 0..KERNELS {
            let expected = if j == i { Err(Errno::EEXIST) } else { Ok(()) };
            assert_eq!(
                kernel.mkdir(&dir(j), 0o755),
                expected,
                "kernel {i} ({}), /kernel-{j}",
                ways[i]
            );
        }
    }
    for kernel in kernels {
        finish(kernel);
    }
}

#[test]
fn halt_returns_and_logs_the_power_off() {
    let kernel: Kernel = boot();
    let host = kernel.host().clone();
    kernel.halt().expect("halt");
    let log = host.console().dmesg();
    assert!(log.contains("reboot: Power down"), "{log}");
}

#[test]
fn a_halted_kernel_leaves_no_thread_holding_its_host() {
    // The hang monitor holds the host and calls into the library: it is
    // joined before the kernel is unloaded. Several kernels, as a thread
    // left to finish on its own is usually still there just after.
    for _ in 0..20 {
        let kernel = boot();
        let host = std::sync::Arc::downgrade(kernel.host());
        kernel.halt().expect("halt");
        assert_eq!(host.strong_count(), 0, "something still holds the host");
    }
}

/// The tasks of pid 1's thread group, which every host task belongs to:
/// the entries of `/proc/1/task` (proc must be mounted).
fn host_tasks(kernel: &Kernel) -> usize {
    common::dir_entries(kernel, "/proc/1/task").len()
}

#[test]
fn a_host_thread_that_exits_frees_its_kernel_task() {
    let kernel = boot();
    common::mount_proc(&kernel);
    let before = host_tasks(&kernel);
    let mut tids = BTreeSet::new();
    for _round in 0..10 {
        let round: Vec<i64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..20)
                .map(|_| s.spawn(|| kernel.gettid().expect("gettid")))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        tids.extend(round);
    }
    assert_eq!(tids.len(), 200, "every thread had a task of its own");
    // Each exited thread's task exits from the thread's TLS destructor,
    // which has run once the thread is joined: pid 1's thread group is
    // back to what it was (pid 1 and this thread's task).
    let after = host_tasks(&kernel);
    assert_eq!(before, 2, "pid 1 and this thread's task");
    assert_eq!(
        after, before,
        "{before} host tasks before, {after} after 200 threads came and went"
    );
    common::finish(kernel);
}
