//! `bench`: the figures of README.md. It measures and prints; it checks
//! nothing (tests never assert on timings).

use std::io::Write as _;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use clap::Args;
use lkl_harness::kbuild::{Spec, Variant};
use lkl_harness::stress::{self, fmt_ns, Loudness};
use lkl_harness::{BootOptions, Kernel, StressOptions};
use parking_lot::Mutex;
use serde::Serialize;

use crate::cli::KernelArgs;

/// Options of `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Boots to time, each in a fresh process, and private boots to time.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    boots: u32,
    /// Extra private kernels to boot for the memory-per-instance figure.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    instances: u32,
    /// getpid() calls per round-trip measurement.
    #[arg(long, default_value_t = 1_000_000)]
    getpid_calls: u64,
    /// hello() calls per throughput measurement (split across the threads).
    #[arg(long, default_value_t = 200_000)]
    hello_calls: usize,
    /// Also time kernel builds (cold, one-file change, no change) in a
    /// fresh build directory: the default kernel's, and the debug
    /// kernel's unless `--no-debug`. Takes minutes (the debug kernel's
    /// about ten on two cores).
    #[arg(long)]
    build: bool,
    /// How long to watch an idle kernel's CPU use, in seconds.
    #[arg(long, default_value_t = 10)]
    idle_seconds: u64,
    /// Skip the SMP figures (cpus = 1 beside cpus = 2 and 4).
    #[arg(long)]
    no_smp: bool,
    /// Skip the debug kernel's figures (KASAN, UBSAN, kmemleak, lockdep)
    /// beside the default kernel's; they build the debug kernel first if
    /// need be.
    #[arg(long)]
    no_debug: bool,
    /// Skip the coverage kernel's figures (what gcov and trace-pc cost
    /// on hello()); they build the coverage kernel first if need be.
    #[arg(long)]
    no_coverage: bool,
    /// Skip the selftest figures (compiling and running the seed's
    /// hello selftest with `selftest`).
    #[arg(long)]
    no_selftest: bool,
}

/// One measured figure.
#[derive(Debug, Serialize)]
struct Figure {
    /// What was measured.
    what: String,
    /// The number, formatted.
    value: String,
    /// Its unit.
    unit: &'static str,
    /// How it was measured.
    command: String,
}

/// Collects figures and prints each as soon as it is measured.
struct Report {
    json: bool,
    figures: Vec<Figure>,
}

impl Report {
    fn add(&mut self, what: impl Into<String>, value: String, unit: &'static str, command: String) {
        let figure = Figure {
            what: what.into(),
            value,
            unit,
            command,
        };
        if !self.json {
            println!(
                "{:<50} {:>16} {:<8} {}",
                figure.what, figure.value, figure.unit, figure.command
            );
            let _ = std::io::stdout().flush();
        }
        self.figures.push(figure);
    }
}

/// Runs the benchmarks.
pub fn run(args: &BenchArgs, kernel: &KernelArgs, json: bool) -> Result<()> {
    let mut report = Report {
        json,
        figures: Vec::new(),
    };
    if !json {
        println!("{:<50} {:>16} {:<8} command", "figure", "value", "unit");
    }
    fresh_process_boots(args, kernel, &mut report)?;
    private_boots(args, kernel, &mut report)?;
    busy_host_boots(args, kernel, &mut report)?;
    memory_per_instance(args, kernel, &mut report)?;

    let linked = Kernel::boot_linked(kernel.boot_options()).context("booting the linked kernel")?;
    getpid_round_trip(args, &linked, &mut report);
    let hello_ns = hello_cost(args, &linked, &mut report);
    user_copy_cost(args, hello_ns, &mut report);
    hello_throughput(args, &linked, &mut report);
    linked.halt()?;

    if !args.no_smp {
        smp_figures(args, kernel, &mut report)?;
    }
    if !args.no_debug {
        debug_figures(args, kernel, &mut report)?;
    }
    if !args.no_coverage {
        coverage_figures(args, kernel, &mut report)?;
    }

    if !args.no_selftest {
        selftest_figures(kernel, &mut report)?;
    }

    if args.build {
        build_times(args, &mut report)?;
    }
    if json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &report.figures)?;
        writeln!(out)?;
    }
    Ok(())
}

/// The `q`-quantile (0..=1) of `values`, by nearest rank.
fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(ns: f64) -> String {
    format!("{:.2}", ns / 1e6)
}

