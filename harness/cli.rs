//! The command line: `cargo run --release [-- OPTIONS] [COMMAND]`.

use std::io::Write as _;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use lkl_harness::kbuild::Variant;
use lkl_harness::stress::{self, Loudness};
use lkl_harness::{log, BootOptions, Kernel, Record, StressOptions};
use serde::Serialize;

use crate::bench::{self, BenchArgs};

/// Lines of the kernel log shown after a run (all of them with --log).
const TAIL_LINES: usize = 10;

const ABOUT: &str = "Boot the real Linux 6.12 kernel as a library inside this process and \
                     stress its hello() system call from many threads.";

const LONG_ABOUT: &str = "\
Boot the real Linux 6.12 kernel as a library inside this process and stress its \
hello() system call from many threads.

With no command, boots the kernel linked into this binary and runs the mixed hello \
stress: --threads host threads each make --calls calls; call c of thread t greets \
\"t{t}-c{c}\", every 4th call with HELLO_FLAG_LOUD. Then it checks the kernel log: \
every greeting exactly once and intact, every loud call's \"HELLO, ...!!!\" line, from \
the task of the thread that made the call, nothing else logged, no error. It prints a \
summary and the last lines of the kernel log, and exits non-zero if the check failed \
or the kernel logged a warning.

Progress goes to stderr, results to stdout.";

const EXAMPLES: &str = "\
Examples:
  cargo run --release                                 8 threads × 20,000 calls, checked
  cargo run --release -- --threads 64 --calls 1000    more threads, fewer calls each
  cargo run --release -- --name world --loud --calls 3 --threads 1 --log
                                                      three loud greetings, whole log
  cargo run --release -- --json | jq .summary.counts.lines_lost
  LKL_KERNEL=race cargo run --release -- --threads 4 --calls 1000 --rounds 20
                                                      stress under KCSAN until a run fails
  cargo run --release -- boot --cmdline lkl_test_warn=1
                                                      the boot log, with a WARNING
  cargo run --release -- bench                        the figures of README.md
  cargo run --release -- bench --build                ... and kernel build times";

/// The command line.
#[derive(Debug, Parser)]
#[command(name = "lkl-harness", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    kernel: KernelArgs,
    #[command(flatten)]
    stress: StressArgs,
}

/// How to boot the kernel; for every command.
#[derive(Debug, Args)]
pub struct KernelArgs {
    /// Memory for the kernel, in MiB (the kernel's mem=).
    #[arg(long, value_name = "MIB", default_value_t = 64, global = true)]
    pub mem: u32,
    /// CPUs: how many host threads run kernel code at the same moment
    /// (the kernel's nr_cpus=). 1 is a uniprocessor. Default: 2 (4 for
    /// torture).
    #[arg(long, value_name = "N", global = true)]
    pub cpus: Option<u32>,
    /// Extra kernel command line, e.g. "lkl_test_warn=1" or "loglevel=4".
    #[arg(long, value_name = "ARGS", default_value = "", global = true)]
    pub cmdline: String,
}

impl KernelArgs {
    /// The boot options these arguments ask for.
    pub fn boot_options(&self) -> BootOptions {
        BootOptions {
            mem_mib: self.mem,
            cpus: self.cpus.unwrap_or_else(lkl_harness::kernel::default_cpus),
            cmdline: self.cmdline.clone(),
            ..BootOptions::default()
        }
    }
}

