//! `lkl-harness fuzz`: workers in child processes, so that a bug that
//! takes the whole process down (a smashed host stack, a fault outside
//! the uaccess path) is a finding too, with its input.
//!
//! The parent builds the coverage kernel, starts `-j` workers (this same
//! program, `__fuzz-worker`), each with its own seed and kernel, sharing
//! the corpus directory (read at start, written as they find new
//! coverage), shows their progress and ends the run at the first finding
//! or crash. Each worker writes the input it is about to run into a
//! shared page (`<corpus>/.worker-<n>.current`) before every call, so the
//! parent knows the input of a worker that died.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::fuzz::{self, hello::Hello, Event, Options, Stats};
use crate::kbuild::{Spec, Variant};
use crate::{BootOptions, Kernel};

/// What `lkl-harness fuzz` was asked.
#[derive(Clone, Debug)]
pub struct Campaign {
    /// The program whose `__fuzz-worker` command runs a worker
    /// (`lkl-harness`: `std::env::current_exe()` from its command line).
    pub program: PathBuf,
    /// How long to fuzz.
    pub seconds: u64,
    /// The first worker's seed; worker n uses `seed + n`.
    pub seed: u64,
    /// CPUs of each worker's kernel.
    pub cpus: u32,
    /// The corpus directory.
    pub corpus: PathBuf,
    /// Workers (processes).
    pub jobs: usize,
    /// The kernel's configuration.
    pub variant: Variant,
    /// Patches on top of `lkl/patches/` (a seeded bug, say).
    pub mutants: Vec<PathBuf>,
}

/// How a campaign ended.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Summary {
    /// Calls made by all workers.
    pub execs: u64,
    /// Calls per second, all workers.
    pub execs_per_sec: f64,
    /// Wall time, in seconds.
    pub seconds: f64,
    /// Inputs in the corpus directory.
    pub corpus: usize,
    /// Per file under test: blocks reached and blocks instrumented.
    pub blocks: BTreeMap<String, (usize, usize)>,
    /// The finding (or crash), if any.
    pub finding: Option<String>,
    /// Files saved for it: the input and a ready-to-paste Rust test.
    pub reproducer: Vec<PathBuf>,
    /// Time to the finding, in seconds.
    pub seconds_to_find: Option<f64>,
    /// When the last new block of the files under test was reached, in
    /// seconds from the start.
    pub seconds_to_last_block: f64,
}

/// One line a worker prints.
#[derive(serde::Serialize, serde::Deserialize, Debug)]
enum Line {
    Progress {
        stats: WorkerStats,
        new_blocks: Vec<u32>,
    },
    Finding {
        message: String,
        files: Vec<PathBuf>,
        elapsed_ms: u64,
    },
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Default, Clone)]
struct WorkerStats {
    execs: u64,
    corpus: usize,
    edges: usize,
}

