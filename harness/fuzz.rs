//! A coverage-guided, in-process fuzzer for system calls.
//!
//! Inputs are raw bytes, decoded into a structured input with the
//! [`arbitrary`] crate (as cargo-fuzz does), so that the mutations stay
//! simple and any `#[derive(Arbitrary)]` type can be fuzzed. Each call runs
//! under [`lkl_sim::coverage::trace`]: on a coverage kernel
//! ([`crate::kbuild::Spec::coverage`]) that is the list of basic blocks
//! of the files under test that this call ran, on this thread. An input
//! that makes a new edge (a pair of blocks one after the other) joins the
//! corpus. Every call is checked:
//!
//! - by the target: its result (the errno contract, say), and the records
//!   the call logged ([`Target::check_log`]);
//! - by the kernel: any WARN, BUG, oops, lockdep, KASAN, UBSAN or KCSAN
//!   report in those records ([`crate::check::check_records`]).
//!
//! A finding is minimised (shorter and simpler bytes that still fail, each
//! tried on a fresh kernel) and returned with the kernel's report.
//! [`hello`] is the structure-aware target for `hello(2)`; for your own
//! system call, see [`run_fn`].

use std::collections::HashSet;
use std::fmt::Debug;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};

use crate::{Kernel, Record};

pub mod campaign;
pub mod hello;

/// What to fuzz: an input type and how to call the kernel with it.
pub trait Target {
    /// The structured input, decoded from the fuzzer's bytes.
    type Input: for<'a> Arbitrary<'a> + Debug;

    /// Makes the call(s) for `input`; `Err` with a message is a finding
    /// (a wrong result, an unknown errno).
    fn exec(&mut self, input: &Self::Input, kernel: &Kernel) -> Result<(), String>;

    /// Checks what the call logged (the records of this call only, kernel
    /// reports already checked); `Err` is a finding.
    fn check_log(&mut self, _input: &Self::Input, _records: &[Record]) -> Result<(), String> {
        Ok(())
    }
}

/// A target from a closure (no log check beyond the kernel's reports).
pub struct FnTarget<T, F> {
    f: F,
    _input: std::marker::PhantomData<fn(&T)>,
}

impl<T, F> Target for FnTarget<T, F>
where
    T: for<'a> Arbitrary<'a> + Debug,
    F: FnMut(&T, &Kernel) -> Result<(), String>,
{
    type Input = T;
    fn exec(&mut self, input: &T, kernel: &Kernel) -> Result<(), String> {
        (self.f)(input, kernel)
    }
}

/// Wraps `f` as a [`Target`]: `fuzz::run(&kernel, &options, &mut
/// fuzz::target(|input: &MyInput, kernel| ...), ...)`.
pub fn target<T, F>(f: F) -> FnTarget<T, F>
where
    T: for<'a> Arbitrary<'a> + Debug,
    F: FnMut(&T, &Kernel) -> Result<(), String>,
{
    FnTarget {
        f,
        _input: std::marker::PhantomData,
    }
}

/// How long and how to fuzz.
#[derive(Clone, Debug)]
pub struct Options {
    /// The random seed: the same seed, corpus and kernel make the same run.
    pub seed: u64,
    /// Stop after this many calls.
    pub max_execs: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// The longest input, in bytes.
    pub max_len: usize,
    /// Inputs to start from (the corpus directory's), besides the empty one.
    pub seeds: Vec<Vec<u8>>,
    /// Where new corpus entries are written (`<hash>` files), if anywhere.
    pub corpus: Option<PathBuf>,
    /// Tries at most this many reductions when minimising a finding.
    pub minimise_tries: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seed: 1,
            max_execs: None,
            duration: Some(Duration::from_secs(10)),
            max_len: 512,
            seeds: Vec::new(),
            corpus: None,
            minimise_tries: 200,
        }
    }
}

/// Progress, as reported while running and at the end.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Stats {
    /// Calls made.
    pub execs: u64,
    /// Inputs kept for new coverage.
    pub corpus: usize,
    /// Distinct edges (block after block) seen.
    pub edges: usize,
    /// Distinct blocks seen.
    pub blocks: usize,
    /// Time since the start.
    pub elapsed_ms: u64,
    /// Findings (0 or 1: a finding ends the run).
    pub findings: usize,
}

