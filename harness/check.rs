//! Failure detection: a kernel that complains, and a kernel that stops
//! answering.
//!
//! A kernel bug rarely makes a system call fail: the kernel logs a
//! `WARNING:`, a `BUG:`, a lockdep report or a hung-task notice and
//! carries on. [`Kernel::check_log`] turns any of those into an
//! [`Error::Splat`] naming the offending lines, so a test that ends with
//! it fails on them:
//!
//! ```
//! use lkl_harness::{BootOptions, Kernel};
//!
//! let kernel = Kernel::boot(BootOptions::default()).unwrap();
//! kernel.check_log().expect("a clean boot logs no warning");
//! ```
//!
//! A system call that never returns (a deadlock, a sleep nobody wakes)
//! would hang the test run instead. [`Kernel::watchdog`] arms a timer
//! that, if it runs out before the guard is dropped, prints what happened
//! and the kernel log to stderr and exits the process with status
//! [`WATCHDOG_EXIT_STATUS`].

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use std::sync::LazyLock;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use lkl_sim::{Host, Record};
use regex::Regex;

use crate::errno::Errno;
use crate::ffi::CpusState;
use crate::kernel::{Error, Kernel};
use crate::symbolize::Image;
use crate::sys;

/// Substrings that mark a kernel log line as a report of a kernel bug.
///
/// Case matters: `WARNING:` is `WARN()`'s banner, while the harmless
/// boot message `Warning: unable to open an initial console.` is not.
pub const SPLAT_MARKERS: &[&str] = &[
    // WARN(), and lockdep's and KCSAN's report titles.
    "WARNING:",
    // BUG(), BUG_ON() and "BUG: sleeping function called from invalid context".
    "BUG:",
    "kernel BUG at",
    "Oops",
    "Kernel panic",
    // lockdep
    "possible recursive locking",
    "inconsistent lock state",
    "possible circular locking dependency",
    "INFO: possible",
    "INFO: trying to register non-static key",
    // Memory checkers and undefined behaviour.
    "UBSAN:",
    "KASAN:",
    // kmemleak's reports, once confirmed (see Kernel::scan_for_leaks);
    // its "N new suspected memory leaks" count names suspects only.
    "unreferenced object 0x",
    "memory leak(s) confirmed",
    "KFENCE:",
    "general protection fault",
    "Unable to handle kernel",
    // RCU stalls and printk losing records.
    "rcu_sched self-detected stall",
    "detected stalls on CPUs",
    "printk messages dropped",
];

/// Whether one line of log text reports a kernel bug: it contains one of
/// [`SPLAT_MARKERS`], or is a hung-task report (`INFO: task <comm>:<pid>
/// blocked for more than <n> seconds.`).
///
/// ```
/// use lkl_harness::check::is_splat;
///
/// assert!(is_splat("WARNING: CPU: 0 PID: 1 at kernel/hello.c:42 sys_hello"));
/// assert!(is_splat("INFO: task init:1 blocked for more than 120 seconds."));
/// assert!(!is_splat("Warning: unable to open an initial console."));
/// assert!(!is_splat("Hello, world!"));
/// ```
pub fn is_splat(line: &str) -> bool {
    SPLAT_MARKERS.iter().any(|marker| line.contains(marker))
        || (line.contains("INFO: task ") && line.contains(" blocked"))
}

/// The lines of `records` that report kernel bugs (see [`is_splat`]),
/// rendered like `dmesg`. A multi-line record contributes only its
/// offending lines.
pub fn splat_lines(records: &[Record]) -> Vec<String> {
    let mut lines = Vec::new();
    for record in records {
        if record.text.lines().any(is_splat) {
            let rendered = record.fmt_dmesg();
            lines.extend(rendered.lines().filter(|l| is_splat(l)).map(String::from));
        }
    }
    lines
}

