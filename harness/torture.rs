//! The kernel's own torture tests of its locks (locktorture) and of RCU
//! (rcutorture), run on this architecture: the best check there is that
//! the SMP port is a correct Linux.
//!
//! They run in the torture kernel ([`Variant::Torture`]), built on demand,
//! where they are built in and start at boot; only one at a time, so each
//! run boots that kernel for one test: a lock type of locktorture, or
//! rcutorture. The test hammers it from kernel threads on every CPU for
//! the time asked, then prints its verdict (`End of test: SUCCESS` or
//! `FAILURE`) and powers the kernel off itself.
//!
//! ```no_run
//! use lkl_harness::torture::{self, TortureOptions};
//!
//! let runs = torture::run(&TortureOptions::default(), &|_| {}).unwrap();
//! for run in &runs {
//!     assert!(run.passed(), "{}", run.log);
//! }
//! ```

use std::time::{Duration, Instant};

use regex::Regex;
use serde::Serialize;

use crate::kbuild::{Spec, Variant};
use crate::kernel::{BootOptions, Kernel};

/// The tests of a default run: the lock types of locktorture (one of
/// each kind), and `rcu` for rcutorture.
pub const TESTS: [&str; 4] = ["spin_lock", "mutex_lock", "rw_lock", "rcu"];

/// What [`run`] does.
#[derive(Clone, Debug, Serialize)]
pub struct TortureOptions {
    /// How long each run lasts, in seconds.
    pub seconds: u32,
    /// CPUs of the kernel.
    pub cpus: u32,
    /// The tests, one boot each: locktorture types, or `rcu`.
    pub tests: Vec<String>,
}

impl Default for TortureOptions {
    fn default() -> Self {
        TortureOptions {
            seconds: 10,
            cpus: 4,
            tests: TESTS.iter().map(|t| t.to_string()).collect(),
        }
    }
}

/// The outcome of one boot of the torture kernel.
#[derive(Clone, Debug, Serialize)]
pub struct TortureRun {
    /// The test: a locktorture type, or `rcu`.
    pub test: String,
    /// CPUs.
    pub cpus: u32,
    /// From boot to the test's power-off.
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
    /// The test's verdict line, if it printed one.
    pub verdict: Option<String>,
    /// Operations: lock acquisitions (writers and readers) for a lock
    /// type, grace periods for rcu, from the test's last statistics.
    pub operations: u64,
    /// Errors the test counted: lock failures, or rcutorture's error
    /// counters (memory-barrier, reader-pipe and forward-progress errors).
    pub errors: u64,
    /// Kernel bug reports in the log (WARN, BUG, lockdep, stalls).
    pub splats: Vec<String>,
    /// The whole log.
    #[serde(skip)]
    pub log: String,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl TortureRun {
    /// Whether the test said SUCCESS, counted no error, and the kernel
    /// reported nothing.
    pub fn passed(&self) -> bool {
        self.verdict
            .as_deref()
            .is_some_and(|l| l.contains("End of test: SUCCESS"))
            && self.errors == 0
            && self.splats.is_empty()
    }
}

/// The kernel command line of a run. locktorture starts first and keeps
/// rcutorture from starting; for `rcu` it is given no type it knows, so
/// that it steps aside. No stutter (the tests' default pauses them for
/// five seconds in ten, which a short run would spend paused).
fn command_line(options: &TortureOptions, test: &str) -> String {
    let s = options.seconds;
    if test == "rcu" {
        return format!(
            "locktorture.torture_type=none rcutorture.torture_type=rcu \
             rcutorture.stutter=0 rcutorture.shutdown_secs={s} \
             rcutorture.stat_interval={s}"
        );
    }
    format!(
        "locktorture.torture_type={test} locktorture.stutter=0 \
         locktorture.shutdown_secs={s} locktorture.stat_interval={s}"
    )
}

/// The last number after `label` in `log`.
fn last_number(log: &str, pattern: &Regex) -> u64 {
    pattern
        .captures_iter(log)
        .last()
        .and_then(|c| c[1].parse().ok())
        .unwrap_or(0)
}

/// Boots the torture kernel once per test and collects the verdicts.
/// `progress` hears of each run as it starts. Errors are failures to
/// build or boot the kernel; a failing test is a run that did not pass.
pub fn run(
    options: &TortureOptions,
    progress: &dyn Fn(&str),
) -> Result<Vec<TortureRun>, crate::kernel::Error> {
    let spec = Spec::of(Variant::Torture);
    let writes = Regex::new(r"Writes:\s+Total:\s+(\d+)").expect("a valid pattern");
    let reads = Regex::new(r"Reads:\s+Total:\s+(\d+)").expect("a valid pattern");
    let fails = Regex::new(r"Total:\s+\d+\s+Max/Min:\s+\d+/\d+\s+\S*\s*Fail:\s+(\d+)")
        .expect("a valid pattern");
    let gps = Regex::new(r"(?i)rcu-torture: rtc: \S+ ver: (\d+)").expect("a valid pattern");
    let rcu_errors =
        Regex::new(r"\b(?:rtmbe|rtbe|rtbke|rtbf|tfle): (\d+)").expect("a valid pattern");
    let mut runs = Vec::new();
    for test in &options.tests {
        progress(test);
        let started = Instant::now();
        let kernel = Kernel::boot_seeded(
            &spec,
            BootOptions {
                cpus: options.cpus,
                cmdline: command_line(options, test),
                hang_timeout: None,
                ..BootOptions::default()
            },
        )?;
        // The tests power the kernel off when they are done.
        let limit = Duration::from_secs(u64::from(options.seconds) + 120);
        let deadline = started + limit;
        let done = |log: &str| {
            log.contains("torture:--- End of test") && log.contains("reboot: Power down")
        };
        while !done(&kernel.dmesg()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let duration = started.elapsed();
        let records = kernel.log();
        let log = kernel.dmesg();
        let verdict = records
            .iter()
            .find(|r| r.text.contains("torture:--- End of test"))
            .map(|r| r.text.trim().to_string());
        // The last statistics: the verdict's, printed just before it.
        let (operations, errors) = if test == "rcu" {
            let last_stats = log.rfind("rcu-torture: rtc:").map_or("", |i| &log[i..]);
            let errors = rcu_errors
                .captures_iter(last_stats.lines().next().unwrap_or(""))
                .filter_map(|c| c[1].parse::<u64>().ok())
                .sum();
            (last_number(&log, &gps), errors)
        } else {
            let last_writes = log.rfind("Writes:").map_or("", |i| &log[i..]);
            let errors = fails
                .captures_iter(last_writes)
                .filter_map(|c| c[1].parse::<u64>().ok())
                .sum();
            (
                last_number(&log, &writes) + last_number(&log, &reads),
                errors,
            )
        };
        let run = TortureRun {
            test: test.clone(),
            cpus: options.cpus,
            duration,
            verdict,
            operations,
            errors,
            splats: crate::check::splat_lines(&records),
            log,
        };
        kernel.halt()?;
        runs.push(run);
    }
    Ok(runs)
}
