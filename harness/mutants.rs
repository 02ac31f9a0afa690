//! Mutation testing of the kernel side: does the test suite catch a
//! realistic bug in the system call?
//!
//! A mutant is a patch on top of `lkl/patches/` (the project's are in
//! `lkl/mutants/`: memory bugs, undefined behaviour, a data race and plain
//! logic bugs in `kernel/hello.c`). For each mutant and each chosen kernel
//! variant, [`build()`] builds the kernel with the mutant applied, in a
//! build directory of its own that starts as a copy of the variant's, so
//! only the files the mutant changes are compiled. It then runs the chosen
//! test targets with `cargo test`, with [`Kernel::boot`](crate::Kernel::boot)
//! loading the mutant's library (`LKL_LIBRARY`). A failing test catches
//! the mutant; a mutant that does not build is an error, never a catch.
//! [`run_all`] builds a mutant's kernels side by side, and the next
//! mutant's while the tests of one run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::kbuild::{Spec, Variant};

/// The test targets run against each mutant unless told otherwise: the
/// ones that call `hello()` through [`Kernel::boot`](crate::Kernel::boot).
pub const DEFAULT_TESTS: [&str; 4] = ["hello_contract", "hello_abi", "snapshots", "stress"];

/// The kernels each mutant is built for unless told otherwise: the
/// contract tests on the default kernel, the memory checkers on the debug
/// kernel.
pub const DEFAULT_KERNELS: [Variant; 2] = [Variant::Default, Variant::Debug];

/// What happened to one mutant on one kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A test failed.
    Caught {
        /// The test target and the failing test (`hello_contract::nonzero_pad_is_einval`).
        test: String,
        /// The first line of its failure message.
        message: String,
        /// The first report of a kernel checker (KASAN, UBSAN, kmemleak,
        /// KCSAN, lockdep, WARN) in the tests' output, with the first
        /// `kernel/hello.c` frame after it, if any.
        report: Option<String>,
    },
    /// Every test passed: the suite misses the bug.
    Survived,
    /// The mutant did not build or apply (not a catch).
    BuildFailed(String),
    /// The tests could not be run at all (cargo failed before testing).
    NotRun(String),
}

impl Verdict {
    /// Whether the mutant was caught.
    pub fn caught(&self) -> bool {
        matches!(self, Verdict::Caught { .. })
    }
}

/// One row of the table.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The mutant's name (its file name without `.patch`).
    pub mutant: String,
    /// The kernel it was built for.
    pub kernel: Variant,
    /// The verdict.
    pub verdict: Verdict,
    /// Building the mutant's kernel.
    pub build: Duration,
    /// Running the tests.
    pub test: Duration,
    /// The tests' whole output, kept for reading after the table (in
    /// [`log_dir`]), if they ran and it could be written.
    pub log: Option<PathBuf>,
}

/// Where each mutant's test output is kept: `target/mutants/`, one file
/// per mutant and kernel (`NAME.KERNEL.log`), overwritten by the next run.
pub fn log_dir(manifest: &Path) -> PathBuf {
    manifest.join("target/mutants")
}

/// The `*.patch` files of `dir`, sorted, whose names contain `filter`, as
/// absolute paths: builds apply them from a scratch directory, and tests
/// read them from the project's.
pub fn find(dir: &Path, filter: Option<&str>) -> Result<Vec<PathBuf>, String> {
    let dir = &std::fs::canonicalize(dir)
        .map_err(|e| format!("cannot list mutants in {}: {e}", dir.display()))?;
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot list mutants in {}: {e}", dir.display()))?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "patch"))
        .filter(|p| filter.is_none_or(|f| crate::kbuild::mutant_name(p).contains(f)))
        .collect();
    found.sort();
    if found.is_empty() {
        return Err(format!(
            "no mutant {}in {}: a mutant is a git-format patch of the kernel source, `<name>.patch`",
            filter.map(|f| format!("matching {f:?} ")).unwrap_or_default(),
            dir.display()
        ));
    }
    Ok(found)
}