/// Runs the campaign; `show` gets a status line about ten times a second.
pub fn run(c: &Campaign, mut show: impl FnMut(&str)) -> Result<Summary, String> {
    let spec = Spec {
        variant: c.variant,
        mutants: c.mutants.clone(),
        coverage: true,
    };
    let library = crate::seeded::build(&spec)?;
    let map = crate::coverage::Map::load(&library)?;
    let files: HashSet<String> = crate::seeded::cache()
        .covered_files()?
        .into_iter()
        .collect();
    let mut unit_of: BTreeMap<u32, String> = BTreeMap::new();
    let mut totals: BTreeMap<String, usize> = BTreeMap::new();
    for site in &map.sites {
        if let Some(unit) = site.unit().filter(|u| files.contains(*u)) {
            unit_of.insert(site.offset, unit.to_string());
            *totals.entry(unit.to_string()).or_default() += 1;
        }
    }
    std::fs::create_dir_all(&c.corpus)
        .map_err(|e| format!("cannot create {}: {e}", c.corpus.display()))?;
    let exe = &c.program;
    let started = Instant::now();
    let (tx, rx) = crossbeam_channel::unbounded::<(usize, Option<Line>)>();
    let mut children = Vec::new();
    for n in 0..c.jobs {
        let mut child = Command::new(exe)
            .arg("__fuzz-worker")
            .arg("--library")
            .arg(&library)
            .arg("--seed")
            .arg((c.seed + n as u64).to_string())
            .arg("--seconds")
            .arg(c.seconds.to_string())
            .arg("--corpus")
            .arg(&c.corpus)
            .arg("--worker-cpus")
            .arg(c.cpus.to_string())
            .arg("--worker")
            .arg(n.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start a fuzz worker: {e}"))?;
        let stdout = child.stdout.take().expect("piped");
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(parsed) = serde_json::from_str::<Line>(&line) {
                    let _ = tx.send((n, Some(parsed)));
                }
            }
            let _ = tx.send((n, None));
        });
        children.push(child);
    }
    drop(tx);
    let mut stats: Vec<WorkerStats> = vec![WorkerStats::default(); c.jobs];
    let mut seen: HashSet<u32> = HashSet::new();
    let mut running = c.jobs;
    let mut finding = None;
    let mut reproducer = Vec::new();
    let mut seconds_to_find = None;
    let mut last_show = Instant::now();
    let mut last_block = 0.0;
    while running > 0 {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((_, None)) => running -= 1,
            Ok((
                n,
                Some(Line::Progress {
                    stats: s,
                    new_blocks,
                }),
            )) => {
                stats[n] = s;
                for b in new_blocks {
                    if unit_of.contains_key(&b) && seen.insert(b) {
                        last_block = started.elapsed().as_secs_f64();
                    }
                }
            }
            Ok((
                _,
                Some(Line::Finding {
                    message,
                    files,
                    elapsed_ms,
                }),
            )) => {
                if finding.is_none() {
                    finding = Some(message);
                    reproducer = files;
                    seconds_to_find = Some(elapsed_ms as f64 / 1000.0);
                    for child in &mut children {
                        let _ = child.kill();
                    }
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
        if last_show.elapsed() >= Duration::from_millis(100) {
            last_show = Instant::now();
            show(&status(&stats, &seen, &unit_of, &totals, started.elapsed()));
        }
    }
    // A worker that died by itself (not killed after a finding) crashed.
    for (n, child) in children.iter_mut().enumerate() {
        let status = child.wait().map_err(|e| format!("fuzz worker {n}: {e}"))?;
        if finding.is_none() && !status.success() {
            let current = current_path(&c.corpus, n);
            let input = read_current(&current).unwrap_or_default();
            // Minimised in fresh processes: each try that dies still crashes.
            let minimised = fuzz::minimise_with(&input, 100, |candidate| {
                replay_in_child(exe, &library, candidate, &c.corpus)
                    .is_some_and(|s| s.code().is_none())
            });
            let name = fuzz::input_name(&minimised);
            let path = c.corpus.join(format!("finding-{name}"));
            let _ = std::fs::write(&path, &minimised);
            let decoded = fuzz::decode::<fuzz::hello::Input>(&minimised)
                .map(|i| format!("{i:#?}"))
                .unwrap_or_default();
            let first = format!("fuzz worker {n} died ({status})");
            let rs = c.corpus.join(format!("finding-{name}.rs"));
            let _ = std::fs::write(
                &rs,
                rust_test(
                    &first,
                    &minimised,
                    &decoded,
                    &name,
                    &library,
                    c.seed + n as u64,
                    stats[n].execs,
                ),
            );
            finding = Some(format!(
                "{first} running this input (minimised from {} to {} bytes; it crashes the \
                 process, so the test below dies with it):\n{decoded}",
                input.len(),
                minimised.len()
            ));
            reproducer = vec![path, rs];
            seconds_to_find = Some(started.elapsed().as_secs_f64());
        }
        let _ = std::fs::remove_file(current_path(&c.corpus, n));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let execs: u64 = stats.iter().map(|s| s.execs).sum();
    let mut blocks = BTreeMap::new();
    for (unit, total) in &totals {
        let hit = seen.iter().filter(|b| unit_of.get(b) == Some(unit)).count();
        // Files only the boot runs (the port's mm fix) are not the target.
        if hit > 0 {
            blocks.insert(unit.clone(), (hit, *total));
        }
    }
    Ok(Summary {
        execs,
        execs_per_sec: execs as f64 / elapsed.max(1e-9),
        seconds: elapsed,
        corpus: fuzz::load_corpus(&c.corpus).len(),
        blocks,
        finding,
        reproducer,
        seconds_to_find,
        seconds_to_last_block: last_block,
    })
}

fn status(
    stats: &[WorkerStats],
    seen: &HashSet<u32>,
    unit_of: &BTreeMap<u32, String>,
    totals: &BTreeMap<String, usize>,
    elapsed: Duration,
) -> String {
    let execs: u64 = stats.iter().map(|s| s.execs).sum();
    let corpus: usize = stats.iter().map(|s| s.corpus).max().unwrap_or(0);
    let edges: usize = stats.iter().map(|s| s.edges).max().unwrap_or(0);
    let mut covered = Vec::new();
    for (unit, total) in totals {
        let hit = seen.iter().filter(|b| unit_of.get(b) == Some(unit)).count();
        if hit > 0 {
            covered.push(format!("{unit} {hit}/{total} blocks"));
        }
    }
    format!(
        "#{execs} {:.0}/s  corpus {corpus}  edges {edges}  {}",
        execs as f64 / elapsed.as_secs_f64().max(1e-9),
        covered.join(", ")
    )
}

fn current_path(corpus: &Path, worker: usize) -> PathBuf {
    corpus.join(format!(".worker-{worker}.current"))
}

fn read_current(path: &Path) -> Option<Vec<u8>> {
    let data = std::fs::read(path).ok()?;
    let len = u32::from_le_bytes(data.get(..4)?.try_into().ok()?) as usize;
    data.get(4..4 + len).map(|d| d.to_vec())
}

/// A page shared with the parent holding the input being run.
struct Current {
    map: *mut u8,
    len: usize,
}

impl Current {
    fn new(path: &Path, max: usize) -> Result<Current, String> {
        let len = (4 + max).next_multiple_of(4096);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        file.set_len(len as u64)
            .map_err(|e| format!("cannot size {}: {e}", path.display()))?;
        use std::os::fd::AsRawFd as _;
        // SAFETY: a shared mapping of our own file, `len` bytes long.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(format!("cannot map {}", path.display()));
        }
        Ok(Current {
            map: map.cast(),
            len,
        })
    }

    fn set(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.len - 4);
        // SAFETY: the mapping is `len` bytes, ours alone in this process;
        // we write 4 + n <= len bytes.
        unsafe {
            std::ptr::copy_nonoverlapping((n as u32).to_le_bytes().as_ptr(), self.map, 4);
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.map.add(4), n);
        }
    }
}