/// `line` with the kernel source tree's path taken out of the source
/// paths in it: `kernel/hello.c:59:24`, as kernel developers read them.
/// UBSAN names a file as the compiler was given it, which in a build
/// outside the source tree is an absolute path.
pub fn relative_sources(line: &str) -> String {
    static PREFIXES: LazyLock<Vec<String>> = LazyLock::new(|| {
        let tree = std::path::Path::new(env!("LKL_CACHE_DIR")).join("tree");
        let mut prefixes = Vec::new();
        if let Ok(real) = tree.canonicalize() {
            prefixes.push(format!("{}/", real.display()));
        }
        prefixes.push(format!("{}/", tree.display()));
        let own = env!("LKL_OWN_TREE");
        if !own.is_empty() {
            prefixes.push(format!("{}/", own.trim_end_matches('/')));
        }
        prefixes
    });
    PREFIXES.iter().fold(line.to_string(), |line, prefix| {
        line.replace(prefix.as_str(), "")
    })
}

/// `Ok` if no record reports a kernel bug; otherwise [`Error::Splat`]
/// with the offending lines, each report and the whole log.
pub fn check_records(records: &[Record]) -> Result<(), Error> {
    check_records_with(records, None, None)
}

/// [`check_records`], with the code addresses of the reports located in
/// `image` (file and line), or in `host`, the test program.
pub fn check_records_with(
    records: &[Record],
    image: Option<&Image>,
    host: Option<&Image>,
) -> Result<(), Error> {
    if splat_lines(records).is_empty() {
        return Ok(());
    }
    let text: Vec<String> = records
        .iter()
        .flat_map(|r| {
            r.fmt_dmesg()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .map(|line| relative_sources(&line))
        .map(|line| match image {
            Some(image) => image.annotate_with(&line, host),
            None => line,
        })
        .collect();
    let mut lines: Vec<String> = text.iter().filter(|l| is_splat(l)).cloned().collect();
    let reports = reports(&text);
    lines.extend(reports.iter().filter_map(|r| kcsan_summary(r)));
    let log = text.iter().fold(String::new(), |mut log, line| {
        log.push_str(line);
        log.push('\n');
        log
    });
    Err(Error::Splat {
        lines,
        reports,
        log,
    })
}

/// Lines that end a report.
fn ends_report(line: &str) -> bool {
    line.contains("---[ end trace") || line.contains("==================")
}

/// The `[T<pid>]` or `[C<cpu>]` tag of a dmesg line.
fn caller_tag(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('[')?;
    let rest = &rest[rest.find("] [")? + 2..];
    Some(&rest[..=rest.find(']')?])
}

/// The reports in a log: each from its splat line (or the `cut here` /
/// `====` line before it) to its end marker, at most 100 lines, with only
/// the lines of the task that printed it (other CPUs log meanwhile).
pub fn reports(lines: &[String]) -> Vec<String> {
    let mut reports = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if !is_splat(&lines[i]) {
            i += 1;
            continue;
        }
        let tag = caller_tag(&lines[i]);
        let same = |line: &String| tag.is_none() || caller_tag(line) == tag;
        let start = match lines[..i].iter().rposition(same) {
            Some(p) if lines[p].contains("cut here") || ends_report(&lines[p]) => p,
            _ => i,
        };
        let mut report = vec![lines[start].as_str()];
        if start != i {
            report.push(&lines[i]);
        }
        let mut end = i + 1;
        while end < lines.len() && report.len() < 100 {
            end += 1;
            let line = &lines[end - 1];
            if !same(line) {
                continue;
            }
            report.push(line);
            if ends_report(line) {
                break;
            }
        }
        reports.push(report.join("\n"));
        i = end;
    }
    reports
}

/// For a KCSAN report: one line naming both racing accesses, each with its
/// first kernel frame (and source line, if annotated).
pub fn kcsan_summary(report: &str) -> Option<String> {
    static ACCESS: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"((?:read|write)(?:-write)?(?: \(marked\))? to 0x[0-9a-f]+ of \d+ bytes by (?:task \d+|interrupt) on cpu \d+):")
            .expect("a valid pattern")
    });
    let title = report.lines().find(|l| l.contains("BUG: KCSAN:"))?;
    let lines: Vec<&str> = report.lines().collect();
    let mut accesses = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(m) = ACCESS.captures(line) {
            let frame = lines
                .get(i + 1)
                .map(|f| strip_prefix(f).trim().to_string())
                .unwrap_or_default();
            accesses.push(format!("{} in {frame}", &m[1]));
        }
    }
    let title = strip_prefix(title).trim();
    Some(format!("{title}: {}", accesses.join("; racing with ")))
}

