//! The stress driver: many threads calling `hello` at once, and a check
//! that the kernel logged exactly what they asked for.
//!
//! [`run`] is the one call loop of this crate: `tests/stress.rs`, the
//! command line (`cargo run --release`) and the `bench` subcommand all go
//! through it. Each of `threads` host threads makes `calls` calls, call
//! `c` of thread `t` greeting the name `t{t}-c{c}`; every
//! [`Loudness::Every`]-th call is loud. The [`Summary`] counts what came
//! back and [`Summary::verify`] checks it: every greeting exactly once
//! and intact, every loud call's `HELLO, …!!!` line, logged by the task
//! of the thread that made the call, nothing else logged, no error.
//!
//! ```
//! use lkl_harness::{stress, BootOptions, Kernel, StressOptions};
//!
//! let kernel = Kernel::boot(BootOptions::default()).unwrap();
//! let options = StressOptions { threads: 4, calls: 50, ..StressOptions::default() };
//! let summary = stress::run(&kernel, &options, &|_| {});
//! summary.verify().expect("nothing lost, nothing extra");
//! assert_eq!(summary.counts.calls, 200);
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::CStr;
use std::fmt;
use std::io::Write as _;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::hello::{HelloArgs, HELLO_FLAG_LOUD};
use crate::kernel::Kernel;
use crate::log::{Caller, Origin, Record};

/// The longest name `hello` prints, in bytes: its buffer is
/// `HELLO_NAME_MAX` (64, kernel-internal, not in the UAPI) including the
/// NUL, and longer names are truncated.
pub const NAME_MAX_PRINTED: usize = 63;

/// How often a worker reports progress, in calls.
const PROGRESS_BATCH: u64 = 256;

/// Which calls set `HELLO_FLAG_LOUD`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Loudness {
    /// No call is loud.
    Never,
    /// Every `n`-th call of each thread is loud (calls `n-1`, `2n-1`, …).
    Every(u32),
    /// Every call is loud.
    All,
}

/// What [`run`] does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StressOptions {
    /// Host threads calling at once.
    pub threads: usize,
    /// Calls per thread.
    pub calls: usize,
    /// Which calls are loud.
    pub loud: Loudness,
    /// One name for every call instead of `t{thread}-c{call}`; greetings
    /// can then only be counted, not told apart.
    pub name: Option<String>,
}

impl Default for StressOptions {
    /// 8 threads × 20,000 calls, every 4th call loud.
    fn default() -> Self {
        StressOptions {
            threads: 8,
            calls: 20_000,
            loud: Loudness::Every(4),
            name: None,
        }
    }
}

impl StressOptions {
    /// Whether call `call` (of any thread) is loud.
    pub fn is_loud(&self, call: usize) -> bool {
        match self.loud {
            Loudness::Never => false,
            Loudness::All => true,
            Loudness::Every(n) => n > 0 && (call + 1).is_multiple_of(n as usize),
        }
    }

    /// The name call `call` of thread `thread` greets.
    pub fn name_of(&self, thread: usize, call: usize) -> String {
        match &self.name {
            Some(name) => name.clone(),
            None => format!("t{thread}-c{call}"),
        }
    }

    /// Total calls.
    pub fn total_calls(&self) -> u64 {
        (self.threads * self.calls) as u64
    }

    /// Calls that are loud, in total.
    pub fn loud_calls(&self) -> u64 {
        let per_thread = (0..self.calls).filter(|&c| self.is_loud(c)).count();
        (per_thread * self.threads) as u64
    }
}

/// What went wrong in a stress run, as found by [`Summary::verify`].
#[derive(Debug, thiserror::Error)]
#[error(
    "the stress run did not log exactly what it asked for:\n  {}\n\
     Lost or torn lines point at the console path (printk → console_write → \
     the host's console); errors at the system call itself. Rerun with --log \
     to see the whole kernel log.",
    problems.join("\n  ")
)]
pub struct StressError {
    /// One line per problem found.
    pub problems: Vec<String>,
}