impl Drop for Current {
    fn drop(&mut self) {
        // SAFETY: our mapping, unmapped once.
        unsafe { libc::munmap(self.map.cast(), self.len) };
    }
}

/// A worker's arguments (`__fuzz-worker`).
#[derive(Clone, Debug)]
pub struct Worker {
    /// The kernel library.
    pub library: PathBuf,
    /// Its seed.
    pub seed: u64,
    /// How long.
    pub seconds: u64,
    /// The shared corpus directory.
    pub corpus: PathBuf,
    /// CPUs of its kernel.
    pub cpus: u32,
    /// Its number.
    pub worker: usize,
}

/// Runs one worker: prints [`Line`]s on stdout; exits 1 on a finding.
pub fn worker(w: &Worker) -> Result<bool, String> {
    let options = BootOptions {
        cpus: w.cpus,
        ..BootOptions::default()
    };
    let boot = || Kernel::boot_library(&w.library, options.clone()).map_err(|e| e.to_string());
    let kernel = boot()?;
    let fuzz_options = Options {
        seed: w.seed,
        duration: Some(Duration::from_secs(w.seconds)),
        seeds: fuzz::load_corpus(&w.corpus),
        corpus: Some(w.corpus.clone()),
        ..Options::default()
    };
    let mut current = Current::new(&current_path(&w.corpus, w.worker), fuzz_options.max_len)?;
    // Blocks the boot ran (boot code of a patched file) are not news.
    let mut sent: HashSet<u32> = lkl_sim::coverage::blocks().into_iter().collect();
    let mut out = std::io::stdout().lock();
    let outcome = fuzz::run(
        &kernel,
        &fuzz_options,
        &mut Hello::new(),
        &boot,
        |event| match event {
            Event::Exec(bytes) => current.set(bytes),
            Event::Progress(stats) => {
                let new_blocks: Vec<u32> = lkl_sim::coverage::blocks()
                    .into_iter()
                    .filter(|b| sent.insert(*b))
                    .collect();
                let line = Line::Progress {
                    stats: worker_stats(stats),
                    new_blocks,
                };
                let _ = writeln!(out, "{}", serde_json::to_string(&line).unwrap_or_default());
            }
        },
    );
    let Some(f) = outcome.finding else {
        return Ok(false);
    };
    let name = fuzz::input_name(&f.minimised);
    let bin = w.corpus.join(format!("finding-{name}"));
    let rs = w.corpus.join(format!("finding-{name}.rs"));
    std::fs::write(&bin, &f.minimised).map_err(|e| format!("{}: {e}", bin.display()))?;
    let first = f.message.lines().next().unwrap_or_default();
    std::fs::write(
        &rs,
        rust_test(
            first,
            &f.minimised,
            &f.decoded,
            &name,
            &w.library,
            w.seed,
            f.execs,
        ),
    )
    .map_err(|e| format!("{}: {e}", rs.display()))?;
    let line = Line::Finding {
        message: format!(
            "{}\n\nthe input (minimised from {} to {} bytes):\n{}",
            f.message,
            f.input.len(),
            f.minimised.len(),
            f.decoded
        ),
        files: vec![bin, rs],
        // Found then; minimising it took the rest.
        elapsed_ms: f.elapsed.as_millis() as u64,
    };
    let _ = writeln!(out, "{}", serde_json::to_string(&line).unwrap_or_default());
    // The kernel may be wedged by what it found: do not halt it.
    std::mem::forget(kernel);
    Ok(true)
}