/// The target directory `cargo test` uses for `variant`'s kernel, as CI
/// and the README do (`target/kdebug` for `LKL_KERNEL=debug`): each
/// variant keeps its own compiled tests, and all share the kernel cache.
pub fn target_dir(manifest: &Path, variant: Variant) -> PathBuf {
    let target = manifest.join("target");
    if variant == Variant::Default {
        return target;
    }
    target.join(format!("k{}", variant.name()))
}

/// A mutant's kernel built, or not, for one variant: what [`test()`] needs.
#[derive(Clone, Debug)]
pub struct Build {
    /// The mutant's patch.
    pub mutant: PathBuf,
    /// The kernel it was built for.
    pub kernel: Variant,
    /// Its `liblkl.so`, or why it did not build.
    pub library: Result<PathBuf, String>,
    /// How long the build took.
    pub took: Duration,
}

/// Builds `mutant` for each of `kernels`, side by side (see
/// [`crate::seeded::build_side_by_side`]); each build's time is that of
/// them all.
pub fn build(mutant: &Path, kernels: &[Variant]) -> Vec<Build> {
    let specs: Vec<Spec> = kernels
        .iter()
        .map(|&variant| Spec {
            variant,
            mutants: vec![mutant.to_path_buf()],
            coverage: false,
        })
        .collect();
    let started = Instant::now();
    let libraries = crate::seeded::build_side_by_side(&specs);
    let took = started.elapsed();
    kernels
        .iter()
        .zip(libraries)
        .map(|(&kernel, library)| Build {
            mutant: mutant.to_path_buf(),
            kernel,
            library,
            took,
        })
        .collect()
}

/// Runs `tests` (test targets) against a mutant's kernel, with `filter`
/// passed on to the test binaries, and keeps their output in [`log_dir`].
pub fn test(build: Build, tests: &[String], filter: Option<&str>) -> Outcome {
    let name = crate::kbuild::mutant_name(&build.mutant);
    let library = match build.library {
        Ok(library) => library,
        Err(e) => {
            return Outcome {
                mutant: name,
                kernel: build.kernel,
                verdict: Verdict::BuildFailed(e),
                build: build.took,
                test: Duration::ZERO,
                log: None,
            }
        }
    };
    let started = Instant::now();
    let (verdict, output) = run_tests(&library, build.kernel, tests, filter);
    let test = started.elapsed();
    let dir = log_dir(Path::new(env!("CARGO_MANIFEST_DIR")));
    let path = dir.join(format!("{name}.{}.log", build.kernel.name()));
    let log = output
        .filter(|text| std::fs::create_dir_all(&dir).is_ok() && std::fs::write(&path, text).is_ok())
        .map(|_| path);
    Outcome {
        mutant: name,
        kernel: build.kernel,
        verdict,
        build: build.took,
        test,
        log,
    }
}

/// Runs every mutant of `mutants` on each of `kernels`, in order: one
/// thread builds each mutant's kernels (side by side) one mutant after
/// another (the builds share the cache's lock and work tree), while this
/// one runs each kernel's tests as soon as it is built, so that builds
/// and the tests of the kernels before them use the host's cores at
/// once. `done` sees each outcome as it comes.
pub fn run_all(
    mutants: &[PathBuf],
    kernels: &[Variant],
    tests: &[String],
    filter: Option<&str>,
    mut done: impl FnMut(&Outcome),
) -> Vec<Outcome> {
    for &kernel in kernels {
        compile_tests(kernel, tests);
    }
    let (built, builds) = crossbeam_channel::unbounded();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for mutant in mutants {
                eprintln!(
                    "mutants: building {} for the {} kernel ...",
                    crate::kbuild::mutant_name(mutant),
                    kernels
                        .iter()
                        .map(|k| k.name())
                        .collect::<Vec<_>>()
                        .join(" and ")
                );
                for b in build(mutant, kernels) {
                    if built.send(b).is_err() {
                        return;
                    }
                }
            }
        });
        // Ends when the builder has sent every build, or has panicked
        // (which the scope then raises here).
        builds
            .iter()
            .map(|b: Build| {
                let outcome = test(b, tests, filter);
                done(&outcome);
                outcome
            })
            .collect()
    })
}