/// A dmesg line without its `[time] [caller] ` prefix.
fn strip_prefix(line: &str) -> &str {
    static PREFIX: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^\[[ 0-9.]+\] (\[[TC]\d+\] )?").expect("a valid pattern"));
    match PREFIX.find(line) {
        Some(m) => &line[m.end()..],
        None => line,
    }
}

/// The exit status of a process whose watchdog fired: 101, what a
/// panicking Rust test exits with, so `cargo test` reports the test
/// binary as failed.
pub const WATCHDOG_EXIT_STATUS: i32 = 101;

/// A watchdog armed by [`Kernel::watchdog`]; dropping it disarms it.
#[must_use = "the watchdog is disarmed as soon as the guard is dropped"]
#[derive(Debug)]
pub struct Watchdog {
    disarm: Option<Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Dropping the sender wakes the watchdog thread at once.
        drop(self.disarm.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Where [`Kernel::scan_for_leaks`] mounts sysfs; debugfs goes on its
/// `kernel/debug`, as on any Linux system.
const SYSFS: &str = "/sys";

/// How long [`Kernel::scan_for_leaks`] lets the kernel finish its deferred
/// work (RCU callbacks, work items: several ticks of 10 ms) before the
/// scan that confirms a suspected leak.
pub const LEAK_SETTLE: Duration = Duration::from_millis(100);

/// At most this many leak reports of one scan are written to the log
/// whole; the rest are counted (in the line that ends them). A system call
/// that leaks on every call leaks tens of thousands of objects in a stress
/// run, all with the same backtrace, and writing each through `/dev/kmsg`
/// would take minutes on the debug kernel.
pub const LEAK_REPORTS_LOGGED: usize = 16;

/// The log lines (`<4>kmemleak: ...`, each ending in a newline) for
/// `reports`, kmemleak's new reports of one scan, each a list of lines:
/// at most [`LEAK_REPORTS_LOGGED`] reports whole, the first of each
/// allocation backtrace before any second one, then a line counting them
/// all.
pub fn leak_log_lines(reports: &[Vec<&str>]) -> Vec<String> {
    // The frames after "backtrace (crc ...):" (the crc is of the object's
    // contents, not of its stack).
    let backtrace = |report: &[&str]| -> Vec<String> {
        report
            .iter()
            .skip_while(|l| !l.trim_start().starts_with("backtrace"))
            .skip(1)
            .map(|l| l.trim().to_string())
            .collect()
    };
    let mut seen = std::collections::HashSet::new();
    let (first_of_site, same_site): (Vec<_>, Vec<_>) = reports
        .iter()
        .partition(|report| seen.insert(backtrace(report)));
    let sites = first_of_site.len();
    let count = reports.len();
    let unlogged = match count.saturating_sub(LEAK_REPORTS_LOGGED) {
        0 => String::new(),
        n => match sites.saturating_sub(LEAK_REPORTS_LOGGED) {
            0 => {
                format!("; {n} of them are not shown above, each with the backtrace of one that is")
            }
            hidden => format!(
                "; {n} of them are not shown above, {hidden} of them with a backtrace that none \
                 shown has"
            ),
        },
    };
    first_of_site
        .into_iter()
        .chain(same_site)
        .take(LEAK_REPORTS_LOGGED)
        .flatten()
        .map(|line| format!("<4>kmemleak: {line}\n"))
        .chain(std::iter::once(format!(
            "<4>kmemleak: {count} memory leak(s) confirmed by a scan {} ms after the \
             first{unlogged} (see /sys/kernel/debug/kmemleak)\n",
            LEAK_SETTLE.as_millis()
        )))
        .collect()
}

/// `S_IFCHR`, the file type of a character device.
const S_IFCHR: u32 = 0o020000;

/// `/dev/kmsg`'s device number (major 1, minor 11) as mknod(2) takes it.
const KMSG_DEV: i64 = (1 << 8) | 11;

impl Kernel {
    /// Ends a test: asks the kernel's leak detector for a scan where the
    /// kernel has one ([`scan_for_leaks`](Self::scan_for_leaks)), checks
    /// the log for reports of kernel bugs ([`check_log`](Self::check_log))
    /// and halts. A leak, a KASAN or UBSAN report, a WARN or a lockdep
    /// report made by the test fails it here, with the report:
    ///
    /// ```
    /// use lkl_harness::{BootOptions, Kernel};
    ///
    /// use lkl_harness::hello::HelloArgs;
    ///
    /// let kernel = Kernel::boot(BootOptions::default()).unwrap();
    /// kernel.hello(&HelloArgs::new(c"world", 0)).unwrap();
    /// kernel.finish().expect("no report");
    /// ```
    pub fn finish(self) -> Result<(), Error> {
        let scanned = self.scan_for_leaks();
        let checked = self.check_log();
        let log = scanned.is_err().then(|| self.dmesg());
        let halted = self.halt();
        checked?;
        if let Err(errno) = scanned {
            return Err(Error::Scan {
                errno,
                log: log.unwrap_or_default(),
            });
        }
        halted
    }

    /// Runs kmemleak, the kernel's leak detector, if this kernel has it
    /// (the debug kernel): every kernel object allocated so far that
    /// nothing points to any more is reported in the log, with the call
    /// trace of its allocation, for [`check_log`](Self::check_log).
    ///
    /// The first call mounts sysfs on `/sys` and debugfs on
    /// `/sys/kernel/debug` (unless this kernel has them) and makes kmemleak
    /// consider objects however young they are. Each call scans twice (an
    /// object whose contents change between two scans, as a new one's do,
    /// is not a suspect) and reads the suspects from
    /// `/sys/kernel/debug/kmemleak`. A suspect is only a leak if it stays
    /// one: on this arch kernel code runs on host threads whose stacks
    /// kmemleak cannot scan, so an object that another CPU holds only in
    /// a local variable at that moment (an RCU callback being run, a work
    /// item) looks unreferenced. So when there are suspects, the kernel is
    /// left to finish such work ([`LEAK_SETTLE`]) and scanned once more;
    /// what is still unreferenced then is a leak, and its reports, as
    /// kmemleak wrote them, are written to the kernel log (through
    /// `/dev/kmsg`, with kmemleak's `kmemleak: ` prefix), each once: the
    /// first [`LEAK_REPORTS_LOGGED`] whole, then a line that counts them
    /// all. It costs a few milliseconds per megabyte of kernel data.
    ///
    /// Returns whether the kernel has kmemleak and was scanned: a private
    /// kernel ([`Kernel::boot`]) and the kernel linked into the program
    /// ([`Kernel::boot_linked`]) alike.
    pub fn scan_for_leaks(&self) -> Result<bool, Errno> {
        let debugfs = format!("{SYSFS}/kernel/debug");
        let control = format!("{debugfs}/kmemleak");
        let control_c = std::ffi::CString::new(control.as_str()).expect("no NUL in a path");
        match self.open(&control_c, sys::O_RDONLY, 0) {
            // Set up by an earlier call. Mounting again would make and
            // free a mount, garbage just before the scan.
            Ok(fd) => self.close(fd)?,
            Err(_) => {
                match self.mount_once(SYSFS, "sysfs") {
                    // No sysfs, so no kmemleak (it needs debugfs, which needs it).
                    Err(Errno::ENODEV) => return Ok(false),
                    other => other?,
                }
                let params = format!("{SYSFS}/module/kmemleak/parameters");
                // Reports go to the log only once confirmed, below.
                match self.write_file(&format!("{params}/verbose"), b"0") {
                    Err(Errno::ENOENT) => return Ok(false),
                    other => other?,
                }
                self.write_file(&format!("{params}/min_age_ms"), b"0")?;
                self.mount_once(&debugfs, "debugfs")?;
            }
        }
        for _ in 0..2 {
            self.write_file(&control, b"scan")?;
        }
        if self.read_file(&control)?.is_empty() {
            return Ok(true);
        }
        self.nanosleep(LEAK_SETTLE)?;
        self.write_file(&control, b"scan")?;
        let leaks = String::from_utf8_lossy(&self.read_file(&control)?).into_owned();
        self.log_leaks(&leaks)?;
        Ok(true)
    }

    /// Writes the reports of `leaks` (the text of the kmemleak debugfs
    /// file) that are not in the log yet to the log, a line a record, as
    /// kmemleak itself prints them: at most [`LEAK_REPORTS_LOGGED`], one
    /// for each allocation backtrace first, so that a rare leak is shown
    /// beside one that a stress run made thousands of times. A line after
    /// them counts them all.
    fn log_leaks(&self, leaks: &str) -> Result<(), Errno> {
        let mut reports: Vec<Vec<&str>> = Vec::new();
        for line in leaks.lines() {
            match reports.last_mut() {
                Some(report) if !line.starts_with("unreferenced object") => report.push(line),
                _ => reports.push(vec![line]),
            }
        }
        let mut logged = self.leaks_logged.lock();
        reports.retain(|r| logged.insert(r[0].to_string()));
        if reports.is_empty() {
            return Ok(());
        }
        let kmsg = c"/dev/kmsg";
        match self.mkdir(c"/dev", 0o755) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e),
        }
        // SAFETY: the path is a NUL-terminated string that lives across
        // the call; mknodat reads it and writes nothing of ours.
        let made = unsafe {
            self.syscall(
                sys::__NR_mknodat,
                &[
                    sys::AT_FDCWD as i64,
                    kmsg.as_ptr() as i64,
                    i64::from(S_IFCHR | 0o600),
                    KMSG_DEV,
                ],
            )
        };
        match made {
            Ok(_) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e),
        }
        let lines = leak_log_lines(&reports);
        for line in lines {
            // One open per line: /dev/kmsg limits each open file to a
            // burst of ten records.
            let fd = self.open(kmsg, sys::O_WRONLY, 0)?;
            let written = self.write(fd, line.as_bytes());
            let closed = self.close(fd);
            written?;
            closed?;
        }
        Ok(())
    }

    /// Mounts a `fstype` file system on `dir`, unless `dir` is already a
    /// mount point of this kernel (it is then left as it is).
    fn mount_once(&self, dir: &str, fstype: &str) -> Result<(), Errno> {
        let path = std::ffi::CString::new(dir).expect("no NUL in a mount point");
        let fs = std::ffi::CString::new(fstype).expect("no NUL in a file system type");
        match self.mkdir(&path, 0o755) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e),
        }
        match self.mount(&fs, &path, &fs, 0) {
            Ok(()) | Err(Errno::EBUSY) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Writes `data` to the file at `path` in one write(2).
    fn write_file(&self, path: &str, data: &[u8]) -> Result<(), Errno> {
        let path = std::ffi::CString::new(path).expect("no NUL in a path");
        let fd = self.open(&path, sys::O_WRONLY, 0)?;
        let written = self.write(fd, data);
        let closed = self.close(fd);
        written?;
        closed
    }

    /// Checks the log for reports of kernel bugs: `WARNING:`, `BUG:`,
    /// `Oops`, `Kernel panic`, lockdep reports, hung tasks and more (see
    /// [`SPLAT_MARKERS`]). Returns [`Error::Splat`] listing the offending
    /// lines and the whole log.
    pub fn check_log(&self) -> Result<(), Error> {
        // A report another CPU is still printing counts too. A stalled
        // console shows in the log as it is.
        let _ = self.flush_log();
        let records = self.log();
        if splat_lines(&records).is_empty() {
            return Ok(());
        }
        self.with_image(|image| {
            let linked = image
                .is_some_and(|i| Some(i.path.as_path()) == std::env::current_exe().ok().as_deref());
            if linked {
                return check_records_with(&records, image, None);
            }
            crate::symbolize::with_program(|host| check_records_with(&records, image, host))
        })
    }

    /// [`dmesg`](Kernel::dmesg) with the code addresses of call traces
    /// located: `function+off/size (file:line)` for the kernel's, the
    /// function and line for the test program's.
    pub fn dmesg_located(&self) -> String {
        let _ = self.flush_log();
        let text = self.dmesg();
        self.with_image(|image| {
            let Some(image) = image else {
                return text.clone();
            };
            let linked = Some(image.path.as_path()) == std::env::current_exe().ok().as_deref();
            let locate = |host: Option<&Image>| {
                text.lines().fold(String::new(), |mut out, line| {
                    out.push_str(&image.annotate_with(&relative_sources(line), host));
                    out.push('\n');
                    out
                })
            };
            if linked {
                locate(None)
            } else {
                crate::symbolize::with_program(locate)
            }
        })
    }

    /// Arms a watchdog: if the returned guard is still alive after
    /// `timeout`, the kernel is taken to have stopped answering. The
    /// watchdog then writes a message and the kernel log to stderr and
    /// exits the whole process with [`WATCHDOG_EXIT_STATUS`].
    ///
    /// Exiting is the only way out: a host thread blocked inside the
    /// kernel cannot be interrupted or unwound (the kernel holds its
    /// state on that thread's stack), and waiting would hang `cargo test`
    /// forever. Use it around code whose system calls must return:
    ///
    /// ```
    /// use std::time::Duration;
    /// use lkl_harness::{sys, BootOptions, Kernel};
    ///
    /// let kernel = Kernel::boot(BootOptions::default()).unwrap();
    /// let _watchdog = kernel.watchdog(Duration::from_secs(60));
    /// assert_eq!(kernel.getpid(), Ok(1));
    /// ```
    pub fn watchdog(&self, timeout: Duration) -> Watchdog {
        let (disarm, armed) = crossbeam_channel::bounded::<()>(0);
        let host = self.host().clone();
        // Keeps the kernel's library loaded while the watchdog can call
        // into it, even if it outlives the kernel.
        let state = self.cpus_state();
        let thread = std::thread::Builder::new()
            .name("lkl-watchdog".into())
            .spawn(move || watch(host, state, armed, timeout))
            .expect("cannot spawn the watchdog thread");
        Watchdog {
            disarm: Some(disarm),
            thread: Some(thread),
        }
    }
}