impl Stats {
    fn fill(&mut self, corpus: usize, edges: usize, blocks: usize, started: Instant) {
        self.corpus = corpus;
        self.edges = edges;
        self.blocks = blocks;
        self.elapsed_ms = started.elapsed().as_millis() as u64;
    }
}

/// A bug the fuzzer found.
#[derive(Clone, Debug)]
pub struct Finding {
    /// What failed: the target's message or the kernel's report.
    pub message: String,
    /// The input as found.
    pub input: Vec<u8>,
    /// The smallest input found that still fails the same way.
    pub minimised: Vec<u8>,
    /// The decoded minimised input (`Debug`).
    pub decoded: String,
    /// Calls made before it was found.
    pub execs: u64,
    /// Time to find it.
    pub elapsed: Duration,
}

/// The end of a run.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The final progress.
    pub stats: Stats,
    /// The blocks seen (offsets from `_stext`).
    pub blocks: HashSet<u32>,
    /// The bug found, if one was.
    pub finding: Option<Finding>,
}

/// xorshift64*: small, fast, reproducible.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Values that find boundaries: sizes, lengths, flag bits.
const INTERESTING: &[u64] = &[
    0,
    1,
    7,
    8,
    15,
    16,
    17,
    24,
    63,
    64,
    65,
    127,
    128,
    255,
    256,
    4095,
    4096,
    4097,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    u64::MAX,
];

/// Applies one to four random mutations to `data`, sometimes splicing in
/// part of `other`.
fn mutate(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8], max_len: usize) {
    for _ in 0..1 + rng.below(4) {
        match rng.below(9) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] = rng.next_u64() as u8;
            }
            2 if data.len() < max_len => {
                let i = rng.below(data.len() + 1);
                let n = 1 + rng.below(16.min(max_len - data.len()));
                for k in 0..n {
                    data.insert(i + k, rng.next_u64() as u8);
                }
            }
            3 if !data.is_empty() => {
                let i = rng.below(data.len());
                let n = 1 + rng.below(data.len() - i);
                data.drain(i..i + n);
            }
            4 => {
                // An interesting value, 1, 2, 4 or 8 bytes wide.
                let v = INTERESTING[rng.below(INTERESTING.len())];
                let width = 1 << rng.below(4);
                let bytes = v.to_le_bytes();
                let i = rng.below(data.len() + 1);
                for (k, b) in bytes[..width].iter().enumerate() {
                    if i + k < data.len() {
                        data[i + k] = *b;
                    } else if data.len() < max_len {
                        data.push(*b);
                    }
                }
            }
            5 if !other.is_empty() => {
                // Splice: part of another corpus entry.
                let from = rng.below(other.len());
                let n = 1 + rng.below(other.len() - from);
                let at = rng.below(data.len() + 1);
                let end = (at + n).min(data.len());
                data.splice(at..end, other[from..from + n].iter().copied());
            }
            6 if data.len() < max_len => {
                // A run of one byte: long names, zero tails.
                let n = 1 + rng.below(96.min(max_len - data.len()));
                let b = [0u8, b'A', 0x80, b'\n', b'%', 0xff][rng.below(6)];
                let at = rng.below(data.len() + 1);
                data.splice(at..at, std::iter::repeat_n(b, n));
            }
            7 if data.len() > 1 => {
                let i = rng.below(data.len());
                let j = rng.below(data.len());
                data.swap(i, j);
            }
            _ => data.push(rng.next_u64() as u8),
        }
    }
    data.truncate(max_len);
}

/// Decodes `bytes` into the target's input (missing bytes read as zeros,
/// as `arbitrary` does).
pub fn decode<T: for<'a> Arbitrary<'a>>(bytes: &[u8]) -> Option<T> {
    T::arbitrary(&mut Unstructured::new(bytes)).ok()
}

/// One call of `target` with `bytes`, on `kernel`, fully checked.
/// Returns the blocks it ran and the finding, if any.
pub fn exec_one<G: Target>(
    target: &mut G,
    kernel: &Kernel,
    bytes: &[u8],
) -> (Vec<u32>, Result<(), String>) {
    let Some(input) = decode::<G::Input>(bytes) else {
        return (Vec::new(), Ok(()));
    };
    let (result, traced) = lkl_sim::coverage::trace(|| target.exec(&input, kernel));
    if let Some(panic) = kernel.host().panic_message() {
        return (
            traced.blocks,
            Err(format!("Kernel panic: {panic}\n{}", kernel.dmesg())),
        );
    }
    // The kernel's own reports first: a WARN explains a wrong errno.
    let verdict = (|| {
        kernel
            .flush_log()
            .map_err(|e| format!("the kernel console stalled: {e}"))?;
        let records = kernel.take_log();
        kernel
            .with_image(|image| {
                crate::symbolize::with_program(|host| {
                    crate::check::check_records_with(&records, image, host)
                })
            })
            .map_err(|e| e.to_string())?;
        result?;
        target.check_log(&input, &records)
    })();
    (traced.blocks, verdict)
}