fn worker_stats(s: &Stats) -> WorkerStats {
    WorkerStats {
        execs: s.execs,
        corpus: s.corpus,
        edges: s.edges,
    }
}

/// A ready-to-paste test that replays the finding's minimised input.
fn rust_test(
    first: &str,
    input: &[u8],
    decoded: &str,
    name: &str,
    library: &Path,
    seed: u64,
    execs: u64,
) -> String {
    let bytes: Vec<String> = input.iter().map(|b| format!("{b:#04x}")).collect();
    let decoded: String = decoded.lines().map(|l| format!("    // {l}\n")).collect();
    format!(
        "/// Found by `lkl-harness fuzz` (seed {seed}, after {execs} calls):\n\
         /// {first}\n\
         ///\n\
         /// It fails on the kernel it was found on; to run it there:\n\
         /// `LKL_LIBRARY={library} cargo test fuzz_finding_{name}`.\n\
         #[test]\n\
         fn fuzz_finding_{name}() {{\n\
         \x20   let kernel = lkl_harness::Kernel::boot(lkl_harness::BootOptions::default())\n\
         \x20       .expect(\"the kernel boots\");\n\
         {decoded}\
         \x20   let input: &[u8] = &[{bytes}];\n\
         \x20   if let Err(finding) = lkl_harness::fuzz::hello::replay(&kernel, input) {{\n\
         \x20       panic!(\"{{finding}}\");\n\
         \x20   }}\n\
         \x20   kernel.finish().expect(\"no kernel report\");\n\
         }}\n",
        library = library.display(),
        bytes = bytes.join(", "),
    )
}

/// Replays `input` in a fresh process (`__fuzz-replay`): its exit
/// status (`None` if it could not start).
pub fn replay_in_child(
    program: &Path,
    library: &Path,
    input: &[u8],
    scratch: &Path,
) -> Option<std::process::ExitStatus> {
    let path = scratch.join(format!(".replay-{}", std::process::id()));
    std::fs::write(&path, input).ok()?;
    let status = Command::new(program)
        .arg("__fuzz-replay")
        .arg("--library")
        .arg(library)
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok();
    let _ = std::fs::remove_file(&path);
    status
}

/// `__fuzz-replay`: runs `input` once on a fresh kernel from `library`;
/// `Err` is a finding.
pub fn replay_file(library: &Path, input: &Path) -> Result<(), String> {
    let bytes = std::fs::read(input).map_err(|e| format!("{}: {e}", input.display()))?;
    let kernel =
        Kernel::boot_library(library, BootOptions::default()).map_err(|e| e.to_string())?;
    let result = fuzz::hello::replay(&kernel, &bytes);
    if result.is_err() {
        std::mem::forget(kernel);
    }
    result
}