fn watch(host: Arc<Host>, state: CpusState, armed: Receiver<()>, timeout: Duration) {
    match armed.recv_timeout(timeout) {
        Err(RecvTimeoutError::Timeout) => {}
        // Disarmed (the guard was dropped).
        Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
    }
    report_hang_and_exit(&host, &state, timeout);
}

/// Writes why the process gives up on a hung kernel, and its log, to
/// stderr and exits with [`WATCHDOG_EXIT_STATUS`].
pub(crate) fn report_hang_and_exit(host: &Host, state: &CpusState, timeout: Duration) -> ! {
    let report = format!(
        "\nlkl-harness watchdog: the kernel did not answer within {timeout:?}: a system \
         call is blocked (a deadlock, or a sleep that nothing wakes). A thread blocked \
         in the kernel cannot be interrupted, so the process exits with status \
         {WATCHDOG_EXIT_STATUS}. Look at the last lines of the kernel log for what it \
         was doing, and at its CPUs: a CPU held by a thread that waits elsewhere, or \
         held while every thread waits for it, is the usual deadlock. \
         (BootOptions::hang_timeout sets the limit.)\nCPUs:\n{}Kernel log:\n{}",
        state.describe(),
        host.console().dmesg()
    );
    // Straight to the process's stderr: the test harness's output capture
    // (which eprintln! would go to) is lost when the process exits.
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(report.as_bytes());
    let _ = stderr.flush();
    std::process::exit(WATCHDOG_EXIT_STATUS);
}