/// The outcome of a [`run`]: counts, which are deterministic, and
/// timings, which are not.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// What was run.
    pub options: StressOptions,
    /// The deterministic counts (in JSON: at the top level).
    #[serde(flatten)]
    pub counts: Counts,
    /// Up to ten of the unexpected records, as `dmesg` prints them.
    pub unexpected_samples: Vec<String>,
    /// Up to ten of the other kernel records, as `dmesg` prints them.
    pub other_samples: Vec<String>,
    /// Up to ten of the lost lines.
    pub lost_samples: Vec<String>,
    /// Kernel bug reports the run caused, as `dmesg` prints them.
    pub splats: Vec<String>,
    /// Records the kernel logged during the run but overwrote in its ring
    /// buffer before the console printed them: gaps in the sequence
    /// numbers of the records captured.
    pub records_overwritten: u64,
    /// Wall time from the moment all threads were ready to the last
    /// call's return (in JSON: seconds, as `elapsed_s`).
    #[serde(rename = "elapsed_s", serialize_with = "as_secs")]
    pub elapsed: Duration,
    /// Calls per second over `elapsed`.
    pub calls_per_sec: f64,
    /// Median latency of one call, in nanoseconds.
    pub latency_p50_ns: u64,
    /// 99th percentile latency of one call, in nanoseconds.
    pub latency_p99_ns: u64,
}

/// The deterministic part of a [`Summary`]: the same on every run that
/// passes, so it can be a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Threads.
    pub threads: usize,
    /// Calls made.
    pub calls: u64,
    /// Loud calls.
    pub loud_calls: u64,
    /// Failed calls by errno name.
    pub errors: BTreeMap<String, u64>,
    /// Lines asked for.
    pub expected_lines: u64,
    /// Records logged, but for the `lines_other`.
    pub lines_captured: u64,
    /// Lines lost.
    pub lines_lost: u64,
    /// Lines duplicated.
    pub lines_duplicated: u64,
    /// Records nobody asked for, logged by the run's own tasks (or by
    /// a caller the record does not name).
    pub lines_unexpected: u64,
    /// Records nobody asked for, of the rest of the kernel: another task,
    /// or a CPU in interrupt context. The kernel logs such lines when it
    /// pleases (`random: crng init done` a minute or so after boot), so
    /// they are shown but fail nothing; what the run's calls log is in
    /// the other counts, and bug reports are splats wherever they come
    /// from.
    pub lines_other: u64,
    /// Lines logged by the wrong task.
    pub wrong_caller: u64,
}

impl Summary {
    /// `Ok` if every call succeeded and the log holds exactly the lines
    /// they asked for, each once, from the right task, and nothing else.
    pub fn verify(&self) -> Result<(), StressError> {
        let mut problems = Vec::new();
        for (errno, count) in &self.counts.errors {
            problems.push(format!("{count} call(s) failed with {errno}"));
        }
        if self.counts.lines_lost > 0 {
            problems.push(format!(
                "{} of {} expected line(s) lost, e.g. {:?}",
                self.counts.lines_lost, self.counts.expected_lines, self.lost_samples
            ));
        }
        if self.records_overwritten > 0 {
            problems.push(format!(
                "the kernel overwrote {} record(s) in its ring buffer before the console \
                 printed them (a console that falls behind: see lkl_console_keep_up() in \
                 lkl/arch/lkl/kernel/console.c)",
                self.records_overwritten
            ));
        }
        if self.counts.lines_duplicated > 0 {
            problems.push(format!(
                "{} line(s) logged more than once",
                self.counts.lines_duplicated
            ));
        }
        if self.counts.lines_unexpected > 0 {
            problems.push(format!(
                "{} unexpected record(s), e.g. {:?}",
                self.counts.lines_unexpected, self.unexpected_samples
            ));
        }
        if self.counts.wrong_caller > 0 {
            problems.push(format!(
                "{} line(s) logged by a task other than the calling thread's",
                self.counts.wrong_caller
            ));
        }
        problems.extend(splat_problem(&self.splats));
        if problems.is_empty() {
            Ok(())
        } else {
            Err(StressError { problems })
        }
    }

