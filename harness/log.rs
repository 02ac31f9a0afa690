//! The kernel log as data: records, the records one piece of code caused,
//! and normalisation for snapshots.
//!
//! Every printk record arrives through the kernel's extended console as a
//! [`Record`] with its level, sequence number, timestamp and caller
//! ([`Caller::Task`] with the kernel task id, which is what `gettid()`
//! returns on that task). [`Kernel::capture`] uses the caller to pick out
//! the records a closure produced on the current thread, even while other
//! threads log at the same time:
//!
//! ```
//! use lkl_harness::{hello::HelloArgs, BootOptions, Kernel};
//!
//! let kernel = Kernel::boot(BootOptions::default()).unwrap();
//! let (result, records) = kernel.capture(|k| k.hello(&HelloArgs::new(c"log", 0)));
//! assert_eq!(result, Ok(()));
//! let texts: Vec<&str> = records.iter().map(|r| r.text.as_str()).collect();
//! assert_eq!(texts, ["Hello, log!"]);
//! ```
//!
//! [`normalize`] and [`snapshot`] turn a log into text that is the same on
//! every machine and every run: no timestamps, addresses, memory sizes,
//! build host or compiler version.

use std::fmt::Write as _;
use std::sync::LazyLock;

use regex::Regex;

pub use lkl_sim::{Caller, Origin, Record};

use crate::kernel::Kernel;

impl Kernel {
    /// The kernel task id of the calling thread (`gettid()` through the
    /// kernel; the first call from a thread gives it its task).
    pub fn current_tid(&self) -> u32 {
        let tid = self
            .gettid()
            .expect("gettid cannot fail in a booted kernel");
        u32::try_from(tid).expect("a task id is a positive 32-bit number")
    }

    /// Runs `f` and returns its result with the log records that the
    /// calling thread's kernel task wrote while `f` ran, in order.
    ///
    /// Records of other threads, and of kernel threads, are left out, so
    /// this works while other threads call into the same kernel. The
    /// records stay in the log ([`Kernel::log`] still has them).
    ///
    /// A record may be printed by another CPU's console a moment after the
    /// call that logged it returned: capture waits for the console to
    /// catch up ([`Kernel::flush_log`]) before it looks. A record printed
    /// on behalf of another task still carries its own caller (the printk
    /// caller id), so it is never attributed to the wrong thread.
    pub fn capture<R>(&self, f: impl FnOnce(&Kernel) -> R) -> (R, Vec<Record>) {
        let tid = self.current_tid();
        self.flush_log().expect("the kernel console stalled");
        let before = last_seq(&self.log());
        let result = f(self);
        self.flush_log().expect("the kernel console stalled");
        let records = self
            .log()
            .into_iter()
            .filter(|r| r.origin == Origin::Kmsg && r.caller == Some(Caller::Task(tid)))
            .filter(|r| before.is_none_or(|seq| r.seq > seq))
            .collect();
        (result, records)
    }
}

/// The sequence number of the last record from the kernel's ring buffer
/// (`None` for a log without any).
pub fn last_seq(records: &[Record]) -> Option<u64> {
    records
        .iter()
        .rev()
        .find(|r| r.origin == Origin::Kmsg)
        .map(|r| r.seq)
}

/// `(pattern, replacement)` pairs applied in order by [`normalize`]. Each
/// removes something that differs between machines, builds or runs.
static RULES: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        // dmesg timestamps: "[    0.006293] "
        (r"^\[\s*\d+\.\d+\] ", ""),
        // The build banner: release sublevel, builder, toolchain, build
        // number and date all depend on the machine that built it.
        (
            r"^Linux version (\d+\.\d+)[^ ]* \(.*\) #\d+ .*$",
            "Linux version $1.<sublevel> (<builder>) (<toolchain>) #<n> <date>",
        ),
        // Addresses: the kernel's memory is wherever the host's allocator
        // put it. 0x-prefixed values of more than 8 digits, and bare
        // 16-digit words.
        (r"0x[0-9a-fA-F]{9,16}\b", "0x<hex>"),
        (r"\b[0-9a-fA-F]{16}\b", "<hex>"),
        // Memory figures (sizes of the kernel's own sections change with
        // the compiler): "1095K".
        (r"\b\d+K\b", "<n>K"),
        // kmemleak's pool left at its late init: the debug kernel takes
        // the metadata of every object from the pool until then
        // (`CONFIG_DEBUG_KMEMLEAK_MEM_POOL_FIRST`), so the figure depends
        // on what the other CPUs' workers have allocated by that point.
        (r"\(mem pool available: \d+\)", "(mem pool available: <n>)"),
    ]
    .into_iter()
    .map(|(pattern, replacement)| {
        (
            Regex::new(pattern).expect("normalisation patterns are valid"),
            replacement,
        )
    })
    .collect()
});

