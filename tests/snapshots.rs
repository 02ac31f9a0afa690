//! Snapshots (insta, files in the top-level `snapshots/`): what the kernel
//! logs while booting, what each row of the hello() contract logs and
//! returns, and the counts of a stress run. Everything is normalised
//! (`lkl_harness::log::snapshot`), so the files are the same on every
//! machine.
//!
//! A change to what the kernel logs fails these tests with a diff; review
//! it with `cargo insta review` (accept if the change is intended).

mod common;

use std::fmt::Write as _;

use common::{boot, boot_with, finish};
use lkl_harness::hello::{HelloArgs, HELLO_ARGS_SIZE_VER0, HELLO_FLAG_LOUD};
use lkl_harness::stress::{self, Loudness};
use lkl_harness::{coverage, log, BootOptions, Errno, Kernel, StressOptions};

/// Runs `f` with insta writing to `snapshots/` at the top of the repo,
/// file names without the test crate's prefix.
fn in_snapshot_dir(f: impl FnOnce()) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(f);
}

/// The boot log differs between the kernels (the debug one introduces
/// lockdep, a coverage kernel gcov): one snapshot each, `boot_log`,
/// `boot_log@debug`, `boot_log@default-coverage` (`lkl-harness
/// coverage` runs the suite with [`coverage::COVERAGE_ENV`] set). It is
/// the log of the default CPU count whatever `LKL_CPUS` says, since the
/// CPUs show in it.
#[test]
fn boot_log() {
    let kernel = boot_with(BootOptions {
        cpus: lkl_harness::kernel::DEFAULT_CPUS,
        ..BootOptions::default()
    });
    let text = log::snapshot(&kernel.log());
    in_snapshot_dir(|| {
        let mut settings = insta::Settings::clone_current();
        if std::env::var_os(coverage::COVERAGE_ENV).is_some() {
            settings.set_snapshot_suffix(format!("{}-coverage", lkl_harness::KERNEL_VARIANT));
        } else if lkl_harness::KERNEL_VARIANT != "default" {
            settings.set_snapshot_suffix(lkl_harness::KERNEL_VARIANT);
        }
        settings.bind(|| insta::assert_snapshot!("boot_log", text));
    });
    finish(kernel);
}

/// How a row calls hello().
enum Call {
    /// `hello(&args, sizeof(args))` with this name and these flags.
    Name(Vec<u8>, u32),
    /// The struct, in a zeroed buffer of `size` bytes (at least the
    /// struct), with `tail` written just past the struct.
    Struct {
        flags: u32,
        pad: u32,
        name: Option<&'static [u8]>,
        size: usize,
        tail: u8,
    },
    /// `hello(uargs, size)` with a raw address.
    Raw(usize, usize),
}

/// `len` bytes of `abc...z`, repeating.
fn letters(len: usize) -> Vec<u8> {
    (b'a'..=b'z').cycle().take(len).collect()
}

/// The rows of the contract, named as in kernel/hello.c's comment.
fn rows() -> Vec<(&'static str, Call)> {
    let name = |bytes: &[u8], flags| Call::Name(bytes.to_vec(), flags);
    let with = |flags, pad, size, tail| Call::Struct {
        flags,
        pad,
        name: Some(b"world\0"),
        size,
        tail,
    };
    let bigger = HELLO_ARGS_SIZE_VER0 + 8;
    vec![
        ("valid", name(b"world", 0)),
        ("loud", name(b"world", HELLO_FLAG_LOUD)),
        ("empty name", name(b"", 0)),
        ("63-byte name", name(&letters(63), 0)),
        ("64-byte name (truncated to 63)", name(&letters(64), 0)),
        ("200-byte name (truncated to 63)", name(&letters(200), 0)),
        ("loud 200-byte name", name(&letters(200), HELLO_FLAG_LOUD)),
        ("larger size, zero tail", with(0, 0, bigger, 0)),
        ("unknown flag", with(1 << 1, 0, HELLO_ARGS_SIZE_VER0, 0)),
        (
            "loud and an unknown flag",
            with(0x8000_0001, 0, HELLO_ARGS_SIZE_VER0, 0),
        ),
        ("non-zero pad", with(0, 1, HELLO_ARGS_SIZE_VER0, 0)),
        ("size 0", with(0, 0, 0, 0)),
        ("size below VER0", with(0, 0, HELLO_ARGS_SIZE_VER0 - 1, 0)),
        ("larger size, non-zero tail", with(0, 0, bigger, 1)),
        ("NULL args", Call::Raw(0, HELLO_ARGS_SIZE_VER0)),
        (
            "NULL name",
            Call::Struct {
                flags: 0,
                pad: 0,
                name: None,
                size: HELLO_ARGS_SIZE_VER0,
                tail: 0,
            },
        ),
    ]
}