    /// The summary as a human-readable table (what the command line
    /// prints).
    pub fn table(&self) -> String {
        let errors = if self.counts.errors.is_empty() {
            "none".to_string()
        } else {
            self.counts
                .errors
                .iter()
                .map(|(errno, n)| format!("{errno}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let other = if self.other_samples.is_empty() {
            self.counts.lines_other.to_string()
        } else {
            format!(
                "{} (not the run's), e.g. {:?}",
                self.counts.lines_other, self.other_samples
            )
        };
        let rows: [(&str, String); 11] = [
            (
                "calls",
                format!(
                    "{} ({} threads × {}, {} loud)",
                    self.counts.calls,
                    self.options.threads,
                    self.options.calls,
                    self.counts.loud_calls
                ),
            ),
            ("errors", errors),
            ("log lines expected", self.counts.expected_lines.to_string()),
            ("log lines captured", self.counts.lines_captured.to_string()),
            ("lines lost", self.counts.lines_lost.to_string()),
            (
                "duplicated / unexpected",
                format!(
                    "{} / {}",
                    self.counts.lines_duplicated, self.counts.lines_unexpected
                ),
            ),
            ("wrong caller", self.counts.wrong_caller.to_string()),
            ("other kernel records", other),
            ("elapsed", format!("{:.3} s", self.elapsed.as_secs_f64())),
            ("throughput", format!("{:.0} calls/s", self.calls_per_sec)),
            (
                "latency p50 / p99",
                format!(
                    "{} / {}",
                    fmt_ns(self.latency_p50_ns),
                    fmt_ns(self.latency_p99_ns)
                ),
            ),
        ];
        rows.iter().fold(String::new(), |mut out, (name, value)| {
            out.push_str(&format!("{name:>24}  {value}\n"));
            out
        })
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.table())
    }
}

fn as_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// A duration in nanoseconds, with a unit that keeps it short.
pub fn fmt_ns(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{:.1} µs", ns as f64 / 1e3),
        _ => format!("{:.2} ms", ns as f64 / 1e6),
    }
}

/// One call of a [`run_calls`] run: which thread makes it, and which of
/// that thread's calls it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call {
    /// The thread, from 0.
    pub thread: usize,
    /// The call of that thread, from 0.
    pub index: usize,
}

/// The outcome of a [`run_calls`] run.
#[derive(Clone, Debug, Serialize)]
pub struct Calls {
    /// Threads that called.
    pub threads: usize,
    /// Calls made.
    pub calls: u64,
    /// Calls whose check failed, by the message it failed with.
    pub failures: BTreeMap<String, u64>,
    /// Up to ten failed calls, as `thread T call C: message`.
    pub failure_samples: Vec<String>,
    /// Kernel bug reports the run caused (`WARNING:`, `BUG:`, lockdep,
    /// KCSAN ...; see [`crate::check::is_splat`]), as `dmesg` prints them.
    pub splats: Vec<String>,
    /// Which calls failed: (thread, call).
    #[serde(skip)]
    pub failed: BTreeSet<(usize, usize)>,
    /// The kernel task id of each thread.
    #[serde(skip)]
    pub tids: Vec<u32>,
    /// The first log record of the run (an index into [`Kernel::log`]).
    #[serde(skip)]
    pub log_start: usize,
    /// Wall time from the moment all threads were ready to the last
    /// call's return (in JSON: seconds, as `elapsed_s`).
    #[serde(rename = "elapsed_s", serialize_with = "as_secs")]
    pub elapsed: Duration,
    /// Calls per second over `elapsed`.
    pub calls_per_sec: f64,
    /// Median latency of one call, in nanoseconds.
    pub latency_p50_ns: u64,
    /// 99th percentile latency of one call, in nanoseconds.
    pub latency_p99_ns: u64,
}

impl Calls {
    /// `Ok` if every call's check passed and the kernel reported no bug.
    pub fn verify(&self) -> Result<(), StressError> {
        let mut problems: Vec<String> = self
            .failures
            .iter()
            .map(|(message, count)| format!("{count} call(s) failed: {message}"))
            .collect();
        problems.extend(splat_problem(&self.splats));
        if problems.is_empty() {
            Ok(())
        } else {
            Err(StressError { problems })
        }
    }
}