/// Normalises one line of kernel log text so that it reads the same on
/// every machine: strips a dmesg timestamp and replaces addresses, memory
/// figures and the build banner's host, compiler and date with
/// placeholders.
///
/// ```
/// use lkl_harness::log::normalize;
///
/// assert_eq!(
///     normalize("[    0.000000] lkl: memory: 65536 KiB at 00007fbcf4000000"),
///     "lkl: memory: 65536 KiB at <hex>"
/// );
/// assert_eq!(
///     normalize("Memory: 64272K/65536K available (1095K kernel code)"),
///     "Memory: <n>K/<n>K available (<n>K kernel code)"
/// );
/// ```
pub fn normalize(line: &str) -> String {
    let mut line = line.to_string();
    for (pattern, replacement) in RULES.iter() {
        if let std::borrow::Cow::Owned(replaced) = pattern.replace_all(&line, *replacement) {
            line = replaced;
        }
    }
    line
}

/// Renders records for a snapshot: one line per record, as
/// `<level>text`, normalised with [`normalize`]. Timestamps, sequence
/// numbers and task ids are left out: they vary between runs.
///
/// A record is always one line, so that a snapshot tells one record with
/// a newline in it from two records: inside a record, a newline is
/// written `\n` and a backslash `\\` (the escapes Rust and C use).
///
/// ```
/// use lkl_harness::log::{snapshot, Record};
///
/// let record = Record { level: 6, text: "Hello, world!".into(), ..Record::default() };
/// assert_eq!(snapshot(&[record]), "<6>Hello, world!\n");
/// let two_lines = Record { level: 6, text: "Hello, a\nb!".into(), ..Record::default() };
/// assert_eq!(snapshot(&[two_lines]), "<6>Hello, a\\nb!\n");
/// ```
pub fn snapshot(records: &[Record]) -> String {
    let mut out = String::new();
    for record in records {
        let lines: Vec<String> = record.text.split('\n').map(normalize).collect();
        let escaped: Vec<String> = lines.iter().map(|l| l.replace('\\', "\\\\")).collect();
        let _ = writeln!(out, "<{}>{}", record.level, escaped.join("\\n"));
    }
    out
}

/// The last `n` records rendered like `dmesg`, one per line.
pub fn tail(records: &[Record], n: usize) -> String {
    let start = records.len().saturating_sub(n);
    records[start..].iter().fold(String::new(), |mut out, r| {
        let _ = writeln!(out, "{}", r.fmt_dmesg());
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_banner_loses_everything_host_specific() {
        let banner = "Linux version 6.12.117 (root@vm) (gcc (Debian 12.2.0-14+deb12u1) \
                      12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #4 Sat Nov 28 01:41:11 UTC 2026";
        assert_eq!(
            normalize(banner),
            "Linux version 6.12.<sublevel> (<builder>) (<toolchain>) #<n> <date>"
        );
    }

    #[test]
    fn addresses_are_replaced_but_small_constants_kept() {
        assert_eq!(
            normalize("  Normal   [mem 0x00007fbcf4000000-0x00007fbcf7ffffff]"),
            "  Normal   [mem 0x<hex>-0x<hex>]"
        );
        assert_eq!(
            normalize("clocksource: jiffies: mask: 0xffffffff max_cycles: 0xffffffff"),
            "clocksource: jiffies: mask: 0xffffffff max_cycles: 0xffffffff"
        );
        assert_eq!(normalize("Hello, t1-c2!"), "Hello, t1-c2!");
    }

    #[test]
    fn kmemleaks_pool_figure_is_replaced() {
        assert_eq!(
            normalize(
                "kmemleak: Kernel memory leak detector initialized (mem pool available: 12923)"
            ),
            "kmemleak: Kernel memory leak detector initialized (mem pool available: <n>)"
        );
    }

    #[test]
    fn snapshot_keeps_a_multi_line_record_on_one_line() {
        let record = Record {
            level: 4,
            text: "first\n[    1.000000] second \\ third".into(),
            ..Record::default()
        };
        // Each line is normalised (its timestamp goes), then escaped.
        assert_eq!(snapshot(&[record]), "<4>first\\nsecond \\\\ third\n");
    }

    #[test]
    fn last_seq_skips_raw_records() {
        let records = [
            Record {
                seq: 7,
                ..Record::default()
            },
            Record {
                origin: Origin::Raw,
                ..Record::default()
            },
        ];
        assert_eq!(last_seq(&records), Some(7));
        assert_eq!(last_seq(&[]), None);
    }
}