fn perform(kernel: &Kernel, call: &Call) -> Result<(), Errno> {
    match call {
        Call::Name(bytes, flags) => {
            let name = std::ffi::CString::new(bytes.clone()).expect("no NUL in names");
            kernel.hello(&HelloArgs::new(&name, *flags))
        }
        Call::Struct {
            flags,
            pad,
            name,
            size,
            tail,
        } => {
            // struct hello_args { __u32 flags; __u32 pad; __u64 name; }
            let name = name.map_or(0, |n| n.as_ptr() as u64);
            let fields = [
                &flags.to_ne_bytes()[..],
                &pad.to_ne_bytes(),
                &name.to_ne_bytes(),
            ];
            let struct_size = std::mem::size_of::<HelloArgs>();
            let mut buf = vec![0u8; (*size).max(struct_size + 1)];
            buf[..struct_size].copy_from_slice(&fields.concat());
            buf[struct_size] = *tail;
            // SAFETY: hello(2) only reads `buf` and the name, ours and
            // written by no one during the call.
            unsafe { kernel.hello_raw(buf.as_ptr() as usize, *size) }
        }
        // SAFETY: deliberately bad addresses, only read: EFAULT.
        Call::Raw(address, size) => unsafe { kernel.hello_raw(*address, *size) },
    }
}

#[test]
fn hello_contract_log_and_errno() {
    let kernel = boot();
    let mut printk = String::new();
    let mut errnos = String::new();
    for (row, call) in rows() {
        let (result, records) = kernel.capture(|k| perform(k, &call));
        let logged = log::snapshot(&records);
        let _ = writeln!(printk, "## {row}");
        printk.push_str(if logged.is_empty() {
            "(nothing)\n"
        } else {
            &logged
        });
        let result = match result {
            Ok(()) => "0".to_string(),
            Err(errno) => format!("-{errno:?}"),
        };
        let _ = writeln!(errnos, "{row:<34} {result}");
    }
    in_snapshot_dir(|| {
        insta::assert_snapshot!("hello_printk", printk);
        insta::assert_snapshot!("hello_errno", errnos);
    });
    finish(kernel);
}

#[test]
fn stress_counts() {
    let kernel = boot();
    let options = StressOptions {
        threads: 8,
        calls: 250,
        loud: Loudness::Every(4),
        name: None,
    };
    let summary = stress::run(&kernel, &options, &|_| {});
    let counts = summary.counts.clone();
    in_snapshot_dir(|| insta::assert_debug_snapshot!("stress_counts", counts));
    finish(kernel);
}

/// A name with a newline makes one record. The snapshot keeps it one line
/// (`\n` escaped), so it differs from two records; `dmesg()` prints both
/// lines with the record's timestamp and caller, as the kernel does.
#[test]
fn a_record_with_a_newline_is_one_line_in_snapshots_and_prefixed_lines_in_dmesg() {
    let kernel = boot();
    let name = c"two\nlines \\ here";
    let (result, records) = kernel.capture(|k| k.hello(&HelloArgs::new(name, 0)));
    assert_eq!(result, Ok(()));
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].text, "Hello, two\nlines \\ here!");
    assert_eq!(
        log::snapshot(&records),
        "<6>Hello, two\\nlines \\\\ here!\n"
    );
    let rendered = records[0].fmt_dmesg();
    let lines: Vec<&str> = rendered.lines().collect();
    assert_eq!(lines.len(), 2, "{rendered}");
    let prefix = lines[0]
        .strip_suffix("Hello, two")
        .unwrap_or_else(|| panic!("{rendered}"));
    assert!(
        prefix.starts_with('[') && prefix.contains("] [T"),
        "{prefix}"
    );
    assert_eq!(lines[1], format!("{prefix}lines \\ here!"));
    assert!(kernel.dmesg().contains(&rendered), "{}", kernel.dmesg());
    finish(kernel);
}