/// The verdict's line for the kernel's bug reports, if any.
fn splat_problem(splats: &[String]) -> Option<String> {
    (!splats.is_empty()).then(|| {
        format!(
            "the kernel reported {} bug line(s) during the run: {:?}",
            splats.len(),
            &splats[..splats.len().min(10)]
        )
    })
}

/// What one worker thread brings back.
struct Worker {
    tid: u32,
    failures: Vec<(usize, String)>,
    latency: Histogram,
    /// When its first call started and its last one returned.
    span: (Instant, Instant),
}

/// Runs `threads` host threads at once, each making `calls` calls of
/// `call`, and checks the kernel log afterwards: the generic stress run
/// that [`run`] (for `hello()`) is built on, for any system call.
///
/// `call` makes one call and checks it: `Err(message)` counts as a failed
/// call. Every thread gets its kernel task before the clock starts, and
/// all start together. `progress` is called from the workers with the
/// number of calls completed since their last report (in batches, to stay
/// cheap). The latency of each `call` is measured, check included.
///
/// ```
/// use lkl_harness::{stress, BootOptions, Kernel};
///
/// let kernel = Kernel::boot(BootOptions::default()).unwrap();
/// let calls = stress::run_calls(&kernel, 4, 100, &|_| {}, |call, kernel| {
///     let tid = kernel.gettid().map_err(|e| e.to_string())?;
///     let pid = kernel.getpid().map_err(|e| e.to_string())?;
///     if pid != 1 || tid == 1 {
///         return Err(format!("thread {}: pid {pid}, tid {tid}", call.thread));
///     }
///     Ok(())
/// });
/// calls.verify().expect("every check passed, the kernel reported nothing");
/// assert_eq!(calls.calls, 400);
/// ```
pub fn run_calls<F>(
    kernel: &Kernel,
    threads: usize,
    calls: usize,
    progress: &(dyn Fn(u64) + Sync),
    call: F,
) -> Calls
where
    F: Fn(Call, &Kernel) -> Result<(), String> + Sync,
{
    // Records are only ever appended (unless someone drains the log
    // during the run, which nothing here does): the run's are those after
    // this position.
    kernel.flush_log().expect("the kernel console stalled");
    let log_start = kernel.host().console().len();
    let ready = Barrier::new(threads);
    let (workers, elapsed) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let (ready, call) = (&ready, &call);
                scope.spawn(move || worker(kernel, thread, calls, ready, progress, call))
            })
            .collect();
        let workers: Vec<Worker> = handles
            .into_iter()
            .map(|h| h.join().expect("a stress worker panicked"))
            .collect();
        // From the first call's start to the last one's return: the
        // threads' own clocks, not this one's, which may well start late.
        let first = workers.iter().map(|w| w.span.0).min();
        let last = workers.iter().map(|w| w.span.1).max();
        let elapsed = match (first, last) {
            (Some(first), Some(last)) => last.duration_since(first),
            _ => Duration::ZERO,
        };
        (workers, elapsed)
    });
    kernel.flush_log().expect("the kernel console stalled");
    let records = kernel.log();
    let splats = crate::check::splat_lines(records.get(log_start..).unwrap_or_default());

    let mut failures = BTreeMap::new();
    let mut failure_samples = Vec::new();
    let mut failed = BTreeSet::new();
    let mut latency = Histogram::default();
    for (thread, w) in workers.iter().enumerate() {
        for (index, message) in &w.failures {
            *failures.entry(message.clone()).or_insert(0) += 1;
            failed.insert((thread, *index));
            if failure_samples.len() < 10 {
                failure_samples.push(format!("thread {thread} call {index}: {message}"));
            }
        }
        latency.merge(&w.latency);
    }
    let total = (threads * calls) as u64;
    Calls {
        threads,
        calls: total,
        failures,
        failure_samples,
        splats,
        failed,
        tids: workers.iter().map(|w| w.tid).collect(),
        log_start,
        elapsed,
        calls_per_sec: total as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE),
        latency_p50_ns: latency.percentile(50.0),
        latency_p99_ns: latency.percentile(99.0),
    }
}