/// Runs `cargo test` for `kernel` with `LKL_LIBRARY=library`: the verdict
/// and, if cargo ran, its whole output.
fn run_tests(
    library: &Path,
    kernel: Variant,
    tests: &[String],
    filter: Option<&str>,
) -> (Verdict, Option<String>) {
    let mut cmd = match cargo_test(kernel, tests) {
        Ok(cmd) => cmd,
        Err(e) => return (Verdict::NotRun(e), None),
    };
    // Every target, past the first that fails: a test that stops at a
    // check of the log only quotes a report, which another target's
    // `finish()` prints whole, with the source line of each frame.
    // Not quiet: cargo's `Running tests/NAME.rs` lines (on stderr, in
    // order with the tests' output through one pipe) name each test's
    // target.
    cmd.arg("--no-fail-fast").arg("--");
    if let Some(filter) = filter {
        cmd.arg(filter);
    }
    cmd.env("LKL_LIBRARY", library);
    let (status, text) = match run_merged(cmd) {
        Ok(run) => run,
        Err(e) => return (Verdict::NotRun(format!("cannot run cargo test: {e}")), None),
    };
    if status.success() {
        return (Verdict::Survived, Some(text));
    }
    // A test that stopped at a check of the log quotes the raw report,
    // whose frames only `finish()` gives source lines: give them here,
    // from the mutant's own library.
    let text = match crate::symbolize::Image::load(library, 0) {
        Ok(image) => image.annotate_frames(&text),
        Err(_) => text,
    };
    let verdict = match first_failure(&text) {
        Some((test, message)) => Verdict::Caught {
            test,
            message,
            report: first_report(&text),
        },
        None => Verdict::NotRun(format!(
            "cargo test failed before any test failed:\n{}",
            tail(&text, 30)
        )),
    };
    (verdict, Some(text))
}

/// `cargo test` of the test targets `tests` for `kernel`'s tests, in
/// their target directory (see [`target_dir`]).
fn cargo_test(kernel: Variant, tests: &[String]) -> Result<Command, String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = target_dir(manifest, kernel);
    if kernel != Variant::Default {
        link_cache(&target)?;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(manifest).arg("test");
    for test in tests {
        cmd.arg("--test").arg(test);
    }
    cmd.env("CARGO_TARGET_DIR", &target).env_remove("LKL_CPUS");
    if kernel == Variant::Default {
        cmd.env_remove("LKL_KERNEL");
    } else {
        cmd.env("LKL_KERNEL", kernel.name());
    }
    Ok(cmd)
}

/// Compiles the tests for `kernel` (`cargo test --no-run`): their
/// `build.rs`, which may build the kernel under the cache's lock, runs
/// then, not in the first mutant's test run, where it would wait for the
/// lock while the next mutant builds. A failure here shows again, whole,
/// in each mutant's test run.
fn compile_tests(kernel: Variant, tests: &[String]) {
    eprintln!(
        "mutants: compiling the tests for the {} kernel ...",
        kernel.name()
    );
    if let Ok(mut cmd) = cargo_test(kernel, tests) {
        cmd.arg("--no-run");
        let _ = run_merged(cmd);
    }
}

/// `target/<dir>/lkl` links to the shared kernel cache, as in CI.
pub fn link_cache(target: &Path) -> Result<(), String> {
    let link = target.join("lkl");
    if link.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(target)
        .map_err(|e| format!("cannot create {}: {e}", target.display()))?;
    std::os::unix::fs::symlink("../lkl", &link)
        .map_err(|e| format!("cannot link {} to the kernel cache: {e}", link.display()))
}

/// The first failing test in `cargo test` output, and the first line of
/// its message: `(target::test, message)`.
pub fn first_failure(output: &str) -> Option<(String, String)> {
    let mut target = String::new();
    let mut lines = output.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("Running ") {
            // "Running tests/hello_contract.rs (target/...)"
            let path = rest.split_whitespace().next().unwrap_or_default();
            target = Path::new(path)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
        }
        let Some(test) = trimmed
            .strip_prefix("---- ")
            .and_then(|r| r.strip_suffix(" stdout ----"))
        else {
            continue;
        };
        let mut message = String::new();
        for line in lines.by_ref() {
            if line.contains("panicked at") {
                continue;
            }
            if line.contains("Snapshot Summary") {
                message = snapshot_message(&mut lines);
                break;
            }
            if !line.trim().is_empty() {
                message = line.trim().to_string();
                break;
            }
        }
        let test = if target.is_empty() {
            test.to_string()
        } else {
            format!("{target}::{test}")
        };
        return Some((test, message));
    }
    None
}