/// The stress run (no command).
#[derive(Debug, Args)]
struct StressArgs {
    /// Host threads calling hello() at once; up to --cpus of them run
    /// kernel code in parallel.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=4096))]
    threads: u32,
    /// Calls per thread.
    #[arg(long, default_value_t = 20_000)]
    calls: usize,
    /// Greet this name in every call instead of "t{thread}-c{call}"
    /// (greetings are then counted, not told apart). Names of 64 bytes or
    /// more are truncated to 63 by the kernel.
    #[arg(long)]
    name: Option<String>,
    /// Make every call loud (HELLO_FLAG_LOUD: a second, upper-case line).
    #[arg(long, conflicts_with = "loud_every")]
    loud: bool,
    /// Make every N-th call of each thread loud; 0 for none.
    #[arg(long, value_name = "N", default_value_t = 4)]
    loud_every: u32,
    /// Repeat the run up to N times, stopping at the first that fails: a
    /// race shows only when the CPUs interleave just so, and KCSAN (the
    /// race kernel) watches one access in thousands. The log is dropped
    /// between passing runs.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Print the whole kernel log (like dmesg) instead of its last lines.
    #[arg(long, global = true)]
    log: bool,
    /// Print a machine-readable JSON report on stdout instead of tables.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Boot the kernel and print its boot log.
    Boot,
    /// Measure boot time, memory per instance, system call cost and hello
    /// throughput (and with --build, kernel build times). Prints figures,
    /// each with the command that measured it; checks nothing.
    Bench(BenchArgs),
    /// Run the kernel's own torture tests of its locks (locktorture:
    /// spin_lock, mutex_lock, rw_lock) and of RCU (rcutorture) on this
    /// architecture's CPUs, one boot of the torture kernel (built on first
    /// use) each. Exits 1 unless every run ends in SUCCESS with no error
    /// counted and nothing reported.
    Torture(TortureArgs),
    /// Run KUnit suites in a private KUnit kernel (KUnit and every suite
    /// this configuration builds, hello's among them; built on first use)
    /// and print their results as kunit.py does. Exits 1 unless every
    /// matching case passed or was skipped.
    Kunit(KunitArgs),
    /// Compile kselftest programs (a .c file, or a selftest directory's
    /// programs with its helper sources) against this kernel's UAPI
    /// headers and run each against fresh kernels: its syscall() and libc
    /// file, time and identity calls enter the library kernel. Prints each
    /// program's output (TAP), its kernels' reports and a verdict; exits 1
    /// unless every program passed (a skip is not a pass).
    Selftest(SelftestArgs),
    #[command(name = "__selftest-exec", hide = true)]
    SelftestExec(SelftestExecArgs),
    /// Mutation testing: for each seeded bug (a `*.patch` of the kernel
    /// source in lkl/mutants/, or --dir), build the kernel with it and run
    /// the tests against it, on the default and the debug kernel (KASAN,
    /// UBSAN, kmemleak). Prints which test caught each mutant and how;
    /// exits 1 if any mutant survives or does not build.
    Mutants(MutantsArgs),
    /// Coverage of the kernel code under test: builds the kernel with the
    /// files the patches of lkl/patches/ change instrumented (gcc
    /// -fsanitize-coverage=trace-pc), runs `cargo test [ARGS]` against it,
    /// and prints lines and basic blocks run per file, and every line of
    /// the patches never reached. Writes target/coverage/lcov.info and,
    /// with genhtml, target/coverage/html/. Exits 1 if a test failed.
    Coverage(CoverageArgs),
    /// Coverage-guided fuzzing of hello(2) on the coverage kernel: workers
    /// in child processes (so a crash is a finding too), each with its own
    /// kernel and seed, sharing the corpus directory. Every call is
    /// checked against hello's contract (errno and log) and for kernel
    /// reports (WARN, BUG, KASAN, UBSAN, ...). A finding is minimised and
    /// saved as an input file and a ready-to-paste Rust test; exits 1.
    Fuzz(FuzzArgs),
    /// A git work tree of the kernel source with lkl/patches/ as commits, to
    /// develop a system call in; --export writes the commits back.
    ///
    /// Makes DIR a git work tree of the Linux 6.12 source this project
    /// builds (Debian's linux-source-6.12, as the kernel cache unpacked it;
    /// fetched if need be), tagged lkl-base, with every patch of
    /// lkl/patches/ applied on top as a commit of its own (git am). Edit
    /// and commit there, test it as it is with `LINUX_SRC=DIR cargo test`,
    /// and write its commits back as lkl/patches/ with --export (git
    /// format-patch lkl-base..HEAD; a patch whose text did not change keeps
    /// its file untouched, so make rebuilds only what changed). README.md,
    /// "Testing your own system call", has the whole recipe.
    #[command(after_help = WORKTREE_EXAMPLES)]
    Worktree(WorktreeArgs),
    #[command(name = "__fuzz-worker", hide = true)]
    FuzzWorker(FuzzWorkerArgs),
    #[command(name = "__fuzz-replay", hide = true)]
    FuzzReplay(FuzzReplayArgs),
    /// Boot, make one getpid(), print nanoseconds since main() started.
    /// Used by `bench` to time boots in fresh processes.
    #[command(name = "__boot-once", hide = true)]
    BootOnce,
}