#[cfg(test)]
mod tests {
    use super::*;
    use lkl_sim::Caller;

    fn record(text: &str) -> Record {
        Record {
            level: 4,
            seq: 3,
            timestamp_us: 1_500_000,
            caller: Some(Caller::Task(1)),
            text: text.into(),
            ..Record::default()
        }
    }

    /// One leak report as kmemleak's debugfs file has it.
    fn leak_report(addr: usize, site: &str) -> Vec<String> {
        vec![
            format!("unreferenced object 0x{addr:x} (size 8):"),
            "  comm \"host31\", pid 31, jiffies 4294937296".into(),
            "  backtrace (crc 1a2b3c4d):".into(),
            "    kmemleak_alloc+0x1/0x2 (mm/kmemleak.c:1)".into(),
            format!("    {site}"),
        ]
    }

    #[test]
    fn a_rare_leak_is_logged_beside_one_made_thousands_of_times() {
        let mut owned: Vec<Vec<String>> = (0..1000)
            .map(|i| leak_report(0x1000 + 8 * i, "sys_hello+0x152/0x1d0 (kernel/hello.c:72)"))
            .collect();
        owned.push(leak_report(0x9000, "rare_site+0x10/0x40 (kernel/rare.c:9)"));
        let reports: Vec<Vec<&str>> = owned
            .iter()
            .map(|r| r.iter().map(String::as_str).collect())
            .collect();
        let lines = leak_log_lines(&reports);
        let objects: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains("unreferenced object"))
            .collect();
        assert_eq!(objects.len(), LEAK_REPORTS_LOGGED);
        // The rare one, last of the scan, is second: one a backtrace first.
        assert!(objects[1].contains("0x9000"), "{objects:?}");
        assert!(lines.iter().any(|l| l.contains("rare_site+0x10/0x40")));
        let last = lines.last().expect("a count line");
        assert!(
            last.contains(
                "1001 memory leak(s) confirmed by a scan 100 ms after the first; 985 of them are \
                 not shown above, each with the backtrace of one that is"
            ),
            "{last}"
        );
        assert!(lines
            .iter()
            .all(|l| l.starts_with("<4>kmemleak: ") && l.ends_with('\n')));