fn fresh_process_boots(args: &BenchArgs, kernel: &KernelArgs, report: &mut Report) -> Result<()> {
    let exe = std::env::current_exe().context("finding this executable")?;
    let mut in_process = Vec::new();
    let mut whole = Vec::new();
    for _ in 0..args.boots {
        let started = Instant::now();
        let out = Command::new(&exe)
            .arg("__boot-once")
            .args(["--mem", &kernel.mem.to_string()])
            .args(["--cmdline", &kernel.cmdline])
            .args(["--cpus", &kernel.boot_options().cpus.to_string()])
            .stderr(Stdio::inherit())
            .output()
            .context("running a fresh boot process")?;
        whole.push(started.elapsed().as_nanos() as f64);
        if !out.status.success() {
            bail!("the fresh boot process failed: {}", out.status);
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let ns: f64 = text
            .trim()
            .parse()
            .with_context(|| format!("the fresh boot process printed {text:?}"))?;
        in_process.push(ns);
    }
    let command = format!(
        "{} fresh processes `lkl-harness __boot-once` (main() to getpid() returning)",
        args.boots
    );
    report.add(
        "boot to first syscall, fresh process, median",
        ms(quantile(&in_process, 0.5)),
        "ms",
        command.clone(),
    );
    report.add(
        "boot to first syscall, fresh process, p90",
        ms(quantile(&in_process, 0.9)),
        "ms",
        command,
    );
    report.add(
        "process spawn to exit (boot, getpid, halt), median",
        ms(quantile(&whole, 0.5)),
        "ms",
        format!(
            "{} × fork+exec+wait of `lkl-harness __boot-once`",
            args.boots
        ),
    );
    Ok(())
}

/// The link-map namespaces glibc gives `dlmopen`: a private kernel loads
/// in one of its own while one is free, and as a copy of the library
/// after that.
const NAMESPACES: usize = 15;

/// Times `boots` private boots (`boot`, then a halt not timed) loaded in
/// a link-map namespace of their own, and as many loaded as copies while
/// small kernels hold every namespace: in alternating blocks, so that the
/// machine's noise falls on both alike.
fn namespace_and_copy_boots(
    boots: u32,
    kernel: &KernelArgs,
    boot: impl Fn() -> Result<Kernel, lkl_harness::Error>,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let timed = || -> Result<f64> {
        let started = Instant::now();
        let k = boot()?;
        let elapsed = started.elapsed().as_nanos() as f64;
        k.halt()?;
        Ok(elapsed)
    };
    let (mut namespaced, mut copied) = (Vec::new(), Vec::new());
    while namespaced.len() < boots as usize {
        for _ in 0..BOOT_BLOCK.min(boots - namespaced.len() as u32) {
            namespaced.push(timed()?);
        }
        let holders = (0..NAMESPACES)
            .map(|_| {
                Kernel::boot(BootOptions {
                    mem_mib: lkl_harness::kernel::MIN_MEM_MIB,
                    cpus: 1,
                    ..kernel.boot_options()
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        while copied.len() < namespaced.len() {
            copied.push(timed()?);
        }
        for holder in holders {
            holder.halt()?;
        }
    }
    Ok((namespaced, copied))
}

/// Boots timed in a row, each way, by [`namespace_and_copy_boots`].
const BOOT_BLOCK: u32 = 5;

fn private_boots(args: &BenchArgs, kernel: &KernelArgs, report: &mut Report) -> Result<()> {
    let (namespaced, copied) =
        namespace_and_copy_boots(args.boots, kernel, || Kernel::boot(kernel.boot_options()))?;
    report.add(
        "private instance boot (Kernel::boot), median",
        ms(quantile(&namespaced, 0.5)),
        "ms",
        format!(
            "{} × Kernel::boot() then halt(), one process (each in a dlmopen namespace)",
            args.boots
        ),
    );
    report.add(
        "private instance boot, loaded as a copy, median",
        ms(quantile(&copied, 0.5)),
        "ms",
        format!(
            "the same, in alternating blocks of {BOOT_BLOCK}, while {NAMESPACES} kernels hold every namespace"
        ),
    );
    Ok(())
}

/// Private boots on a busy host (a spinning thread of this process on
/// every host core), the kernel's threads in the short slices of
/// `lkl_sim::sched` and in the host's default ones, alternately.
fn busy_host_boots(args: &BenchArgs, kernel: &KernelArgs, report: &mut Report) -> Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let stop = Arc::new(AtomicBool::new(false));
    let spinners: Vec<_> = (0..cores)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    let timed = |short: bool| -> Result<f64> {
        lkl_sim::sched::set_short_slices(short);
        let started = Instant::now();
        let k = Kernel::boot(kernel.boot_options());
        let elapsed = started.elapsed().as_nanos() as f64;
        k?.halt()?;
        Ok(elapsed)
    };
    let measured = (|| -> Result<(Vec<f64>, Vec<f64>)> {
        let (mut short, mut default) = (Vec::new(), Vec::new());
        for _ in 0..args.boots {
            short.push(timed(true)?);
            default.push(timed(false)?);
        }
        Ok((short, default))
    })();
    lkl_sim::sched::set_short_slices(true);
    stop.store(true, Ordering::Relaxed);
    for spinner in spinners {
        let _ = spinner.join();
    }
    let (short, default) = measured?;
    let command = format!(
        "{} × 2 Kernel::boot(), alternately, with {cores} threads of this process spinning",
        args.boots
    );
    let (a, b) = (quantile(&short, 0.5), quantile(&default, 0.5));
    report.add(
        "private boot on a busy host, short slices, median",
        ms(a),
        "ms",
        command.clone(),
    );
    report.add(
        "private boot on a busy host, host's slices, median",
        ms(b),
        "ms",
        command.clone(),
    );
    report.add(
        "busy host: host's slices / short slices",
        format!("{:.2}", b / a),
        "×",
        command,
    );
    Ok(())
}

/// This process's memory in KiB: `VmRSS` (every page mapped, a page
/// that several kernels map counted for each) and `Pss` (each page
/// divided among the mappings that share it: what the process costs).
fn memory_kib() -> Result<(u64, u64)> {
    let field = |file: &str, name: &str| -> Result<u64> {
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no {name} in {file}"))
    };
    Ok((
        field("/proc/self/status", "VmRSS:")?,
        field("/proc/self/smaps_rollup", "Pss:")?,
    ))
}

/// MiB of this process's RSS and PSS per kernel, over `instances`
/// kernels from `boot` alive at once (halted afterwards). The arenas that
/// halted kernels left for later ones are unmapped first, so that each
/// kernel's memory is its own.
fn memory_per_instance_of(
    instances: u32,
    boot: impl Fn() -> Result<Kernel, lkl_harness::Error>,
) -> Result<(f64, f64)> {
    lkl_sim::mem::release_kept();
    let (rss_before, pss_before) = memory_kib()?;
    let kernels = (0..instances)
        .map(|_| boot())
        .collect::<Result<Vec<_>, _>>()?;
    let (rss_after, pss_after) = memory_kib()?;
    for k in kernels {
        k.halt()?;
    }
    let per = |after: u64, before: u64| {
        after.saturating_sub(before) as f64 / f64::from(instances) / 1024.0
    };
    Ok((per(rss_after, rss_before), per(pss_after, pss_before)))
}

fn memory_per_instance(args: &BenchArgs, kernel: &KernelArgs, report: &mut Report) -> Result<()> {
    let (rss, pss) =
        memory_per_instance_of(args.instances, || Kernel::boot(kernel.boot_options()))?;
    report.add(
        format!("RSS per extra instance (mem={}M)", kernel.mem),
        format!("{rss:.1}"),
        "MiB",
        format!(
            "VmRSS of /proc/self/status before and after booting {} private kernels, divided",
            args.instances
        ),
    );
    report.add(
        format!("PSS per extra instance (mem={}M)", kernel.mem),
        format!("{pss:.1}"),
        "MiB",
        "Pss of /proc/self/smaps_rollup, the same kernels: pages they share counted once".into(),
    );
    Ok(())
}

fn getpid_round_trip(args: &BenchArgs, kernel: &Kernel, report: &mut Report) {
    let calls = args.getpid_calls.max(1);
    // The first call gives this thread its task; warm the caches too.
    for _ in 0..1000 {
        let _ = kernel.getpid();
    }
    let started = Instant::now();
    for _ in 0..calls {
        let _ = std::hint::black_box(kernel.getpid());
    }
    let through_kernel = started.elapsed().as_nanos() as f64 / calls as f64;
    let started = Instant::now();
    for _ in 0..calls {
        // SAFETY: getpid takes no arguments and cannot fail.
        std::hint::black_box(unsafe { libc::syscall(libc::SYS_getpid) });
    }
    let native = started.elapsed().as_nanos() as f64 / calls as f64;
    report.add(
        "getpid() through the library",
        format!("{through_kernel:.0}"),
        "ns/call",
        format!("{calls} × kernel.getpid(), one thread"),
    );
    report.add(
        "getpid() native (host kernel)",
        format!("{native:.0}"),
        "ns/call",
        format!("{calls} × libc::syscall(SYS_getpid), same run"),
    );
}

fn hello_cost(args: &BenchArgs, kernel: &Kernel, report: &mut Report) -> f64 {
    let options = StressOptions {
        threads: 1,
        calls: args.hello_calls.max(1),
        loud: Loudness::Never,
        name: Some("world".into()),
    };
    let summary = stress::run(kernel, &options, &|_| {});
    kernel.take_log();
    let per_call = summary.elapsed.as_nanos() as f64 / summary.counts.calls as f64;
    report.add(
        "valid hello() call, one thread",
        format!("{per_call:.0}"),
        "ns/call",
        format!(
            "stress::run, 1 thread × {} quiet calls greeting \"world\"",
            options.calls
        ),
    );
    per_call
}

/// What fault safety costs: a 16-byte user copy as a plain memcpy, through
/// the fault-safe fast path (memcpy under a recovery point), and through
/// the fault path (process_vm_readv), and its share of a valid hello().
fn user_copy_cost(args: &BenchArgs, hello_ns: f64, report: &mut Report) {
    let copies = args.getpid_calls.max(1);
    let user = [0x5au8; 16];
    let mut kernel_buf = [0u8; 16];
    let per_copy = |f: &mut dyn FnMut()| {
        let started = Instant::now();
        for _ in 0..copies {
            f();
        }
        started.elapsed().as_nanos() as f64 / copies as f64
    };
    let memcpy = per_copy(&mut || {
        let src = std::hint::black_box(user.as_ptr());
        // SAFETY: both buffers are ours, 16 bytes, not overlapping.
        unsafe { std::ptr::copy_nonoverlapping(src, kernel_buf.as_mut_ptr(), 16) };
        std::hint::black_box(&kernel_buf);
    });
    let fast = per_copy(&mut || {
        let src = std::hint::black_box(user.as_ptr());
        // SAFETY: `user` is ours and never written.
        std::hint::black_box(unsafe {
            lkl_sim::uaccess::copy_from_user_slice(&mut kernel_buf, src)
        });
    });
    let probe = per_copy(&mut || {
        let src = std::hint::black_box(user.as_ptr());
        // SAFETY: `user` is ours and never written.
        std::hint::black_box(unsafe {
            lkl_sim::uaccess::copy_from_user_slice_probe(&mut kernel_buf, src)
        });
    });
    let faulting = per_copy(&mut || {
        let src = std::hint::black_box(std::ptr::null::<u8>());
        // SAFETY: NULL is invalid memory: the copy faults and is caught.
        std::hint::black_box(unsafe {
            lkl_sim::uaccess::copy_from_user_slice(&mut kernel_buf, src)
        });
    });
    let command = format!("{copies} × 16-byte copy, lkl_sim::uaccess");
    report.add(
        "user copy, plain memcpy (not fault-safe)",
        format!("{memcpy:.1}"),
        "ns",
        command.clone(),
    );
    report.add(
        "user copy, fault-safe fast path",
        format!("{fast:.1}"),
        "ns",
        command.clone(),
    );
    report.add(
        "user copy, process_vm_readv only",
        format!("{probe:.1}"),
        "ns",
        command.clone(),
    );
    report.add(
        "user copy that faults (NULL source)",
        format!("{faulting:.1}"),
        "ns",
        command,
    );
    // A valid hello("world") makes two user copies: the struct, and the
    // name's first word.
    let share = 2.0 * (fast - memcpy).max(0.0) / hello_ns * 100.0;
    report.add(
        "fault safety's share of a valid hello()",
        format!("{share:.1}"),
        "%",
        "2 copies × (fast path − memcpy) / valid hello() call".into(),
    );
}

fn hello_throughput(args: &BenchArgs, kernel: &Kernel, report: &mut Report) {
    for threads in [1, 2, 8, 64] {
        let label = if threads == 1 {
            "1 thread".to_string()
        } else {
            format!("{threads} threads")
        };
        hello_figures(kernel, threads, args.hello_calls, &label, report);
    }
}

/// Throughput, latency and lines lost of a `hello()` stress run with
/// `threads` threads sharing `total_calls`, each figure named by `label`.
fn hello_figures(
    kernel: &Kernel,
    threads: usize,
    total_calls: usize,
    label: &str,
    report: &mut Report,
) {
    let options = StressOptions {
        threads,
        calls: (total_calls / threads).max(1),
        ..StressOptions::default()
    };
    let summary = stress::run(kernel, &options, &|_| {});
    // Keep the retained log (and the next tally) small.
    kernel.take_log();
    let command = format!(
        "stress::run, {threads} thread(s) × {} calls, every 4th loud",
        options.calls
    );
    report.add(
        format!("hello() throughput, {label}"),
        format!("{:.0}", summary.calls_per_sec),
        "calls/s",
        command.clone(),
    );
    report.add(
        format!("hello() latency p50 / p99, {label}"),
        format!(
            "{} / {}",
            fmt_ns(summary.latency_p50_ns),
            fmt_ns(summary.latency_p99_ns)
        ),
        "",
        command.clone(),
    );
    report.add(
        format!("log lines lost, {label}"),
        format!(
            "{} of {}",
            summary.counts.lines_lost, summary.counts.expected_lines
        ),
        "lines",
        command,
    );
}

/// Boots a private kernel with `cpus` CPUs.
fn boot_cpus(kernel: &KernelArgs, cpus: u32) -> Result<Kernel> {
    Ok(Kernel::boot(BootOptions {
        cpus,
        ..kernel.boot_options()
    })?)
}

/// A kernel's getpid(), as a [`Job`]'s call.
fn getpid_call(kernel: &Kernel) -> impl Fn() + Sync + '_ {
    move || {
        let _ = std::hint::black_box(kernel.getpid());
    }
}

/// The host kernel's getpid(): what this machine's cores give threads
/// making system calls, the ceiling for the library kernel's scaling.
fn native_getpid() {
    // SAFETY: getpid takes no argument and cannot fail.
    std::hint::black_box(unsafe { libc::syscall(libc::SYS_getpid) });
}

/// What a round of [`call_rates`] times: `threads` threads at once, each
/// making `calls` calls of `call`.
struct Job<'a> {
    threads: usize,
    calls: u64,
    call: &'a (dyn Fn() + Sync),
}

/// Calls per second of each job in each of `rounds` rounds, the jobs
/// taking turns within a round so that they share the host's noise.
///
/// The same host threads make the calls of every round, after 1,000
/// calls of each job to warm up. A new thread's first call clones its
/// kernel task, which the scheduler then has to place: rounds of new
/// threads timed that, and the threads leaving their barrier apart, more
/// than the calls (two threads' getpid() looked 1.1-1.4x one thread's,
/// the host's own getpid() included, where both scale 1.9x or more).
fn call_rates(rounds: usize, jobs: &[Job<'_>]) -> Vec<Vec<f64>> {
    let threads = jobs.iter().map(|j| j.threads).max().unwrap_or(0);
    let (start, end) = (Barrier::new(threads + 1), Barrier::new(threads + 1));
    let spans: Mutex<Vec<Option<(Instant, Instant)>>> = Mutex::new(vec![None; threads]);
    std::thread::scope(|s| {
        for me in 0..threads {
            let (start, end, spans) = (&start, &end, &spans);
            s.spawn(move || {
                // A call that panics (a kernel that panicked) must not
                // leave the others waiting at a barrier: this thread keeps
                // to the rounds without calling, and panics after them.
                let warm_up = || {
                    for job in jobs.iter().filter(|j| me < j.threads) {
                        for _ in 0..1000 {
                            (job.call)();
                        }
                    }
                };
                let mut panicked = catch_unwind(AssertUnwindSafe(warm_up)).err();
                for _ in 0..rounds {
                    for job in jobs {
                        start.wait();
                        if me < job.threads && panicked.is_none() {
                            let timed = || {
                                let first = Instant::now();
                                for _ in 0..job.calls {
                                    (job.call)();
                                }
                                (first, Instant::now())
                            };
                            match catch_unwind(AssertUnwindSafe(timed)) {
                                Ok(span) => spans.lock()[me] = Some(span),
                                Err(panic) => panicked = Some(panic),
                            }
                        }
                        end.wait();
                    }
                }
                if let Some(panic) = panicked {
                    resume_unwind(panic);
                }
            });
        }
        let mut rates = vec![Vec::new(); jobs.len()];
        for _ in 0..rounds {
            for (job, rates) in jobs.iter().zip(&mut rates) {
                start.wait();
                end.wait();
                // The workers' own clocks, as in stress::run_calls: this
                // thread may be scheduled late.
                // No span if a thread panicked: the scope then panics
                // with its message once the rounds are over.
                let spans: Vec<_> = spans.lock().iter_mut().filter_map(Option::take).collect();
                let first = spans.iter().map(|s| s.0).min();
                let last = spans.iter().map(|s| s.1).max();
                if let (Some(first), Some(last)) = (first, last) {
                    let elapsed = last.duration_since(first).as_secs_f64();
                    rates.push((job.threads as u64 * job.calls) as f64 / elapsed);
                }
            }
        }
        rates
    })
}

/// CPU time (user + system) this process has used, in seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: an all-zero rusage is a valid value to be filled in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is writable.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

/// The SMP figures, each beside its uniprocessor counterpart, from the
/// same run.
fn smp_figures(args: &BenchArgs, kernel: &KernelArgs, report: &mut Report) -> Result<()> {
    let calls = args.getpid_calls.max(1);

    // One thread's getpid() at 1 and 4 CPUs, alternated to share the noise.
    let (k1, k4) = (boot_cpus(kernel, 1)?, boot_cpus(kernel, 4)?);
    let rates = call_rates(
        5,
        &[
            Job {
                threads: 1,
                calls: calls / 5,
                call: &getpid_call(&k1),
            },
            Job {
                threads: 1,
                calls: calls / 5,
                call: &getpid_call(&k4),
            },
        ],
    );
    let ns = |r: &[f64]| 1e9 / quantile(r, 0.5);
    let (one, four) = (ns(&rates[0]), ns(&rates[1]));
    let command =
        format!("{calls} × getpid() on one thread, in 5 alternating rounds, private kernels");
    report.add(
        "getpid(), 1 thread, cpus = 1",
        format!("{one:.0}"),
        "ns/call",
        command.clone(),
    );
    report.add(
        "getpid(), 1 thread, cpus = 4",
        format!("{four:.0}"),
        "ns/call",
        command.clone(),
    );
    report.add(
        "getpid(), cpus = 4 / cpus = 1",
        format!("{:.2}", four / one),
        "×",
        command,
    );

    // Idle kernels: CPU used by this process while they sit there.
    k1.flush_log()?;
    let idle = || {
        let before = cpu_seconds();
        std::thread::sleep(Duration::from_secs(args.idle_seconds));
        (cpu_seconds() - before) / args.idle_seconds as f64 * 100.0
    };
    drop(k1.halt());
    let idle4 = idle();
    k4.halt()?;
    let k1 = boot_cpus(kernel, 1)?;
    let idle1 = idle();
    k1.halt()?;
    let command = format!(
        "getrusage(RUSAGE_SELF) over {} s of sleep with one booted, idle kernel",
        args.idle_seconds
    );
    report.add(
        "idle kernel, cpus = 1: CPU used",
        format!("{idle1:.2}"),
        "% core",
        command.clone(),
    );
    report.add(
        "idle kernel, cpus = 4: CPU used",
        format!("{idle4:.2}"),
        "% core",
        command,
    );

    // getpid() throughput from 1 and 2 threads at 2 CPUs.
    // The host kernel's getpid() from 1 and 2 threads in the same rounds:
    // the scaling this machine's two cores allow at all. Every round
    // makes `calls` calls however many threads share them.
    let k2 = boot_cpus(kernel, 2)?;
    let job = |threads: usize, call| Job {
        threads,
        calls: calls / threads as u64,
        call,
    };
    let rates = call_rates(
        5,
        &[
            job(1, &getpid_call(&k2)),
            job(2, &getpid_call(&k2)),
            job(1, &native_getpid),
            job(2, &native_getpid),
        ],
    );
    let (t1, t2) = (quantile(&rates[0], 0.5), quantile(&rates[1], 0.5));
    let (n1, n2) = (quantile(&rates[2], 0.5), quantile(&rates[3], 0.5));
    let command = format!("{calls} getpid() calls per round, 5 alternating rounds, cpus = 2");
    report.add(
        "getpid() throughput, 1 thread, cpus = 2",
        format!("{t1:.0}"),
        "calls/s",
        command.clone(),
    );
    report.add(
        "getpid() throughput, 2 threads, cpus = 2",
        format!("{t2:.0}"),
        "calls/s",
        command.clone(),
    );
    report.add(
        "getpid() throughput, 2 threads / 1 thread",
        format!("{:.2}", t2 / t1),
        "×",
        command,
    );
    report.add(
        "host getpid() throughput, 2 threads / 1 thread",
        format!("{:.2}", n2 / n1),
        "×",
        format!("{calls} libc::syscall(SYS_getpid) per round, in the same rounds"),
    );

    // hello() from 64 threads at 1 and 2 CPUs.
    let k1 = boot_cpus(kernel, 1)?;
    for (cpus, k) in [(1, &k1), (2, &k2)] {
        hello_figures(
            k,
            64,
            args.hello_calls,
            &format!("64 threads, cpus = {cpus}"),
            report,
        );
    }
    k1.halt()?;
    k2.halt()?;

    // Boot to the first system call, private kernels, 1 and 4 CPUs.
    let mut boots = [Vec::new(), Vec::new()];
    for _ in 0..args.boots {
        for (i, cpus) in [1, 4].into_iter().enumerate() {
            let started = Instant::now();
            let k = boot_cpus(kernel, cpus)?;
            k.getpid()?;
            boots[i].push(started.elapsed().as_nanos() as f64);
            k.halt()?;
        }
    }
    let command = format!(
        "{} × Kernel::boot() to getpid() returning, alternating",
        args.boots
    );
    let (b1, b4) = (quantile(&boots[0], 0.5), quantile(&boots[1], 0.5));
    report.add(
        "boot to first syscall, cpus = 1, median",
        ms(b1),
        "ms",
        command.clone(),
    );
    report.add(
        "boot to first syscall, cpus = 4, median",
        ms(b4),
        "ms",
        command.clone(),
    );
    report.add(
        "boot, cpus = 4 / cpus = 1",
        format!("{:.2}", b4 / b1),
        "×",
        command,
    );

    // How long the default stress takes to see the seeded shared-buffer
    // race: runs of 8 threads × 1,000 calls until one fails.
    let racy = Kernel::boot_seeded(
        &lkl_harness::seeded::with_mutant("shared-buffer-race"),
        kernel.boot_options(),
    )?;
    let options = StressOptions {
        threads: 8,
        calls: 1_000,
        ..StressOptions::default()
    };
    let started = Instant::now();
    let mut found = None;
    for _ in 0..100 {
        let summary = stress::run(&racy, &options, &|_| {});
        racy.take_log();
        if summary.verify().is_err() {
            found = Some(started.elapsed());
            break;
        }
    }
    racy.halt()?;
    report.add(
        format!("seeded shared-buffer race found, cpus = {}", kernel.boot_options().cpus),
        found.map_or("not found".into(), |d| format!("{:.3}", d.as_secs_f64())),
        "s",
        "stress::run 8 threads × 1,000 calls, repeated until the verdict fails, lkl/mutants/shared-buffer-race.patch".into(),
    );
    Ok(())
}

/// The kernel work tree and the config fragment `build.rs` uses.
/// The debug kernel beside the default one, measured alike in one run:
/// private boots, one thread's `hello()` latency and RSS per instance.
fn debug_figures(args: &BenchArgs, kernel: &KernelArgs, report: &mut Report) -> Result<()> {
    let debug = lkl_harness::seeded::build(&Spec {
        variant: Variant::Debug,
        mutants: Vec::new(),
        coverage: false,
    })
    .map_err(anyhow::Error::msg)
    .context("building the debug kernel")?;
    let options = kernel.boot_options();
    let calls = (args.hello_calls / 10).max(1);
    let boot = |library: Option<&Path>| match library {
        Some(library) => Kernel::boot_library(library, options.clone()),
        None => Kernel::boot(options.clone()),
    };
    for (name, library) in [("default", None), ("debug", Some(debug.as_path()))] {
        let (times, copied) = namespace_and_copy_boots(args.boots, kernel, || boot(library))?;
        report.add(
            format!("{name} kernel: private boot, median"),
            ms(quantile(&times, 0.5)),
            "ms",
            format!(
                "{} × Kernel::boot (debug: boot_library) then halt()",
                args.boots
            ),
        );
        report.add(
            format!("{name} kernel: private boot as a copy, median"),
            ms(quantile(&copied, 0.5)),
            "ms",
            format!("the same, while {NAMESPACES} kernels hold every dlmopen namespace"),
        );

        let k = boot(library)?;
        let summary = stress::run(
            &k,
            &StressOptions {
                threads: 1,
                calls,
                loud: Loudness::Never,
                name: Some("world".into()),
            },
            &|_| {},
        );
        k.halt()?;
        let per_call = summary.elapsed.as_nanos() as f64 / summary.counts.calls.max(1) as f64;
        report.add(
            format!("{name} kernel: valid hello() call, one thread"),
            format!("{per_call:.0}"),
            "ns/call",
            format!("stress::run, 1 thread × {calls} quiet calls, private kernel"),
        );

        let (rss, pss) = memory_per_instance_of(args.instances, || boot(library))?;
        report.add(
            format!("{name} kernel: RSS per instance (mem={}M)", kernel.mem),
            format!("{rss:.1}"),
            "MiB",
            format!(
                "VmRSS before and after booting {} of them, divided",
                args.instances
            ),
        );
        report.add(
            format!("{name} kernel: PSS per instance (mem={}M)", kernel.mem),
            format!("{pss:.1}"),
            "MiB",
            "Pss of /proc/self/smaps_rollup, the same kernels".into(),
        );
    }
    Ok(())
}

/// What coverage instrumentation costs on a valid `hello()`: the default
/// kernel beside the coverage kernel (gcov counters and trace-pc into
/// the process's block set), and the coverage kernel with each call
/// traced on its thread, as the fuzzer runs it. Private kernels, one of
/// each, measured in alternating rounds so that the machine's noise falls
/// on all three alike.
/// What `selftest` costs on the seed's hello selftest: a cold compile
/// and run (a fresh cache directory) and warm runs (compiled earlier),
/// each a runner process that boots its kernel.
fn selftest_figures(kernel: &KernelArgs, report: &mut Report) -> Result<()> {
    use lkl_harness::selftest::{self, SelftestOptions};

    let source =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/selftests/seed/hello_test.c");
    // A copy with a unique comment: its digest is new, so it compiles.
    let scratch = std::path::Path::new(env!("LKL_CACHE_DIR")).join("selftests/bench");
    std::fs::create_dir_all(&scratch)?;
    let cold_source = scratch.join("hello_test.c");
    let text = std::fs::read_to_string(&source)?;
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    std::fs::write(&cold_source, format!("{text}\n/* bench {nonce} */\n"))?;
    let mut options = SelftestOptions::new(std::env::current_exe()?);
    options.boot = kernel.boot_options();
    let started = Instant::now();
    let cold = selftest::run(&cold_source, &options)?;
    let cold_total = started.elapsed();
    let passed = cold.iter().all(|r| r.passed());
    const WARM: u32 = 10;
    let started = Instant::now();
    let mut run_seconds = 0.0;
    for _ in 0..WARM {
        let warm = selftest::run(&cold_source, &options)?;
        run_seconds += warm.iter().map(|r| r.run_seconds).sum::<f64>();
    }
    let warm_total = started.elapsed() / WARM;
    let _ = std::fs::remove_dir_all(&scratch);
    let verdict = if passed { "passed" } else { "FAILED" };
    report.add(
        format!("selftest hello_test.c: compile + run, cold ({verdict})"),
        format!("{:.3}", cold_total.as_secs_f64()),
        "s",
        "selftest::run() of a fresh copy of tests/selftests/seed/hello_test.c".into(),
    );
    report.add(
        "selftest hello_test.c: warm (compiled earlier)",
        format!("{:.3}", warm_total.as_secs_f64()),
        "s",
        format!("mean of {WARM} selftest::run() calls"),
    );
    report.add(
        "  of which the runner process (boot, run, exit)",
        format!("{:.3}", run_seconds / f64::from(WARM)),
        "s",
        format!("mean of {WARM}"),
    );
    Ok(())
}

fn coverage_figures(args: &BenchArgs, kernel: &KernelArgs, report: &mut Report) -> Result<()> {
    use lkl_harness::hello::HelloArgs;

    let covered = lkl_harness::seeded::build(&Spec::of(Variant::Default).with_coverage())
        .map_err(anyhow::Error::msg)
        .context("building the coverage kernel")?;
    let options = kernel.boot_options();
    let plain = Kernel::boot(options.clone())?;
    let cover = Kernel::boot_library(&covered, options)?;
    let hello = HelloArgs::new(c"world", 0);
    const ROUNDS: usize = 10;
    let calls = (args.hello_calls / ROUNDS / 2).max(1);
    let mut totals = [Duration::ZERO; 3];
    let time = |k: &Kernel, traced: bool| {
        let started = Instant::now();
        for _ in 0..calls {
            let result = if traced {
                lkl_sim::coverage::trace(|| k.hello(&hello)).0
            } else {
                k.hello(&hello)
            };
            result.expect("a valid hello() succeeds");
        }
        started.elapsed()
    };
    for _ in 0..ROUNDS {
        totals[0] += time(&plain, false);
        totals[1] += time(&cover, false);
        totals[2] += time(&cover, true);
        plain.take_log();
        cover.take_log();
    }
    plain.halt()?;
    cover.halt()?;
    let per_call = |d: Duration| d.as_nanos() as f64 / (calls * ROUNDS) as f64;
    let base = per_call(totals[0]);
    let command = format!(
        "{ROUNDS} alternating rounds × {calls} quiet hello() calls, one thread, private kernels"
    );
    for (what, total) in [
        ("default kernel: valid hello() call", totals[0]),
        ("coverage kernel: valid hello() call", totals[1]),
        ("coverage kernel: hello() call, traced (fuzzer)", totals[2]),
    ] {
        report.add(
            what,
            format!("{:.0}", per_call(total)),
            "ns/call",
            command.clone(),
        );
    }
    for (what, total) in [
        ("coverage kernel / default kernel", totals[1]),
        ("traced call / default kernel", totals[2]),
    ] {
        report.add(
            what,
            format!("{:.2}", per_call(total) / base),
            "x",
            command.clone(),
        );
    }
    Ok(())
}

/// The (patched) source tree build.rs built from.
fn build_tree() -> PathBuf {
    PathBuf::from(env!("LKL_SOURCE_TREE"))
}

/// Runs `make` in the kernel tree with output to `log`; returns how long
/// it took.
fn kmake(tree: &Path, out: &Path, log: &Path, args: &[String]) -> Result<Duration> {
    let log_file = std::fs::File::options()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let mut cmd = Command::new("make");
    cmd.arg("-C")
        .arg(tree)
        .arg(format!("O={}", out.display()))
        .arg("ARCH=lkl")
        .args(args)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file);
    // Cargo's jobserver is not the kernel's business.
    for var in ["MAKEFLAGS", "MFLAGS", "MAKELEVEL", "CARGO_MAKEFLAGS"] {
        cmd.env_remove(var);
    }
    let started = Instant::now();
    let status = cmd.status().context("running make")?;
    if !status.success() {
        bail!(
            "make {} failed ({status}); see {}",
            args.join(" "),
            log.display()
        );
    }
    Ok(started.elapsed())
}

fn build_times(args: &BenchArgs, report: &mut Report) -> Result<()> {
    let mut variants = vec![Variant::Default];
    if !args.no_debug {
        variants.push(Variant::Debug);
    }
    for variant in variants {
        build_times_of(variant, report)?;
    }
    Ok(())
}

/// Cold, one-file and no-op builds of `variant`'s kernel in a fresh
/// build directory, from the work tree build.rs patched, with the
/// configuration the cache builds it with.
fn build_times_of(variant: Variant, report: &mut Report) -> Result<()> {
    let tree = build_tree();
    let name = variant.name();
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let scratch = std::env::temp_dir().join(format!("lkl-bench-build-{}", std::process::id()));
    let out = scratch.join("build");
    let log = scratch.join("build.log");
    let fragment = scratch.join("config");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&out)?;
    let wanted = lkl_harness::seeded::cache()
        .config_fragment(&Spec::of(variant))
        .map_err(anyhow::Error::msg)?;
    std::fs::write(&fragment, wanted)?;
    let make = format!("make -C {} O=<fresh dir> ARCH=lkl", tree.display());
    let config_files = if variant == Variant::Default {
        "lkl/config/lkl.config".to_string()
    } else {
        format!("lkl/config/lkl.config + {name}.config")
    };
    eprintln!(
        "bench: building the {name} kernel in {} (log: {})",
        out.display(),
        log.display()
    );

    let config = kmake(
        &tree,
        &out,
        &log,
        &[
            format!("KCONFIG_ALLCONFIG={}", fragment.display()),
            "allnoconfig".into(),
        ],
    )?;
    report.add(
        format!("{name} kernel: config (allnoconfig + fragments)"),
        format!("{:.1}", config.as_secs_f64()),
        "s",
        format!("{make} KCONFIG_ALLCONFIG=<{config_files}> allnoconfig"),
    );
    let vmlinux = [format!("-j{jobs}"), "vmlinux".to_string()];
    let cold = kmake(&tree, &out, &log, &vmlinux)?;
    report.add(
        format!("{name} kernel: build, cold"),
        format!("{:.1}", cold.as_secs_f64()),
        "s",
        format!("{make} -j{jobs} vmlinux"),
    );

    // A one-file change: a newer mtime on kernel/hello.c. The file in the
    // work tree is build.rs's patched copy, not a hard link to the
    // pristine source; its old mtime is put back afterwards so the
    // harness's own build does not rebuild it.
    let hello = tree.join("kernel/hello.c");
    let file = std::fs::File::options()
        .append(true)
        .open(&hello)
        .with_context(|| format!("opening {}", hello.display()))?;
    let old_mtime = file.metadata()?.modified()?;
    file.set_modified(SystemTime::now())?;
    let warm = kmake(&tree, &out, &log, &vmlinux);
    file.set_modified(old_mtime)?;
    let warm = warm?;
    report.add(
        format!("{name} kernel: build, one file changed"),
        format!("{:.1}", warm.as_secs_f64()),
        "s",
        format!("touch -m kernel/hello.c; {make} -j{jobs} vmlinux"),
    );
    let nothing = kmake(&tree, &out, &log, &vmlinux)?;
    report.add(
        format!("{name} kernel: build, nothing changed"),
        format!("{:.1}", nothing.as_secs_f64()),
        "s",
        format!("{make} -j{jobs} vmlinux (again)"),
    );
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// A call that panics (as a call into a kernel that panicked does)
    /// ends the rounds with a panic: the other threads are not left
    /// waiting at a barrier.
    #[test]
    fn a_call_that_panics_ends_the_rounds_with_a_panic() {
        let (done, result) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let calls = AtomicU64::new(0);
            let count = || {
                calls.fetch_add(1, Ordering::Relaxed);
            };
            let boom = || panic!("boom");
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                call_rates(
                    3,
                    &[
                        Job {
                            threads: 1,
                            calls: 10,
                            call: &count,
                        },
                        Job {
                            threads: 2,
                            calls: 10,
                            call: &boom,
                        },
                    ],
                )
            }));
            let _ = done.send((outcome.is_err(), calls.load(Ordering::Relaxed)));
        });
        let (panicked, calls) = result
            .recv_timeout(Duration::from_secs(60))
            .expect("call_rates() hung after a call panicked");
        // The panic itself is printed where it happens (the panic hook).
        assert!(panicked, "call_rates() returned after a call panicked");
        // The first thread panicked in its warm-up, after its 1,000
        // calls of the first job: it made no timed call.
        assert_eq!(calls, 1000);
    }
}