/// One thread's calls: the loop every caller of this crate shares.
fn worker<F>(
    kernel: &Kernel,
    thread: usize,
    calls: usize,
    ready: &Barrier,
    progress: &(dyn Fn(u64) + Sync),
    call: &F,
) -> Worker
where
    F: Fn(Call, &Kernel) -> Result<(), String>,
{
    // The first call gives this thread its kernel task; make it before
    // the clock starts.
    let tid = kernel.current_tid();
    let mut latency = Histogram::default();
    let mut failures = Vec::new();
    let mut unreported = 0;
    ready.wait();
    let first = Instant::now();
    for index in 0..calls {
        let started = Instant::now();
        let result = call(Call { thread, index }, kernel);
        latency.record(started.elapsed());
        if let Err(message) = result {
            failures.push((index, message));
        }
        unreported += 1;
        if unreported == PROGRESS_BATCH {
            progress(unreported);
            unreported = 0;
        }
    }
    progress(unreported);
    Worker {
        tid,
        failures,
        latency,
        span: (first, Instant::now()),
    }
}

/// Runs the stress: `options.threads` threads, each making
/// `options.calls` `hello` calls (through [`run_calls`]), then counts the
/// log records the run produced.
///
/// Panics if `options.name` contains a NUL byte.
pub fn run(kernel: &Kernel, options: &StressOptions, progress: &(dyn Fn(u64) + Sync)) -> Summary {
    if let Some(name) = &options.name {
        assert!(!name.contains('\0'), "a hello name cannot contain NUL");
    }
    let calls = run_calls(
        kernel,
        options.threads,
        options.calls,
        progress,
        |call, kernel| {
            let mut name = Vec::with_capacity(NAME_MAX_PRINTED + 1);
            match &options.name {
                Some(fixed) => name.extend_from_slice(fixed.as_bytes()),
                None => write!(name, "t{}-c{}", call.thread, call.index)
                    .expect("writing to a Vec cannot fail"),
            }
            name.push(0);
            let name = CStr::from_bytes_with_nul(&name).expect("one NUL, at the end");
            let flags = if options.is_loud(call.index) {
                HELLO_FLAG_LOUD
            } else {
                0
            };
            kernel
                .hello(&HelloArgs::new(name, flags))
                .map_err(|errno| format!("{errno:?}"))
        },
    );
    tally(kernel, options, calls)
}

/// What [`repeat`] did: how many runs, and the last of them.
#[derive(Clone, Debug, Serialize)]
pub struct Repeated {
    /// Runs made: up to the first that failed, or all that were asked.
    pub rounds: u32,
    /// Runs asked for.
    pub max_rounds: u32,
    /// The last run: the failing one, if one failed.
    pub last: Summary,
}

impl Repeated {
    /// `Ok` if every run passed; otherwise the failing run's problems.
    pub fn verify(&self) -> Result<(), StressError> {
        self.last.verify()
    }
}

/// Runs the stress up to `max_rounds` times (at least once), stopping at
/// the first run whose verdict ([`Summary::verify`]) fails.
///
/// A race shows only when the CPUs interleave just so, and KCSAN sets a
/// watchpoint on one access in thousands: a race that one run misses,
/// more runs find. The log is taken between passing runs, so a long
/// repeat keeps memory flat; the failing run's records, and its reports,
/// stay in the log for [`Kernel::check_log`].
pub fn repeat(
    kernel: &Kernel,
    options: &StressOptions,
    max_rounds: u32,
    progress: &(dyn Fn(u64) + Sync),
) -> Repeated {
    let max_rounds = max_rounds.max(1);
    let mut rounds = 0;
    loop {
        rounds += 1;
        let last = run(kernel, options, progress);
        if rounds == max_rounds || last.verify().is_err() {
            return Repeated {
                rounds,
                max_rounds,
                last,
            };
        }
        kernel.take_log();
    }
}

/// One expected log text: how often, and from which thread.
struct Expected {
    /// `None` when every thread greets the same name.
    thread: Option<usize>,
    want: u64,
    got: u64,
}

/// The text `hello` logs for `name`: truncated as the kernel truncates.
fn printed(name: &str) -> String {
    let bytes = &name.as_bytes()[..name.len().min(NAME_MAX_PRINTED)];
    String::from_utf8_lossy(bytes).into_owned()
}