/// An insta snapshot failure in a line: `snapshot stress_counts differs:
/// lines_lost: 6, ...` with the new values of the lines that changed,
/// read from the diff after insta's "Snapshot Summary" banner.
fn snapshot_message<'a>(lines: &mut impl Iterator<Item = &'a str>) -> String {
    let mut name = String::new();
    let mut new = Vec::new();
    for line in lines.by_ref() {
        if let Some(n) = line.strip_prefix("Snapshot: ") {
            name = n.trim().to_string();
        } else if let Some((_, change)) = line.split_once("│+") {
            new.push(change.trim().trim_end_matches(',').to_string());
        } else if line.starts_with("To update snapshots") || line.contains("panicked at") {
            break;
        }
    }
    format!("snapshot {name} differs: {}", new.join(", "))
}

/// The first kernel checker report in `output` (its title line, without
/// the timestamp) and, for a report whose title does not name the source
/// line, the first frame in `kernel/hello.c` after it. A report that the
/// output only quotes, in the `left:`/`right:` values of a failed
/// assertion on the log (a test that stopped at its first check, before
/// its `finish()`), comes second, and says so. Of those, the first that
/// names a line of `kernel/hello.c` wins: the same report printed whole by
/// another test's `finish()` has the frames that a snapshot's diff lacks.
pub fn first_report(output: &str) -> Option<String> {
    let lines: Vec<&str> = output.lines().collect();
    // Quoted: in an assertion's `left:`/`right:` values, or in a string
    // of a value that a message prints (`text: "BUG: KASAN: ..."`).
    let is_quoted = |l: &str| {
        let t = l.trim_start();
        t.starts_with("left:")
            || t.starts_with("right:")
            || report_at(l).is_some_and(|at| l[..at].contains('"'))
    };
    // A frame as the kernel printed it, without what shows the log around
    // it: a snapshot diff's `19 │+`, the record's level `<3>`, stamps.
    let at_hello = |s: &str| {
        let s = s.rsplit_once('│').map_or(s, |(_, after)| after);
        let s = s.trim_start_matches(['+', '-', ' ']);
        let s = match s.strip_prefix('<') {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => {
                rest.split_once('>').map_or(s, |(_, after)| after)
            }
            _ => s,
        };
        strip_stamp(s)
            .trim_start_matches("kmemleak:")
            .trim()
            .to_string()
    };
    let mut reports: Vec<(String, Option<String>)> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(from) = report_at(line) else {
            continue;
        };
        if is_quoted(line) {
            continue;
        }
        // From the checker's own words: a line that shows the log (a
        // snapshot's diff, say) has its own prefix before them.
        let title = strip_stamp(&line[from..]);
        let frame = if title.contains("kernel/hello.c:") {
            Some(String::new())
        } else {
            // Its own frames: up to the next report.
            lines[i + 1..]
                .iter()
                .take(80)
                .take_while(|l| report_at(l).is_none())
                .find(|l| l.contains("(kernel/hello.c:"))
                .map(|l| at_hello(l))
        };
        reports.push((title, frame));
    }
    for (i, line) in lines.iter().enumerate() {
        let Some(from) = report_at(line) else {
            continue;
        };
        if !is_quoted(line) {
            continue;
        }
        // A log line quoted as a string in a value: its frames are the
        // strings after it, on its line (`{:?}`) or on the lines after it,
        // one a line (`{:#?}`), up to the next report.
        let rest = &line[from..];
        let title = strip_stamp(rest.split('"').next().unwrap_or(rest).trim());
        let frame = if title.contains("kernel/hello.c:") {
            Some(String::new())
        } else {
            let after = lines[i + 1..]
                .iter()
                .take(80)
                .take_while(|l| report_at(l).is_none());
            std::iter::once(rest)
                .chain(after.copied())
                .flat_map(|l| l.split('"'))
                .find(|s| s.contains("(kernel/hello.c:"))
                .map(at_hello)
        };
        reports.push((format!("{title} (in the log an assertion compared)"), frame));
    }
    // The first report, or the first of its kind that names its line in
    // hello.c: the same bug, printed whole by another test's `finish()`.
    let first = reports.first()?;
    let (title, frame) = reports
        .iter()
        .find(|(title, frame)| frame.is_some() && kind(title) == kind(&first.0))
        .unwrap_or(first);
    let title = &crate::check::relative_sources(title);
    Some(match frame.as_deref() {
        Some(frame) if !frame.is_empty() => {
            match title.strip_suffix(" (in the log an assertion compared)") {
                Some(title) => format!("{title} at {frame} (in the log an assertion compared)"),
                None => format!("{title} at {frame}"),
            }
        }
        _ => title.clone(),
    })
}