/// The same kind of failure: the first line, with addresses and numbers
/// that differ from run to run removed.
fn kind(message: &str) -> String {
    let first = message.lines().next().unwrap_or_default();
    first
        .split(|c: char| c.is_ascii_digit())
        .next()
        .unwrap_or(first)
        .to_string()
}

/// What a run tells its observer.
#[derive(Debug)]
pub enum Event<'a> {
    /// These bytes are about to run (a crash from here on is theirs).
    Exec(&'a [u8]),
    /// The progress, about every 100 ms and at the end.
    Progress(&'a Stats),
}

/// Fuzzes `target` on `kernel` until `options` say stop or a finding.
/// `boot` makes a fresh kernel of the same kind, for minimising (a
/// `WARN_ON_ONCE` fires once per kernel). `observe` sees each input before
/// it runs and the progress.
pub fn run<G: Target>(
    kernel: &Kernel,
    options: &Options,
    target: &mut G,
    boot: &dyn Fn() -> Result<Kernel, String>,
    mut observe: impl FnMut(Event<'_>),
) -> Outcome {
    let started = Instant::now();
    let mut rng = Rng::new(options.seed);
    let mut corpus: Vec<Vec<u8>> = vec![Vec::new()];
    corpus.extend(options.seeds.iter().cloned());
    let mut edges: HashSet<u64> = HashSet::new();
    let mut blocks: HashSet<u32> = HashSet::new();
    let mut stats = Stats::default();
    let mut last_progress = Instant::now();
    // Seeds run as they are first.
    let mut pending: Vec<Vec<u8>> = corpus.clone();
    loop {
        if options.max_execs.is_some_and(|m| stats.execs >= m)
            || options.duration.is_some_and(|d| started.elapsed() >= d)
        {
            break;
        }
        let bytes = pending.pop().unwrap_or_else(|| {
            let mut data = corpus[rng.below(corpus.len())].clone();
            let other = corpus[rng.below(corpus.len())].clone();
            mutate(&mut rng, &mut data, &other, options.max_len);
            data
        });
        observe(Event::Exec(&bytes));
        let (trace, verdict) = exec_one(target, kernel, &bytes);
        stats.execs += 1;
        let mut new = false;
        let mut prev = u32::MAX;
        for &b in &trace {
            new |= blocks.insert(b);
            let edge = (u64::from(prev) << 32) | u64::from(b);
            new |= edges.insert(edge);
            prev = b;
        }
        if new {
            if let Some(dir) = &options.corpus {
                save_input(dir, &bytes);
            }
            corpus.push(bytes.clone());
        }
        if let Err(message) = verdict {
            stats.findings = 1;
            let elapsed = started.elapsed();
            let minimised = minimise(target, boot, &bytes, &message, options.minimise_tries);
            let decoded = decode::<G::Input>(&minimised)
                .map(|i| format!("{i:#?}"))
                .unwrap_or_default();
            stats.fill(corpus.len(), edges.len(), blocks.len(), started);
            observe(Event::Progress(&stats));
            return Outcome {
                stats: stats.clone(),
                blocks,
                finding: Some(Finding {
                    message,
                    input: bytes,
                    minimised,
                    decoded,
                    execs: stats.execs,
                    elapsed,
                }),
            };
        }
        if last_progress.elapsed() >= Duration::from_millis(100) {
            last_progress = Instant::now();
            stats.fill(corpus.len(), edges.len(), blocks.len(), started);
            observe(Event::Progress(&stats));
        }
    }
    stats.fill(corpus.len(), edges.len(), blocks.len(), started);
    observe(Event::Progress(&stats));
    Outcome {
        stats,
        blocks,
        finding: None,
    }
}

/// Whether `bytes` fails like `message` on a fresh kernel.
fn fails_alike<G: Target>(
    target: &mut G,
    boot: &dyn Fn() -> Result<Kernel, String>,
    bytes: &[u8],
    message: &str,
) -> bool {
    let Ok(kernel) = boot() else { return false };
    let (_, verdict) = exec_one(target, &kernel, bytes);
    let same = verdict.is_err_and(|m| kind(&m) == kind(message));
    if kernel.host().panic_message().is_some() {
        std::mem::forget(kernel);
    }
    same
}

/// Smaller inputs that still fail alike: cut chunks (halves down to single
/// bytes), then zero bytes, each tried on a fresh kernel.
pub fn minimise<G: Target>(
    target: &mut G,
    boot: &dyn Fn() -> Result<Kernel, String>,
    bytes: &[u8],
    message: &str,
    tries: u32,
) -> Vec<u8> {
    minimise_with(bytes, tries, |candidate| {
        fails_alike(target, boot, candidate, message)
    })
}

/// Smaller inputs for which `fails` still holds (at most `tries` tries):
/// cut chunks (halves down to single bytes), then zero bytes. `bytes`
/// itself is returned if `fails` does not hold for it.
pub fn minimise_with(
    bytes: &[u8],
    mut tries: u32,
    mut fails: impl FnMut(&[u8]) -> bool,
) -> Vec<u8> {
    let mut best = bytes.to_vec();
    if !fails(&best) {
        // Not reproducible alone (it needed the kernel's earlier state).
        return best;
    }
    let mut chunk = best.len().div_ceil(2).max(1);
    while tries > 0 {
        let mut at = 0;
        while at < best.len() && tries > 0 {
            let mut candidate = best.clone();
            let end = (at + chunk).min(candidate.len());
            candidate.drain(at..end);
            tries -= 1;
            if fails(&candidate) {
                best = candidate;
            } else {
                at += chunk;
            }
        }
        if chunk == 1 {
            break;
        }
        chunk /= 2;
    }
    for i in 0..best.len() {
        if tries == 0 {
            break;
        }
        if best[i] == 0 {
            continue;
        }
        let mut candidate = best.clone();
        candidate[i] = 0;
        tries -= 1;
        if fails(&candidate) {
            best = candidate;
        }
    }
    best
}

/// A stable name for an input: 16 hex digits of its hash.
pub fn input_name(bytes: &[u8]) -> String {
    format!("{:016x}", crate::kbuild::stable_hash(bytes))
}

fn save_input(dir: &std::path::Path, bytes: &[u8]) {
    let _ = std::fs::create_dir_all(dir);
    let path = dir.join(input_name(bytes));
    if !path.exists() {
        let partial = dir.join(format!(".{}.partial", input_name(bytes)));
        if std::fs::write(&partial, bytes).is_ok() {
            let _ = std::fs::rename(&partial, &path);
        }
    }
}

/// The inputs in a corpus directory (files not starting with `.` or
/// named `finding-*`).
pub fn load_corpus(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        let name = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if name.starts_with('.') || name.starts_with("finding-") || !p.is_file() {
            continue;
        }
        if let Ok(bytes) = std::fs::read(&p) {
            out.push(bytes);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_makes_the_same_mutations() {
        let run = |seed| {
            let mut rng = Rng::new(seed);
            let mut data = b"hello".to_vec();
            for _ in 0..50 {
                mutate(&mut rng, &mut data, b"other", 64);
            }
            data
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        assert!(run(9).len() <= 64);
    }

    #[test]
    fn minimising_keeps_what_the_failure_needs() {
        // Fails when the input holds 7 then 9, anywhere.
        let fails = |b: &[u8]| b.windows(2).any(|w| w == [7, 9]);
        let input = [1, 2, 3, 7, 9, 4, 5, 6, 8, 8, 8];
        assert_eq!(minimise_with(&input, 1000, fails), [7, 9]);
        assert_eq!(
            minimise_with(&[1, 2], 1000, fails),
            [1, 2],
            "no failure: unchanged"
        );
    }

    #[test]
    fn failures_alike_ignore_numbers_and_addresses() {
        assert_eq!(
            kind("BUG: KASAN: stack-out-of-bounds in f+0x1c/0x40\nmore"),
            kind("BUG: KASAN: stack-out-of-bounds in f+0x2c/0x80")
        );
        assert_ne!(kind("errno 22"), kind("WARNING: at x"));
    }
}