/// Counts the records logged during the run against what the calls asked
/// for.
fn tally(kernel: &Kernel, options: &StressOptions, calls: Calls) -> Summary {
    let mut expected: HashMap<String, Expected> = HashMap::new();
    let failed = &calls.failed;
    let mut expected_lines = 0;
    for thread in 0..options.threads {
        for call in 0..options.calls {
            if failed.contains(&(thread, call)) {
                continue;
            }
            let name = printed(&options.name_of(thread, call));
            let owner = options.name.is_none().then_some(thread);
            let mut expect = |text: String| {
                expected_lines += 1;
                expected
                    .entry(text)
                    .or_insert(Expected {
                        thread: owner,
                        want: 0,
                        got: 0,
                    })
                    .want += 1;
            };
            expect(format!("Hello, {name}!"));
            if options.is_loud(call) {
                expect(format!("HELLO, {name}!!!"));
            }
        }
    }

    let tids = &calls.tids;
    let mut lines_captured = 0;
    let mut lines_unexpected = 0;
    let mut lines_other = 0;
    let mut wrong_caller = 0;
    let mut unexpected_samples = Vec::new();
    let mut other_samples = Vec::new();
    let records = kernel.log();
    let run = records.get(calls.log_start..).unwrap_or_default();
    let records_overwritten = seq_gaps(run);
    for record in run {
        match expected.get_mut(&record.text) {
            Some(e) => {
                lines_captured += 1;
                e.got += 1;
                let right_task = match (e.thread, record.caller) {
                    (Some(t), Some(Caller::Task(tid))) => tids[t] == tid,
                    (None, Some(Caller::Task(tid))) => tids.contains(&tid),
                    _ => false,
                };
                if !right_task {
                    wrong_caller += 1;
                }
            }
            None => {
                let (count, samples) = match record.caller {
                    Some(Caller::Task(tid)) if !tids.contains(&tid) => {
                        (&mut lines_other, &mut other_samples)
                    }
                    Some(Caller::Cpu(_)) => (&mut lines_other, &mut other_samples),
                    _ => {
                        lines_captured += 1;
                        (&mut lines_unexpected, &mut unexpected_samples)
                    }
                };
                *count += 1;
                if samples.len() < 10 {
                    samples.push(record.fmt_dmesg());
                }
            }
        }
    }
    let mut lines_lost = 0;
    let mut lines_duplicated = 0;
    let mut lost_samples = Vec::new();
    for (text, e) in &expected {
        lines_lost += e.want.saturating_sub(e.got);
        lines_duplicated += e.got.saturating_sub(e.want);
        if e.got < e.want && lost_samples.len() < 10 {
            lost_samples.push(text.clone());
        }
    }
    lost_samples.sort();

    Summary {
        options: options.clone(),
        counts: Counts {
            threads: options.threads,
            calls: calls.calls,
            loud_calls: options.loud_calls(),
            errors: calls.failures.clone(),
            expected_lines,
            lines_captured,
            lines_lost,
            lines_duplicated,
            lines_unexpected,
            lines_other,
            wrong_caller,
        },
        unexpected_samples,
        other_samples,
        lost_samples,
        splats: calls.splats.clone(),
        records_overwritten,
        elapsed: calls.elapsed,
        calls_per_sec: calls.calls_per_sec,
        latency_p50_ns: calls.latency_p50_ns,
        latency_p99_ns: calls.latency_p99_ns,
    }
}

/// How many sequence numbers are missing between consecutive kernel
/// records: what the ring buffer overwrote before the console printed it.
fn seq_gaps(records: &[Record]) -> u64 {
    let mut kmsg = records.iter().filter(|r| r.origin == Origin::Kmsg);
    let Some(first) = kmsg.next() else {
        return 0;
    };
    let mut gaps = 0;
    let mut next = first.seq + 1;
    for r in kmsg {
        gaps += r.seq.saturating_sub(next);
        next = next.max(r.seq + 1);
    }
    gaps
}