/// Runs `cmd` with its stdout and stderr through one pipe, so that its
/// output reads in the order it was written: its exit status and output.
fn run_merged(mut cmd: Command) -> std::io::Result<(std::process::ExitStatus, String)> {
    use std::io::Read;

    let (mut reader, writer) = std::io::pipe()?;
    cmd.stdout(writer.try_clone()?).stderr(writer);
    let mut child = cmd.spawn()?;
    // Our copies of the write end go with `cmd`: the read ends when the
    // child (and anything it spawned) has closed its own.
    drop(cmd);
    let mut bytes = Vec::new();
    let read = reader.read_to_end(&mut bytes);
    let status = child.wait()?;
    read?;
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

/// Where in `line` a kernel checker's report title starts, if it has one.
/// A report's kind: its title up to what it names (`BUG: KASAN:
/// slab-out-of-bounds`, `UBSAN: shift-out-of-bounds`, `unreferenced
/// object`).
fn kind(title: &str) -> &str {
    let title = title.split(" in ").next().unwrap_or(title);
    match title.find(" 0x") {
        Some(at) => &title[..at],
        None => title,
    }
}

fn report_at(line: &str) -> Option<usize> {
    for marker in [
        "BUG: KASAN:",
        "UBSAN:",
        "unreferenced object 0x",
        "BUG: KCSAN:",
    ] {
        if let Some(i) = line.find(marker) {
            return Some(i);
        }
    }
    if !crate::check::is_splat(line) || line.contains("memory leak(s) confirmed") {
        return None;
    }
    // Another report (WARNING, lockdep, ...): where its marker starts.
    crate::check::SPLAT_MARKERS
        .iter()
        .filter_map(|marker| line.find(marker))
        .min()
        .or(Some(0))
}

/// A log line without its `[    0.157949] [T31] ` stamps.
fn strip_stamp(line: &str) -> String {
    let l = line.trim();
    match l.rfind("] ") {
        Some(i) if l.starts_with('[') => l[i + 2..].trim().to_string(),
        _ => l.to_string(),
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The table, one row per mutant and kernel.
pub fn table(outcomes: &[Outcome]) -> String {
    let mut out = format!(
        "{:<22} {:<8} {:<9} {:>7} {:>7}  caught by\n",
        "mutant", "kernel", "verdict", "build", "tests"
    );
    for o in outcomes {
        let (verdict, detail) = match &o.verdict {
            Verdict::Caught {
                test,
                message,
                report,
            } => (
                "caught",
                match report {
                    Some(report) => format!("{test}: {report}"),
                    None => format!("{test}: {message}"),
                },
            ),
            Verdict::Survived => ("SURVIVED", "every test passed".to_string()),
            Verdict::BuildFailed(e) => ("NO BUILD", first_line(e)),
            Verdict::NotRun(e) => ("NOT RUN", first_line(e)),
        };
        let mut detail = detail;
        if detail.chars().count() > 220 {
            detail = detail.chars().take(217).collect::<String>() + "...";
        }
        out.push_str(&format!(
            "{:<22} {:<8} {:<9} {:>6.1}s {:>6.1}s  {detail}\n",
            o.mutant,
            o.kernel.name(),
            verdict,
            o.build.as_secs_f64(),
            o.test.as_secs_f64(),
        ));
    }
    out
}

fn first_line(text: &str) -> String {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A relative --dir works from any directory the build applies from.
    #[test]
    fn mutants_are_found_as_absolute_paths() {
        let found = find(Path::new("lkl/fuzz-mutants"), Some("warn")).expect("the fuzz mutants");
        assert_eq!(found.len(), 1);
        assert!(found[0].is_absolute(), "{}", found[0].display());
        assert!(found[0].is_file());
        assert!(find(Path::new("lkl/no-such-dir"), None).is_err());
    }

    #[test]
    fn the_first_failure_names_target_test_and_message() {
        let output = "\
     Running tests/hello_abi.rs (target/kdebug/debug/deps/hello_abi-1)
     Running tests/hello_contract.rs (target/kdebug/debug/deps/hello_contract-2)

running 2 tests
failures:

---- nonzero_pad_is_einval stdout ----

thread 'nonzero_pad_is_einval' panicked at tests/hello_contract.rs:111:5:
assertion `left == right` failed: pad 1
  left: Ok(())
";
        assert_eq!(
            first_failure(output),
            Some((
                "hello_contract::nonzero_pad_is_einval".into(),
                "assertion `left == right` failed: pad 1".into()
            ))
        );
        assert_eq!(first_failure("test result: ok. 3 passed"), None);
        // A snapshot's failure: its name and the new values.
        let snapshot = "\
     Running tests/snapshots.rs (target/debug/deps/snapshots-1)
---- stress_counts stdout ----
━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━ Snapshot Summary ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━
Snapshot file: tests/../snapshots/stress_counts.snap
Snapshot: stress_counts
-old snapshot
+new results
────────────┬───────────────────────────────────────────────────────────────────
    7     7 │     lines_captured: 2496,
    8       │-    lines_lost: 0,
          8 │+    lines_lost: 6,
          9 │+    wrong_caller: 2,
   12    12 │ }
To update snapshots run `cargo insta review` or set `INSTA_UPDATE=always`
";
        assert_eq!(
            first_failure(snapshot),
            Some((
                "snapshots::stress_counts".into(),
                "snapshot stress_counts differs: lines_lost: 6, wrong_caller: 2".into()
            ))
        );
    }

    #[test]
    fn the_first_report_names_the_class_and_the_line_in_hello() {
        let output = "\
the kernel reported a bug: the log has 3 warning line(s):
  [    0.158] [T31] BUG: KASAN: slab-use-after-free in string+0xe1/0x1e0 (lib/vsprintf.c:646)
[    0.158] [T31]  _printk+0xac/0xc6 (kernel/printk/printk.c:2423)
[    0.158] [T31]  __se_sys_hello.cold+0x32/0x39 (kernel/hello.c:78)
";
        assert_eq!(
            first_report(output).as_deref(),
            Some(
                "BUG: KASAN: slab-use-after-free in string+0xe1/0x1e0 (lib/vsprintf.c:646) \
                 at __se_sys_hello.cold+0x32/0x39 (kernel/hello.c:78)"
            )
        );
        let ubsan = "[ 0.15] [T32] UBSAN: shift-out-of-bounds in kernel/hello.c:59:24\n";
        assert_eq!(
            first_report(ubsan).as_deref(),
            Some("UBSAN: shift-out-of-bounds in kernel/hello.c:59:24")
        );
        assert_eq!(first_report("assertion failed"), None);
        // Quoted in an assertion's value: found, said so, and second to
        // a report printed as such.
        let diff = "    3     3 │+<3>BUG: KASAN: slab-out-of-bounds in string+0xdd/0x1e0\n";
        assert_eq!(
            first_report(diff).as_deref(),
            Some("BUG: KASAN: slab-out-of-bounds in string+0xdd/0x1e0")
        );
        // A frame in a snapshot's diff, without the diff's and the log's
        // prefixes.
        let diff_frames = "    3     3 │+<3>BUG: KASAN: slab-out-of-bounds in string+0xdd/0x1e0 \
                           (lib/vsprintf.c:646)\n   19       │+<3> __se_sys_hello.cold+0x11/0x38 \
                           (kernel/hello.c:75)\n";
        assert_eq!(
            first_report(diff_frames).as_deref(),
            Some(
                "BUG: KASAN: slab-out-of-bounds in string+0xdd/0x1e0 (lib/vsprintf.c:646) at \
                 __se_sys_hello.cold+0x11/0x38 (kernel/hello.c:75)"
            )
        );
        // The same report printed whole later (another test's finish())
        // names the line in hello.c, which the diff cannot: it wins.
        let uaf_diff = "    3     3 │+<3>BUG: KASAN: slab-use-after-free in string+0xe1/0x1e0\n";
        assert_eq!(
            first_report(&format!("{uaf_diff}{output}")).as_deref(),
            Some(
                "BUG: KASAN: slab-use-after-free in string+0xe1/0x1e0 (lib/vsprintf.c:646) \
                 at __se_sys_hello.cold+0x32/0x39 (kernel/hello.c:78)"
            )
        );
        // A report of another kind does not: it is another bug.
        assert_eq!(
            first_report(&format!("{diff}{output}")).as_deref(),
            Some("BUG: KASAN: slab-out-of-bounds in string+0xdd/0x1e0")
        );
        // Pretty-printed (`{:#?}`): a string a line, frames included.
        let pretty =
            "  left: [\n    \"BUG: KASAN: slab-use-after-free in string+0xe1/0x1e0\",\n    \
                      \" __se_sys_hello.cold+0x32/0x39 (kernel/hello.c:78)\",\n]\n";
        assert_eq!(
            first_report(pretty).as_deref(),
            Some(
                "BUG: KASAN: slab-use-after-free in string+0xe1/0x1e0 at \
                 __se_sys_hello.cold+0x32/0x39 (kernel/hello.c:78) (in the log an assertion \
                 compared)"
            )
        );
        // Another report than the memory checkers': its title from its
        // marker, not from the start of the quoting line.
        let warn = "  left: [\"WARNING: CPU: 0 PID: 31 at kernel/hello.c:60 sys_hello+0x1/0x2\"]\n";
        assert_eq!(
            first_report(warn).as_deref(),
            Some(
                "WARNING: CPU: 0 PID: 31 at kernel/hello.c:60 sys_hello+0x1/0x2 (in the log an \
                 assertion compared)"
            )
        );
        let in_message = "assertion `left == right` failed: [Record { text: \"BUG: KASAN: \
                          slab-out-of-bounds in string+0xdd/0x1e0\" }]\n";
        assert_eq!(
            first_report(in_message).as_deref(),
            Some("BUG: KASAN: slab-out-of-bounds in string+0xdd/0x1e0 (in the log an assertion compared)")
        );
        let quoted = "  left: [\"hello, abi\", \"[    0.16] [T30] BUG: KASAN: \
                      slab-out-of-bounds in sys_hello+0x1/0x2 (kernel/hello.c:70)\", \
                      \"Write of size 1\"]\n right: [\"hello, abi\"]\n";
        assert_eq!(
            first_report(quoted).as_deref(),
            Some(
                "BUG: KASAN: slab-out-of-bounds in sys_hello+0x1/0x2 (kernel/hello.c:70) \
                 (in the log an assertion compared)"
            )
        );
        let quoted_frame = "  left: [\"BUG: KASAN: slab-use-after-free in string+0xe1/0x1e0\", \
                            \" __se_sys_hello.cold+0x32/0x39 (kernel/hello.c:78)\"]\n";
        assert_eq!(
            first_report(quoted_frame).as_deref(),
            Some(
                "BUG: KASAN: slab-use-after-free in string+0xe1/0x1e0 at \
                 __se_sys_hello.cold+0x32/0x39 (kernel/hello.c:78) (in the log an assertion \
                 compared)"
            )
        );
        assert_eq!(
            first_report(&format!("{quoted}{ubsan}")).as_deref(),
            Some("UBSAN: shift-out-of-bounds in kernel/hello.c:59:24")
        );
    }
}