        // More backtraces than are shown: said so.
        let owned: Vec<Vec<String>> = (0..20)
            .map(|i| leak_report(0x1000 + 8 * i, &format!("site{i}+0x1/0x2")))
            .collect();
        let reports: Vec<Vec<&str>> = owned
            .iter()
            .map(|r| r.iter().map(String::as_str).collect())
            .collect();
        let lines = leak_log_lines(&reports);
        assert!(
            lines.last().expect("a count line").contains(
                "20 memory leak(s) confirmed by a scan 100 ms after the first; 4 of them are not \
                 shown above, 4 of them with a backtrace that none shown has"
            ),
            "{lines:?}"
        );
        // Few leaks: all shown, and only counted.
        let lines = leak_log_lines(&reports[..3]);
        assert_eq!(
            lines.iter().filter(|l| l.contains("unreferenced")).count(),
            3
        );
        assert!(lines
            .last()
            .expect("a count line")
            .contains("3 memory leak(s) confirmed by a scan 100 ms after the first (see"));
    }

    #[test]
    fn lockdep_and_hung_task_reports_are_splats() {
        for line in [
            "WARNING: possible recursive locking detected",
            "WARNING: inconsistent lock state",
            "INFO: possible irq lock inversion dependency detected",
            "BUG: sleeping function called from invalid context at mm/slub.c:1",
            "Oops: general protection fault, probably for non-canonical address",
            "Kernel panic - not syncing: Attempted to kill init!",
            "INFO: task kworker/0:1:12 blocked for more than 30 seconds.",
            "** 12 printk messages dropped **",
        ] {
            assert!(is_splat(line), "{line}");
        }
        for line in [
            "Run /init as init process",
            "Warning: unable to open an initial console.",
            "INFO: task list follows",
        ] {
            assert!(!is_splat(line), "{line}");
        }
    }

    #[test]
    fn check_records_names_the_lines_and_keeps_the_log() {
        let records = [
            record("quiet"),
            record("------------[ cut here ]------------\nWARNING: CPU: 0 PID: 1 at x.c:1 f"),
        ];
        let Err(Error::Splat { lines, log, .. }) = check_records(&records) else {
            panic!("a WARNING is a splat");
        };
        // Every line of a record carries its prefix, as in dmesg.
        assert_eq!(
            lines,
            ["[    1.500000] [T1] WARNING: CPU: 0 PID: 1 at x.c:1 f"]
        );
        assert!(log.starts_with("[    1.500000] [T1] quiet\n"), "{log}");
        assert!(log.contains("cut here"), "{log}");
        assert!(check_records(&records[..1]).is_ok());
    }
}