/// Sub-buckets per power of two: latencies are kept to within 1/32
/// (about 3 %) for the price of one array increment per call.
const SUB_BUCKET_BITS: u32 = 5;
const SUB_BUCKETS: usize = 1 << SUB_BUCKET_BITS;
/// Buckets to cover every `u64` nanosecond count.
const BUCKETS: usize = SUB_BUCKETS * (64 - SUB_BUCKET_BITS as usize + 1);

/// A log-linear latency histogram in nanoseconds (HDR-style).
#[derive(Clone, Debug)]
pub struct Histogram {
    buckets: Vec<u64>,
    count: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: vec![0; BUCKETS],
            count: 0,
        }
    }
}

impl Histogram {
    fn bucket(ns: u64) -> usize {
        if ns < SUB_BUCKETS as u64 {
            return ns as usize;
        }
        let magnitude = 63 - ns.leading_zeros(); // >= SUB_BUCKET_BITS
        let shift = magnitude - SUB_BUCKET_BITS;
        let sub = (ns >> shift) as usize & (SUB_BUCKETS - 1);
        SUB_BUCKETS * (shift as usize + 1) + sub
    }

    /// The smallest value that falls into bucket `index`.
    fn lower_bound(index: usize) -> u64 {
        if index < SUB_BUCKETS {
            return index as u64;
        }
        let shift = (index / SUB_BUCKETS - 1) as u32;
        let sub = (index % SUB_BUCKETS) as u64;
        (SUB_BUCKETS as u64 + sub) << shift
    }

    /// Adds one measurement.
    pub fn record(&mut self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[Self::bucket(ns)] += 1;
        self.count += 1;
    }

    /// Adds another histogram's measurements.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
        self.count += other.count;
    }

    /// Measurements recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The `p`-th percentile (0–100), in nanoseconds (the lower bound of
    /// its bucket); 0 when empty.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((p / 100.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (index, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Self::lower_bound(index);
            }
        }
        Self::lower_bound(BUCKETS - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kmsg(seq: u64) -> Record {
        Record {
            seq,
            ..Record::default()
        }
    }

    #[test]
    fn seq_gaps_counts_the_records_missing_between_kernel_records() {
        let raw = Record {
            origin: Origin::Raw,
            ..Record::default()
        };
        assert_eq!(seq_gaps(&[]), 0);
        assert_eq!(seq_gaps(&[kmsg(7), raw.clone(), kmsg(8), kmsg(9)]), 0);
        assert_eq!(seq_gaps(&[kmsg(7), kmsg(10), raw, kmsg(11), kmsg(20)]), 10);
    }

    #[test]
    fn histogram_buckets_round_trip_within_three_percent() {
        for ns in [
            0,
            1,
            31,
            32,
            33,
            1000,
            1234,
            98_765,
            5_000_000_000,
            u64::MAX,
        ] {
            let lower = Histogram::lower_bound(Histogram::bucket(ns));
            assert!(lower <= ns, "{ns}: {lower}");
            assert!(ns - lower <= ns / 32, "{ns}: {lower}");
        }
    }

    #[test]
    fn histogram_percentiles() {
        let mut h = Histogram::default();
        for ns in 1..=100u64 {
            h.record(Duration::from_nanos(ns * 1000));
        }
        assert_eq!(h.count(), 100);
        let p50 = h.percentile(50.0);
        assert!((48_000..=50_000).contains(&p50), "{p50}");
        let p99 = h.percentile(99.0);
        assert!((96_000..=99_000).contains(&p99), "{p99}");
        assert_eq!(Histogram::default().percentile(50.0), 0);
    }

    #[test]
    fn every_fourth_call_is_loud() {
        let options = StressOptions {
            threads: 3,
            calls: 10,
            ..StressOptions::default()
        };
        let loud: Vec<usize> = (0..10).filter(|&c| options.is_loud(c)).collect();
        assert_eq!(loud, [3, 7]);
        assert_eq!(options.loud_calls(), 6);
        assert_eq!(options.name_of(2, 9), "t2-c9");
    }

    #[test]
    fn long_names_are_expected_truncated_like_the_kernel_does() {
        assert_eq!(printed(&"x".repeat(200)).len(), NAME_MAX_PRINTED);
        assert_eq!(printed("short"), "short");
    }
}