const WORKTREE_EXAMPLES: &str = "\
Examples:
  cargo run -- worktree ~/linux-yourcall            make the work tree (about a minute)
  cd ~/linux-yourcall; git add -A; git commit -s    ... edit, then commit
  LINUX_SRC=~/linux-yourcall cargo test --test yourcall
                                                    test the tree as it is
  cargo run -- worktree ~/linux-yourcall --export   its commits become lkl/patches/*.patch
  cargo test                                        the whole suite on the new series";

/// The work tree command.
#[derive(Debug, Args)]
struct WorktreeArgs {
    /// The work tree: a directory to make (new or empty), or with
    /// --export the work tree to export.
    dir: std::path::PathBuf,
    /// Write the work tree's commits after lkl-base into the series
    /// directory, in place of the series there. Refused while the work
    /// tree has uncommitted changes.
    #[arg(long)]
    export: bool,
    /// With --export: replace the series even if it changed since the work
    /// tree was made (or last exported), which loses that change.
    #[arg(long, requires = "export")]
    force: bool,
    /// The series directory the commits come from and --export writes to.
    #[arg(long, value_name = "DIR", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/lkl/patches"))]
    patches: std::path::PathBuf,
}

/// The torture run.
#[derive(Debug, Args)]
struct TortureArgs {
    /// How long each lock type is tortured, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// The tests to run, one boot each: locktorture types (spin_lock,
    /// mutex_lock, rw_lock, rwsem_lock, ...) or rcu.
    #[arg(long = "test", value_name = "TEST", default_values_t = lkl_harness::torture::TESTS.map(String::from))]
    tests: Vec<String>,
}

/// The KUnit run.
#[derive(Debug, Args)]
struct KunitArgs {
    /// The suites to run: a glob of suite names, or `suite.case` globs
    /// (kunit.filter_glob).
    #[arg(default_value = "*")]
    glob: String,
    /// List the matching suite.case names instead of running them.
    #[arg(long)]
    list: bool,
}

/// The selftest run.
#[derive(Debug, Args)]
struct SelftestArgs {
    /// A kselftest program's .c file, or a selftest directory
    /// (tools/testing/selftests/NAME).
    path: std::path::PathBuf,
    /// Kill and fail a program that runs longer than this, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    timeout: u64,
    /// A patch applied on top of lkl/patches/ (a seeded bug): a path, or
    /// the name of one in lkl/mutants/.
    #[arg(long, value_name = "PATCH")]
    mutant: Option<String>,
    /// Arguments for each program, after `--` (kselftest_harness: -t TEST,
    /// -f FIXTURE, -l to list).
    #[arg(last = true, value_name = "PROGRAM ARGS")]
    args: Vec<String>,
}

/// One program in a runner process, started by `selftest`.
#[derive(Debug, Args)]
struct SelftestExecArgs {
    #[arg(long)]
    object: std::path::PathBuf,
    #[arg(long)]
    kernel_log: std::path::PathBuf,
    #[arg(long)]
    library: Option<std::path::PathBuf>,
    #[arg(last = true)]
    argv: Vec<String>,
}

/// The coverage run.
#[derive(Debug, Args)]
struct CoverageArgs {
    /// Arguments for `cargo test`, after `--`: test targets, a filter.
    #[arg(last = true, value_name = "CARGO TEST ARGS")]
    args: Vec<String>,
}

/// The fuzz run.
#[derive(Debug, Args)]
struct FuzzArgs {
    /// How long to fuzz, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// The random seed of the first worker (worker n: seed + n).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The corpus directory: read at start, new inputs and findings
    /// written there (default target/fuzz/corpus).
    #[arg(long, value_name = "DIR")]
    corpus: Option<std::path::PathBuf>,
    /// Workers (processes).
    #[arg(short = 'j', long = "jobs", default_value_t = 1)]
    jobs: usize,
    /// The kernel's configuration: default, or debug (KASAN, UBSAN,
    /// kmemleak, lockdep; a coverage build of its own, built on first use).
    #[arg(long, value_name = "KERNEL", default_value = "default")]
    kernel: String,
    /// A patch applied on top of lkl/patches/ (a seeded bug): a path, or
    /// the name of one in lkl/fuzz-mutants/ or lkl/mutants/.
    #[arg(long, value_name = "PATCH")]
    mutant: Option<String>,
}

/// A fuzz worker, started by `fuzz`.
#[derive(Debug, Args)]
struct FuzzWorkerArgs {
    #[arg(long)]
    library: std::path::PathBuf,
    #[arg(long)]
    seed: u64,
    #[arg(long)]
    seconds: u64,
    #[arg(long)]
    corpus: std::path::PathBuf,
    #[arg(long)]
    worker_cpus: u32,
    #[arg(long)]
    worker: usize,
}

/// One input replayed, started by `fuzz` to minimise a crash.
#[derive(Debug, Args)]
struct FuzzReplayArgs {
    #[arg(long)]
    library: std::path::PathBuf,
    input: std::path::PathBuf,
}

/// The mutants run.
#[derive(Debug, Args)]
struct MutantsArgs {
    /// Only the mutants whose names contain this.
    filter: Option<String>,
    /// The directory of mutants: `<name>.patch` files, each a git-format
    /// patch on top of lkl/patches/ (your own bugs for your own syscall).
    #[arg(long, value_name = "DIR")]
    dir: Option<std::path::PathBuf>,
    /// The kernels to build each mutant for: default, debug, race.
    #[arg(long = "kernel", value_name = "KERNEL", value_delimiter = ',', default_values_t = lkl_harness::mutants::DEFAULT_KERNELS.map(|v| v.name().to_string()))]
    kernels: Vec<String>,
    /// The test targets to run (tests/<TEST>.rs).
    #[arg(long = "test", value_name = "TEST", default_values_t = lkl_harness::mutants::DEFAULT_TESTS.map(String::from))]
    tests: Vec<String>,
    /// Run only the tests whose names contain this (cargo test's filter).
    #[arg(long, value_name = "NAME")]
    test_filter: Option<String>,
}

/// Runs the command line; the result becomes the exit status.
pub fn run(started: Instant) -> Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        None => stress_main(&cli),
        Some(Command::Boot) => boot(&cli),
        Some(Command::Bench(args)) => bench::run(args, &cli.kernel, cli.stress.json),
        Some(Command::Torture(args)) => torture(args, &cli),
        Some(Command::Kunit(args)) => kunit(args, &cli),
        Some(Command::Selftest(args)) => selftest(args, &cli),
        Some(Command::SelftestExec(args)) => {
            lkl_harness::selftest::program::exec(lkl_harness::selftest::program::ExecConfig {
                object: args.object.clone(),
                kernel_log: args.kernel_log.clone(),
                library: args.library.clone(),
                boot: cli.kernel.boot_options(),
                argv: args.argv.clone(),
            })
        }
        Some(Command::Mutants(args)) => mutants(args),
        Some(Command::Coverage(args)) => coverage(args),
        Some(Command::Fuzz(args)) => fuzz(args, &cli),
        Some(Command::Worktree(args)) => worktree(args, cli.stress.json),
        Some(Command::FuzzWorker(args)) => fuzz_worker(args),
        Some(Command::FuzzReplay(args)) => {
            lkl_harness::fuzz::campaign::replay_file(&args.library, &args.input)
                .map_err(anyhow::Error::msg)
        }
        Some(Command::BootOnce) => boot_once(&cli.kernel, started),
    }
}

fn boot_linked(kernel: &KernelArgs) -> Result<Kernel> {
    Kernel::boot_linked(kernel.boot_options()).context("booting the linked kernel")
}

/// A log record, for --json.
#[derive(Serialize)]
struct JsonRecord<'a> {
    level: u8,
    seq: u64,
    timestamp_us: u64,
    /// The kernel task id, for records logged by a task.
    tid: Option<u32>,
    text: &'a str,
}

fn json_records(records: &[Record]) -> Vec<JsonRecord<'_>> {
    records
        .iter()
        .map(|r| JsonRecord {
            level: r.level,
            seq: r.seq,
            timestamp_us: r.timestamp_us,
            tid: match r.caller {
                Some(lkl_harness::Caller::Task(tid)) => Some(tid),
                _ => None,
            },
            text: &r.text,
        })
        .collect()
}

fn stress_main(cli: &Cli) -> Result<()> {
    let args = &cli.stress;
    let options = StressOptions {
        threads: args.threads as usize,
        calls: args.calls,
        loud: match (args.loud, args.loud_every) {
            (true, _) => Loudness::All,
            (false, 0) => Loudness::Never,
            (false, n) => Loudness::Every(n),
        },
        name: args.name.clone(),
    };
    if options.name.as_deref().is_some_and(|n| n.contains('\0')) {
        bail!("--name cannot contain a NUL byte: the kernel reads a C string");
    }
    let kernel = boot_linked(&cli.kernel)?;

    let bar = ProgressBar::new(options.total_calls() * u64::from(args.rounds));
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{bar:40}] {human_pos}/{human_len} calls, {per_sec}, eta {eta}",
        )
        .expect("a valid progress template")
        .progress_chars("=> "),
    );
    let repeated = stress::repeat(&kernel, &options, args.rounds, &|n| bar.inc(n));
    bar.finish_and_clear();
    let summary = repeated.last;

    // On the debug kernel, a leak the calls made is a report like any
    // other (a kernel without kmemleak is not scanned).
    kernel
        .scan_for_leaks()
        .context("scanning the kernel for leaks (kmemleak)")?;
    let splats = kernel.check_log().err();
    let records = kernel.log();
    let verdict = summary.verify();

    let mut out = std::io::stdout().lock();
    if args.json {
        #[derive(Serialize)]
        struct Report<'a> {
            /// Runs made (the last one is summarised), out of --rounds.
            rounds: u32,
            max_rounds: u32,
            summary: &'a stress::Summary,
            /// Problems found by the check; empty when it passed.
            problems: Vec<String>,
            /// Kernel warning lines (WARNING:, BUG:, ...).
            splats: Vec<String>,
            /// The whole log with --log, otherwise its last lines.
            log: Vec<JsonRecord<'a>>,
        }
        let shown = if args.log {
            &records[..]
        } else {
            &records[records.len().saturating_sub(TAIL_LINES)..]
        };
        let report = Report {
            rounds: repeated.rounds,
            max_rounds: repeated.max_rounds,
            summary: &summary,
            problems: verdict
                .as_ref()
                .err()
                .map(|e| e.problems.clone())
                .unwrap_or_default(),
            splats: match &splats {
                Some(lkl_harness::Error::Splat { lines, .. }) => lines.clone(),
                _ => Vec::new(),
            },
            log: json_records(shown),
        };
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        if repeated.max_rounds > 1 {
            let outcome = if verdict.is_ok() { "passed" } else { "failed" };
            let earlier = if repeated.rounds > 1 {
                ", the runs before it passed"
            } else {
                ""
            };
            writeln!(
                out,
                "Run {} of up to {} {outcome}{earlier}. Its summary:",
                repeated.rounds, repeated.max_rounds
            )?;
        }
        writeln!(out, "{}", summary.table())?;
        if args.log {
            writeln!(out, "Kernel log:\n{}", kernel.dmesg_located())?;
        } else {
            writeln!(
                out,
                "Last {TAIL_LINES} lines of the kernel log (all of it with --log):\n{}",
                log::tail(&records, TAIL_LINES)
            )?;
        }
    }
    drop(out);
    kernel.halt()?;
    verdict?;
    if let Some(lkl_harness::Error::Splat { lines, .. }) = splats {
        bail!(
            "the kernel logged {} warning line(s), e.g. {:?}; rerun with --log to see the context",
            lines.len(),
            &lines[..lines.len().min(3)]
        );
    }
    Ok(())
}

fn boot(cli: &Cli) -> Result<()> {
    let kernel = boot_linked(&cli.kernel)?;
    let records = kernel.log();
    let mut out = std::io::stdout().lock();
    if cli.stress.json {
        #[derive(Serialize)]
        struct Report<'a> {
            boot_time_us: u128,
            log: Vec<JsonRecord<'a>>,
        }
        let report = Report {
            boot_time_us: kernel.boot_time().as_micros(),
            log: json_records(&records),
        };
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", kernel.dmesg_located())?;
        eprintln!("booted in {:.1} ms", kernel.boot_time().as_secs_f64() * 1e3);
    }
    drop(out);
    let check = kernel.check_log();
    kernel.halt()?;
    if let Err(lkl_harness::Error::Splat { lines, .. }) = check {
        bail!("the kernel logged warning line(s) while booting: {lines:?}");
    }
    Ok(())
}

fn boot_once(kernel: &KernelArgs, started: Instant) -> Result<()> {
    let kernel = boot_linked(kernel)?;
    kernel.getpid().context("getpid in the fresh kernel")?;
    println!("{}", started.elapsed().as_nanos());
    kernel.halt()?;
    Ok(())
}

fn mutants(args: &MutantsArgs) -> Result<()> {
    use lkl_harness::kbuild::Variant;
    use lkl_harness::mutants;

    let kernels = args
        .kernels
        .iter()
        .map(|k| Variant::from_name(k).map_err(anyhow::Error::msg))
        .collect::<Result<Vec<_>>>()?;
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| manifest.join("lkl/mutants"));
    let found = mutants::find(&dir, args.filter.as_deref()).map_err(anyhow::Error::msg)?;
    for test in &args.tests {
        if !manifest.join(format!("tests/{test}.rs")).is_file() {
            bail!("no test target {test}: --test takes the name of a file in tests/, without .rs");
        }
    }
    let started = Instant::now();
    let outcomes = mutants::run_all(
        &found,
        &kernels,
        &args.tests,
        args.test_filter.as_deref(),
        |outcome| {
            eprintln!(
                "{}",
                mutants::table(std::slice::from_ref(outcome))
                    .lines()
                    .nth(1)
                    .unwrap_or_default()
            )
        },
    );
    let mut out = std::io::stdout().lock();
    write!(out, "{}", mutants::table(&outcomes))?;
    if outcomes.iter().any(|o| o.log.is_some()) {
        writeln!(
            out,
            "each run's whole test output: {}/MUTANT.KERNEL.log",
            mutants::log_dir(manifest).display()
        )?;
    }
    let caught = outcomes.iter().filter(|o| o.verdict.caught()).count();
    let names: std::collections::BTreeSet<&str> =
        outcomes.iter().map(|o| o.mutant.as_str()).collect();
    let missed: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| {
            !outcomes
                .iter()
                .any(|o| o.mutant == *n && o.verdict.caught())
        })
        .collect();
    writeln!(
        out,
        "{caught} of {} runs caught; {} of {} mutants caught by at least one kernel; {:.0} s",
        outcomes.len(),
        names.len() - missed.len(),
        names.len(),
        started.elapsed().as_secs_f64()
    )?;
    let broken: Vec<&str> = outcomes
        .iter()
        .filter(|o| {
            matches!(
                o.verdict,
                mutants::Verdict::BuildFailed(_) | mutants::Verdict::NotRun(_)
            )
        })
        .map(|o| o.mutant.as_str())
        .collect();
    if !broken.is_empty() {
        bail!(
            "mutants that did not build or whose tests did not run: {}",
            broken.join(", ")
        );
    }
    if !missed.is_empty() {
        bail!("mutants that survived every kernel: {}", missed.join(", "));
    }
    Ok(())
}

fn kunit(args: &KunitArgs, cli: &Cli) -> Result<()> {
    use lkl_harness::kunit;

    let spec = kunit::spec(Vec::new());
    let options = cli.kernel.boot_options();
    options.validate()?;
    let mut out = std::io::stdout().lock();
    if args.list {
        let names = kunit::list_on(&spec, &args.glob)?;
        if cli.stress.json {
            serde_json::to_writer_pretty(&mut out, &names)?;
            writeln!(out)?;
        } else {
            for name in &names {
                writeln!(out, "{name}")?;
            }
        }
        return Ok(());
    }
    eprintln!("kunit: running the suites matching {:?} ...", args.glob);
    let report = kunit::run_on(&spec, &args.glob, options)?;
    if cli.stress.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", report.render())?;
        if cli.stress.log {
            writeln!(out, "Kernel log:\n{}", report.log)?;
        }
    }
    drop(out);
    if !report.passed() {
        bail!("KUnit: not every case of {:?} passed: see above", args.glob);
    }
    Ok(())
}

fn selftest(args: &SelftestArgs, cli: &Cli) -> Result<()> {
    use lkl_harness::selftest::{self, SelftestOptions};

    let mut options = SelftestOptions::new(selftest::runner()?);
    options.boot = cli.kernel.boot_options();
    options.boot.validate()?;
    options.timeout = std::time::Duration::from_secs(args.timeout);
    options.args = args.args.clone();
    if let Some(mutant) = &args.mutant {
        let patch = [
            std::path::PathBuf::from(mutant),
            lkl_harness::seeded::mutant_patch(mutant),
        ]
        .into_iter()
        .find(|p| p.is_file())
        .with_context(|| {
            format!("--mutant {mutant}: no such patch (a path, or a name in lkl/mutants/)")
        })?;
        let spec = lkl_harness::kbuild::Spec {
            mutants: vec![patch],
            ..lkl_harness::kbuild::Spec::of(Variant::from_env().map_err(anyhow::Error::msg)?)
        };
        eprintln!("selftest: building the kernel {} ...", spec.name());
        options.library = Some(lkl_harness::seeded::build(&spec).map_err(anyhow::Error::msg)?);
    }
    let programs = selftest::programs_in(&args.path)?;
    let mut reports = Vec::new();
    let mut out = std::io::stdout().lock();
    for (name, sources) in programs {
        let program = selftest::compile(&name, &sources)?;
        let report = selftest::run_program(&program, &options)?;
        if !cli.stress.json {
            write!(out, "{}", report.render())?;
            if cli.stress.log {
                for kernel in &report.kernels {
                    writeln!(
                        out,
                        "Kernel log of process {}:\n{}",
                        kernel.pid, kernel.dmesg
                    )?;
                }
            }
            out.flush()?;
        }
        reports.push(report);
    }
    if cli.stress.json {
        serde_json::to_writer_pretty(&mut out, &reports)?;
        writeln!(out)?;
    }
    drop(out);
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.program.name.as_str())
        .collect();
    if !failed.is_empty() {
        bail!("selftest: {} did not pass: see above", failed.join(", "));
    }
    Ok(())
}

fn torture(args: &TortureArgs, cli: &Cli) -> Result<()> {
    use lkl_harness::torture::{self, TortureOptions};

    let options = TortureOptions {
        seconds: args.seconds,
        cpus: cli.kernel.cpus.unwrap_or(4),
        tests: args.tests.clone(),
    };
    lkl_harness::kernel::BootOptions {
        cpus: options.cpus,
        ..cli.kernel.boot_options()
    }
    .validate()?;
    let runs = torture::run(&options, &|test| {
        eprintln!(
            "torture: {test} on {} CPUs for {} s ...",
            options.cpus, options.seconds
        )
    })?;
    let mut out = std::io::stdout().lock();
    if cli.stress.json {
        serde_json::to_writer_pretty(&mut out, &runs)?;
        writeln!(out)?;
    } else {
        for run in &runs {
            let unit = if run.test == "rcu" {
                "grace periods"
            } else {
                "lock acquisitions"
            };
            writeln!(
                out,
                "{:<12} {} CPUs {:>6.1} s  {:>10} {unit}  {} errors  {}",
                run.test,
                run.cpus,
                run.duration.as_secs_f64(),
                run.operations,
                run.errors,
                if run.passed() { "PASS" } else { "FAIL" }
            )?;
            if let Some(line) = &run.verdict {
                writeln!(out, "    {line}")?;
            }
            for splat in &run.splats {
                writeln!(out, "    reported: {splat}")?;
            }
            if cli.stress.log || !run.passed() {
                writeln!(out, "Kernel log:\n{}", run.log)?;
            }
        }
    }
    drop(out);
    let failed: Vec<&str> = runs
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.test.as_str())
        .collect();
    if !failed.is_empty() {
        bail!(
            "torture failed for {}: see the verdicts above",
            failed.join(", ")
        );
    }
    Ok(())
}

fn coverage(args: &CoverageArgs) -> Result<()> {
    let variant = Variant::Default;
    let outcome = lkl_harness::coverage::run(variant, &args.args).map_err(anyhow::Error::msg)?;
    let tree = lkl_harness::seeded::cache().source_dir();
    println!(
        "\ncoverage of the code under test ({} kernel, gcov counters of {} kernel{}):",
        variant.name(),
        outcome.kernels,
        if outcome.kernels == 1 { "" } else { "s" }
    );
    print!("{}", outcome.report.render(&tree));
    println!("\nlcov: {}", outcome.lcov.display());
    if let Some(html) = &outcome.html {
        println!("html: {}", html.display());
    }
    if !outcome.tests_passed {
        bail!("some tests failed (above); the coverage is that of the run as it went");
    }
    Ok(())
}

fn fuzz(args: &FuzzArgs, cli: &Cli) -> Result<()> {
    use lkl_harness::fuzz::campaign::{self, Campaign};
    let variant = Variant::from_name(&args.kernel).map_err(anyhow::Error::msg)?;
    if ![Variant::Default, Variant::Debug].contains(&variant) {
        bail!("--kernel {}: fuzz runs on default or debug", args.kernel);
    }
    if args.jobs == 0 || args.jobs > 64 {
        bail!("-j {}: between 1 and 64 workers", args.jobs);
    }
    let mutants = match &args.mutant {
        None => Vec::new(),
        Some(m) => {
            let path = std::path::PathBuf::from(m);
            let found = [
                path.clone(),
                lkl_harness::seeded::fuzz_mutant_patch(m),
                lkl_harness::seeded::mutant_patch(m),
            ]
            .into_iter()
            .find(|p| p.is_file());
            match found {
                Some(p) => vec![p],
                None => bail!(
                    "--mutant {m}: no such patch (a path, or a name in lkl/fuzz-mutants/ or lkl/mutants/)"
                ),
            }
        }
    };
    let cpus = cli
        .kernel
        .cpus
        .unwrap_or_else(lkl_harness::kernel::default_cpus);
    BootOptions {
        cpus,
        ..BootOptions::default()
    }
    .validate()?;
    let corpus = args.corpus.clone().unwrap_or_else(|| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz/corpus")
    });
    let c = Campaign {
        program: std::env::current_exe().context("finding this program")?,
        seconds: args.seconds,
        seed: args.seed,
        cpus,
        corpus,
        jobs: args.jobs,
        variant,
        mutants,
    };
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed} {msg}").expect("a valid template"),
    );
    let summary = campaign::run(&c, |status| bar.set_message(status.to_string()))
        .map_err(anyhow::Error::msg)?;
    bar.finish_and_clear();
    if cli.stress.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "{} calls in {:.1} s ({:.0}/s, {} worker{}), corpus {}",
            summary.execs,
            summary.seconds,
            summary.execs_per_sec,
            c.jobs,
            if c.jobs == 1 { "" } else { "s" },
            summary.corpus
        );
        for (file, (hit, total)) in &summary.blocks {
            println!(
                "{file}: {hit}/{total} blocks reached (the last after {:.2} s)",
                summary.seconds_to_last_block
            );
        }
    }
    if let Some(finding) = &summary.finding {
        eprintln!(
            "\nFINDING after {:.1} s:\n{finding}",
            summary.seconds_to_find.unwrap_or_default()
        );
        for f in &summary.reproducer {
            eprintln!("saved: {}", f.display());
        }
        std::process::exit(1);
    }
    println!("no finding");
    Ok(())
}

fn fuzz_worker(args: &FuzzWorkerArgs) -> Result<()> {
    let w = lkl_harness::fuzz::campaign::Worker {
        library: args.library.clone(),
        seed: args.seed,
        seconds: args.seconds,
        corpus: args.corpus.clone(),
        cpus: args.worker_cpus,
        worker: args.worker,
    };
    let found = lkl_harness::fuzz::campaign::worker(&w).map_err(anyhow::Error::msg)?;
    if found {
        std::process::exit(1);
    }
    Ok(())
}

fn worktree(args: &WorktreeArgs, json: bool) -> Result<()> {
    use lkl_harness::worktree;

    // Shell words, for the commands printed.
    let repo = worktree::sh(std::path::Path::new(env!("CARGO_MANIFEST_DIR")));
    let mut out = std::io::stdout().lock();
    if args.export {
        let exported = worktree::export(&args.dir, &args.patches, args.force)?;
        if json {
            serde_json::to_writer_pretty(&mut out, &exported)?;
            writeln!(out)?;
            return Ok(());
        }
        let dir = std::fs::canonicalize(&args.dir)?;
        writeln!(
            out,
            "exported the commits of {} after {} into {}:",
            dir.display(),
            worktree::BASE_TAG,
            args.patches.display()
        )?;
        for (what, files) in [
            ("kept (unchanged)", &exported.kept),
            ("written", &exported.written),
            ("removed", &exported.removed),
        ] {
            for file in files {
                let name = file.file_name().unwrap_or_default().to_string_lossy();
                writeln!(out, "  {what:<16} {name}")?;
            }
        }
        writeln!(
            out,
            "\nNext: the whole suite on the new series (make rebuilds what the written patches \
             change):\n  cd {repo} && cargo test"
        )?;
        return Ok(());
    }
    // Before fetching or unpacking any source.
    worktree::check_new(&args.dir)?;
    let cache = lkl_harness::kbuild::Cache {
        // The pristine source, whatever LINUX_SRC this binary was built with.
        own_tree: None,
        ..lkl_harness::seeded::cache()
    };
    // It says so if its release is not the one lkl/patches/ are made for.
    let source = cache.kernel_source().map_err(anyhow::Error::msg)?;
    let made = worktree::create(&source, &args.patches, &args.dir, &|message| {
        eprintln!("lkl-harness: {message}")
    })?;
    if json {
        serde_json::to_writer_pretty(&mut out, &made)?;
        writeln!(out)?;
        return Ok(());
    }
    let dir = worktree::sh(&made.dir);
    writeln!(
        out,
        "made {dir} in {:.0} s: Linux {} (tag {}, {}) and {} commits, one per patch of {}\n",
        made.seconds,
        made.release,
        worktree::BASE_TAG,
        &made.base[..12.min(made.base.len())],
        made.patches.len(),
        args.patches.display()
    )?;
    writeln!(
        out,
        "Next:\n\
         1. Edit in {dir}, and commit (README.md, \"Testing your own system call\", lists the \
         files a new system call changes):\n     \
         git -C {dir} add -A && git -C {dir} commit -s\n\
         2. Test the tree as it is (a build directory of its own: the first build is a full \
         one):\n     \
         cd {repo} && LINUX_SRC={dir} cargo test --test yourcall\n\
         3. Write its commits back as the series, then run the whole suite:\n     \
         cd {repo} && cargo run -- worktree {dir} --export && cargo test"
    )?;
    Ok(())
}
