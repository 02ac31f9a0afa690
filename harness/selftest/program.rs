//! kselftest programs, unmodified, compiled at run time and run against
//! the library kernel: `cargo run --release -- selftest PATH`.
//!
//! A program (one `.c` file, or the programs of a selftest directory with
//! its helper sources) is compiled against this kernel's UAPI headers
//! (`__NR_*` are the library kernel's numbers) and kselftest's own headers
//! (`kselftest.h`, `kselftest_harness.h`) from the kernel tree. Its
//! references to `syscall()` and to the libc wrappers of file, time and
//! identity calls are renamed to the wrappers of `harness/glue/ksft_shim.c`
//! (`objcopy --redefine-syms`), which enter the library kernel. The result
//! is a shared object, cached by the digest of everything that went into
//! it.
//!
//! It runs in a runner process of its own (`lkl-harness __selftest-exec`),
//! which loads it and calls its `main()`: the program and the kernel share
//! that process, as the rest of this crate does, but the program's `exit()`,
//! signals and `fork()` are a real process's. Each process boots a fresh
//! kernel at its first system call, so a `kselftest_harness.h` program,
//! which forks a child per test (and a grandchild per fixture), gives every
//! test a fresh kernel. A process forked *after* it booted a kernel has no
//! kernel (its host threads did not survive the fork): its system calls
//! fail with `ENOSYS`, and it says so on stderr.
//!
//! Each process hands its kernel's log to the runner's log file before it
//! exits, and every kernel report in it (WARN, BUG, KASAN, lockdep, ...)
//! fails the run.

use std::collections::BTreeSet;
use std::ffi::{c_char, c_int, c_long, CString};
use std::fs;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::errno::Errno;
use crate::kernel::{BootOptions, Kernel};

/// The C wrappers linked into every program.
const SHIM: &str = include_str!("../glue/ksft_shim.c");

/// Compiler flags for the program's sources. kselftest's `lib.mk` adds
/// the installed UAPI headers with `-isystem`; so does this.
const CFLAGS: &[&str] = &["-g", "-O1", "-fPIC", "-U_FORTIFY_SOURCE", "-Wall"];

/// Where the program's constructors (`.init_array`) go, so that they run
/// when the runner calls them rather than inside `dlopen()`, where the
/// loader's lock is held and a kernel cannot boot.
const CONSTRUCTORS: &str = "lkl_ksft_init";

/// The header a program that uses `errno` without including it gets.
pub const SUPPLIED_ERRNO: &str = "errno.h";

/// kselftest's exit statuses (`kselftest.h`).
pub const KSFT_PASS: i32 = 0;
/// The program failed.
pub const KSFT_FAIL: i32 = 1;
/// The program skipped its tests: this kernel lacks what they need.
pub const KSFT_SKIP: i32 = 4;

/// Why a selftest could not be compiled or run (a failing test is a
/// report, not an error).
#[derive(Debug, thiserror::Error)]
pub enum SelftestError {
    /// No program at the path, or no C source in the directory.
    #[error("{0}")]
    NotFound(String),
    /// The compiler or linker refused the program: its messages.
    #[error("compiling {program} failed:\n{message}")]
    Compile {
        /// The program's name.
        program: String,
        /// What the compiler said, and the command.
        message: String,
    },
    /// The runner could not be started, or a file could not be written.
    #[error("{0}")]
    Setup(String),
}

/// How to run selftest programs.
#[derive(Clone, Debug)]
pub struct SelftestOptions {
    /// The `lkl-harness` executable that runs programs
    /// (`__selftest-exec`); see [`runner`].
    pub runner: PathBuf,
    /// The kernel library to boot (a seeded kernel, see
    /// [`crate::seeded::build`]), or `None` for the kernel linked into
    /// the runner.
    pub library: Option<PathBuf>,
    /// Memory, CPUs and command line of every kernel the program boots.
    pub boot: BootOptions,
    /// How long a program may run before it is killed and failed.
    pub timeout: Duration,
    /// Arguments for the program (kselftest_harness takes `-t TEST`,
    /// `-f FIXTURE`, `-l` ...).
    pub args: Vec<String>,
}

impl SelftestOptions {
    /// Defaults with `runner`: the linked kernel, default boot options, a
    /// timeout of 60 s, no arguments.
    pub fn new(runner: PathBuf) -> SelftestOptions {
        SelftestOptions {
            runner,
            library: None,
            boot: BootOptions::default(),
            timeout: Duration::from_secs(60),
            args: Vec::new(),
        }
    }
}

/// The `lkl-harness` executable to run programs with: `LKL_HARNESS_BIN`,
/// this executable if it is `lkl-harness`, or `lkl-harness` beside it or
/// one directory up (where cargo puts it for a test binary in `deps/`).
pub fn runner() -> Result<PathBuf, SelftestError> {
    if let Some(path) = std::env::var_os("LKL_HARNESS_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe()
        .map_err(|e| SelftestError::Setup(format!("cannot find this executable: {e}")))?;
    if exe.file_name().is_some_and(|n| n == "lkl-harness") {
        return Ok(exe);
    }
    let dir = exe.parent().unwrap_or(Path::new("."));
    for candidate in [dir.join("lkl-harness"), dir.join("../lkl-harness")] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(SelftestError::Setup(format!(
        "cannot find the lkl-harness executable beside {}: build it (cargo build) or set \
         LKL_HARNESS_BIN to its path",
        exe.display()
    )))
}

/// A compiled program.
#[derive(Clone, Debug, Serialize)]
pub struct Program {
    /// Its name: the main source's file stem (`hello_test`).
    pub name: String,
    /// Its sources: the one with `main()` first, then helpers.
    pub sources: Vec<PathBuf>,
    /// The shared object the runner loads.
    pub object: PathBuf,
    /// What the build did that the user should know, such as a header it
    /// supplied.
    pub notes: Vec<String>,
    /// Whether the object came from the cache.
    pub cached: bool,
    /// Time spent compiling (0 when cached).
    pub compile_seconds: f64,
}

/// The programs at `path`: a `.c` file is one program; a directory's
/// programs are the `TEST_GEN_PROGS` and `TEST_GEN_PROGS_EXTENDED` of its
/// Makefile that have a `.c` file, or else every `.c` file with a
/// `main()` or `TEST_HARNESS_MAIN`. Its other `.c` files are helpers,
/// linked into each program.
pub fn programs_in(path: &Path) -> Result<Vec<(String, Vec<PathBuf>)>, SelftestError> {
    if path.is_file() {
        // One program of a selftest directory gets the directory's
        // helpers; a lone file is a program on its own.
        let dir = path.parent().unwrap_or(Path::new("."));
        let name = stem(path);
        if dir.join("Makefile").is_file() {
            if let Ok(programs) = programs_in(dir) {
                if let Some(found) = programs.into_iter().find(|(n, _)| *n == name) {
                    return Ok(vec![found]);
                }
            }
        }
        return Ok(vec![(name, vec![path.to_path_buf()])]);
    }
    if !path.is_dir() {
        return Err(SelftestError::NotFound(format!(
            "no selftest at {}: give a .c file or a selftest directory",
            path.display()
        )));
    }
    let mut sources: Vec<PathBuf> = fs::read_dir(path)
        .map_err(|e| SelftestError::NotFound(format!("cannot read {}: {e}", path.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "c"))
        .collect();
    sources.sort();
    let listed = makefile_programs(&path.join("Makefile"));
    let has_main = |p: &PathBuf| {
        fs::read_to_string(p).is_ok_and(|text| {
            text.contains("TEST_HARNESS_MAIN")
                || Regex::new(r"(?m)^\s*int\s+main\s*\(")
                    .expect("valid regex")
                    .is_match(&text)
        })
    };
    let mains: Vec<&PathBuf> = match &listed {
        Some(names) => sources
            .iter()
            .filter(|p| names.contains(&stem(p)))
            .collect(),
        None => sources.iter().filter(|p| has_main(p)).collect(),
    };
    let helpers: Vec<&PathBuf> = sources
        .iter()
        .filter(|p| !mains.contains(p) && !has_main(p))
        .collect();
    if mains.is_empty() {
        return Err(SelftestError::NotFound(format!(
            "no selftest program in {}: no .c file there has a main() or TEST_HARNESS_MAIN",
            path.display()
        )));
    }
    Ok(mains
        .into_iter()
        .map(|main| {
            let mut files = vec![main.clone()];
            files.extend(helpers.iter().map(|h| (*h).clone()));
            (stem(main), files)
        })
        .collect())
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The programs a kselftest Makefile builds (`TEST_GEN_PROGS :=` and
/// `+=`, with line continuations), or `None` without a Makefile.
fn makefile_programs(makefile: &Path) -> Option<BTreeSet<String>> {
    let text = fs::read_to_string(makefile).ok()?.replace("\\\n", " ");
    let assign =
        Regex::new(r"(?m)^\s*TEST_GEN_PROGS(?:_EXTENDED)?\s*[:+]?=(.*)$").expect("valid regex");
    let names: BTreeSet<String> = assign
        .captures_iter(&text)
        .flat_map(|c| {
            c[1].split_whitespace()
                .filter(|w| !w.contains('$'))
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    Some(names)
}

/// The libc functions the shim replaces: every `lkl_ksft_NAME()` it
/// defines.
pub fn wrapped_functions() -> Vec<String> {
    let def = Regex::new(r"(?m)^[a-z_][a-z_0-9 ]*[ *]lkl_ksft_(\w+)\(").expect("valid regex");
    let names: BTreeSet<String> = def
        .captures_iter(SHIM)
        .map(|c| c[1].to_string())
        .filter(|name| name != "constructors")
        .collect();
    names.into_iter().collect()
}

fn tool(name: &str) -> String {
    match name {
        "cc" => std::env::var("CC").unwrap_or_else(|_| "cc".into()),
        other => other.into(),
    }
}

fn run_tool(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    match cmd.output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "{}{}\n(command: {shown})",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        )),
        Err(e) => Err(format!(
            "cannot run {shown}: {e} (install gcc and binutils: apt-get install gcc binutils)"
        )),
    }
}

/// The headers a program is compiled against.
fn include_flags() -> Vec<String> {
    let selftests = Path::new(env!("LKL_SOURCE_TREE")).join("tools/testing/selftests");
    vec![
        "-isystem".into(),
        Path::new(env!("LKL_HEADERS")).display().to_string(),
        format!("-I{}", selftests.display()),
        // So that `#include "../kselftest.h"` works from outside the tree.
        format!("-I{}", selftests.join("kselftest").display()),
    ]
}

/// Compiles the program `name` from `sources` (main first), or takes it
/// from the cache.
pub fn compile(name: &str, sources: &[PathBuf]) -> Result<Program, SelftestError> {
    let started = Instant::now();
    let setup = |what: &str, path: &Path, e: std::io::Error| {
        SelftestError::Setup(format!("cannot {what} {}: {e}", path.display()))
    };
    let mut digest = Vec::new();
    digest.extend_from_slice(SHIM.as_bytes());
    digest.extend_from_slice(CFLAGS.join(" ").as_bytes());
    digest.extend_from_slice(include_flags().join(" ").as_bytes());
    for source in sources {
        let text = fs::read(source).map_err(|e| setup("read", source, e))?;
        digest.extend_from_slice(source.display().to_string().as_bytes());
        digest.extend_from_slice(&text);
    }
    let selftests = Path::new(env!("LKL_SOURCE_TREE")).join("tools/testing/selftests");
    for header in ["kselftest.h", "kselftest_harness.h"] {
        digest.extend_from_slice(&fs::read(selftests.join(header)).unwrap_or_default());
    }
    let unistd = Path::new(env!("LKL_HEADERS")).join("asm/unistd.h");
    digest.extend_from_slice(&fs::read(&unistd).unwrap_or_default());
    let generic = Path::new(env!("LKL_HEADERS")).join("asm-generic/unistd.h");
    digest.extend_from_slice(&fs::read(&generic).unwrap_or_default());
    let key = crate::kbuild::stable_hash(&digest);
    let root = Path::new(env!("LKL_CACHE_DIR")).join("selftests");
    let dir = root.join(format!("{name}-{key:016x}"));
    let object = dir.join(format!("{name}.so"));
    let notes_file = dir.join("notes.txt");
    if object.is_file() {
        let notes = fs::read_to_string(&notes_file)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect();
        return Ok(Program {
            name: name.into(),
            sources: sources.to_vec(),
            object,
            notes,
            cached: true,
            compile_seconds: 0.0,
        });
    }
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let tmp = root.join(format!(
        ".tmp-{name}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir_all(&tmp).map_err(|e| setup("create", &tmp, e))?;
    let result = compile_into(name, sources, &tmp);
    let notes = match result {
        Ok(notes) => notes,
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    fs::write(tmp.join("notes.txt"), notes.join("\n")).map_err(|e| setup("write", &tmp, e))?;
    if fs::rename(&tmp, &dir).is_err() {
        // Another process compiled it meanwhile: theirs is the same.
        let _ = fs::remove_dir_all(&tmp);
        if !object.is_file() {
            return Err(SelftestError::Setup(format!(
                "cannot move the compiled program to {}",
                dir.display()
            )));
        }
    }
    Ok(Program {
        name: name.into(),
        sources: sources.to_vec(),
        object,
        notes,
        cached: false,
        compile_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Compiles, renames and links into `dir`; returns the notes.
fn compile_into(name: &str, sources: &[PathBuf], dir: &Path) -> Result<Vec<String>, SelftestError> {
    let failed = |message: String| SelftestError::Compile {
        program: name.into(),
        message,
    };
    let mut notes = Vec::new();
    let mut extra: Vec<String> = Vec::new();
    let mut objects = Vec::new();
    let mut i = 0;
    while i < sources.len() {
        let source = &sources[i];
        let object = dir.join(format!("{i}-{}.o", stem(source)));
        let mut cmd = Command::new(tool("cc"));
        cmd.args(CFLAGS)
            .args(include_flags())
            .args(&extra)
            .arg("-c")
            .arg(source)
            .arg("-o")
            .arg(&object);
        match run_tool(&mut cmd) {
            Ok(()) => {}
            Err(message) if extra.is_empty() && undeclared_errno(&message) => {
                // The seed's own selftest uses errno without <errno.h>:
                // supply it, say so, and compile everything again.
                extra = vec!["-include".into(), SUPPLIED_ERRNO.into()];
                notes.push(format!(
                    "{} uses errno without #include <errno.h>: the runner supplied it \
                     (-include {SUPPLIED_ERRNO}); add the include before sending the test",
                    source.display()
                ));
                objects.clear();
                i = 0;
                continue;
            }
            Err(message) => return Err(failed(message)),
        }
        objects.push(object);
        i += 1;
    }
    let syms = dir.join("redefine-syms.txt");
    let lines: String = wrapped_functions()
        .iter()
        .map(|f| format!("{f} lkl_ksft_{f}\n"))
        .collect();
    fs::write(&syms, lines).map_err(|e| failed(format!("cannot write {}: {e}", syms.display())))?;
    for object in &objects {
        let mut cmd = Command::new("objcopy");
        cmd.arg(format!("--redefine-syms={}", syms.display()))
            .arg(format!("--rename-section=.init_array={CONSTRUCTORS}"))
            .arg(object);
        run_tool(&mut cmd).map_err(failed)?;
    }
    let shim_src = dir.join("ksft_shim.c");
    fs::write(&shim_src, SHIM)
        .map_err(|e| failed(format!("cannot write {}: {e}", shim_src.display())))?;
    let shim = dir.join("ksft_shim.o");
    let mut cmd = Command::new(tool("cc"));
    cmd.args(CFLAGS)
        .args(include_flags())
        .arg("-c")
        .arg(&shim_src)
        .arg("-o")
        .arg(&shim);
    run_tool(&mut cmd).map_err(failed)?;
    let mut cmd = Command::new(tool("cc"));
    cmd.arg("-shared")
        .arg("-o")
        .arg(dir.join(format!("{name}.so")))
        .args(&objects)
        .arg(&shim)
        .args(["-lpthread", "-lm"]);
    run_tool(&mut cmd).map_err(failed)?;
    Ok(notes)
}

/// Whether the compiler's `message` says `errno` is undeclared (in the
/// ASCII or the Unicode quotes of gcc's locale).
fn undeclared_errno(message: &str) -> bool {
    message.lines().any(|line| {
        line.contains("error:")
            && line.contains("undeclared")
            && ["'errno'", "\u{2018}errno\u{2019}", "`errno'"]
                .iter()
                .any(|q| line.contains(q))
    })
}

/// How the program's process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Exit {
    /// It exited with this status.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
    /// It ran past the timeout and was killed.
    TimedOut,
}

/// The result of one TAP test line (`ok`, `not ok`, with a directive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum CaseResult {
    /// `ok`.
    Pass,
    /// `not ok`.
    Fail,
    /// `ok ... # SKIP`.
    Skip,
    /// `ok ... # XFAIL`: a failure the test expects.
    Xfail,
}

/// One test of a program's TAP output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TapCase {
    /// Its number.
    pub number: usize,
    /// Its name (may be empty: `ksft_test_result_skip` without a name).
    pub name: String,
    /// Its result.
    pub result: CaseResult,
    /// The text after the directive (`# SKIP reason`).
    pub reason: String,
    /// The `#` lines printed since the previous result.
    pub diagnostics: Vec<String>,
}

/// The log of one kernel of the run (one per process that made a system
/// call).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProcessKernel {
    /// The host process that booted it.
    pub pid: i32,
    /// The status the process exited with, when it exited through
    /// `exit()` or `_exit()`.
    pub status: Option<i32>,
    /// The log, as `dmesg` prints it.
    pub dmesg: String,
    /// The kernel's reports (WARN, BUG, KASAN, ...), each in full.
    pub reports: Vec<String>,
    /// Set for a process forked after this process (the pid) booted its
    /// kernel: it had no kernel, and its system calls failed with
    /// `ENOSYS`.
    #[serde(default)]
    pub forked_from: Option<i32>,
}

/// The result of running one program.
#[derive(Clone, Debug, Serialize)]
pub struct SelftestReport {
    /// The program.
    pub program: Program,
    /// How its process ended.
    pub exit: Exit,
    /// Everything it printed (stdout and stderr as a terminal shows them).
    pub output: String,
    /// The TAP plan (`1..N`), if it printed one.
    pub plan: Option<usize>,
    /// The TAP results it printed.
    pub cases: Vec<TapCase>,
    /// Each kernel the run booted.
    pub kernels: Vec<ProcessKernel>,
    /// Time from start to exit.
    pub run_seconds: f64,
}

/// The verdict on a program, as `run_kselftest.sh` gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Verdict {
    /// It passed.
    Pass,
    /// It skipped: exit status 4 (`KSFT_SKIP`), and nothing failed.
    Skip,
    /// It failed (see [`SelftestReport::problems`]).
    Fail,
}

impl SelftestReport {
    /// Every reason this run did not pass, in words.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match self.exit {
            Exit::Code(KSFT_PASS) | Exit::Code(KSFT_SKIP) => {}
            Exit::Code(code) => problems.push(format!("it exited with status {code}")),
            Exit::Signal(sig) => problems.push(format!("signal {sig} killed it")),
            Exit::TimedOut => problems.push("it ran past the timeout and was killed".into()),
        }
        for case in self.cases.iter().filter(|c| c.result == CaseResult::Fail) {
            problems.push(format!("not ok {} {}", case.number, case.name));
        }
        if let Some(plan) = self.plan {
            if self.cases.len() < plan && self.exit != Exit::Code(KSFT_SKIP) {
                problems.push(format!(
                    "it planned {plan} tests and reported {}",
                    self.cases.len()
                ));
            }
        }
        let reports: usize = self.kernels.iter().map(|k| k.reports.len()).sum();
        if reports > 0 {
            problems.push(format!("the kernel reported {reports} bug(s)"));
        }
        let orphans: Vec<String> = self
            .kernels
            .iter()
            .filter(|k| k.forked_from.is_some())
            .map(|k| k.pid.to_string())
            .collect();
        if !orphans.is_empty() {
            problems.push(format!(
                "process(es) {} were forked after the kernel booted and had no kernel: their \
                 system calls failed with ENOSYS (fork() after a system call is not supported)",
                orphans.join(", ")
            ));
        }
        if self.kernels.is_empty() && self.exit != Exit::TimedOut {
            problems.push(
                "no system call reached the library kernel: the program ran without a kernel"
                    .into(),
            );
        }
        problems
    }

    /// Pass, skip or fail.
    pub fn verdict(&self) -> Verdict {
        if !self.problems().is_empty() {
            Verdict::Fail
        } else if self.exit == Exit::Code(KSFT_SKIP) {
            Verdict::Skip
        } else {
            Verdict::Pass
        }
    }

    /// Whether it passed (a skip is not a pass).
    pub fn passed(&self) -> bool {
        self.verdict() == Verdict::Pass
    }

    /// Counts of case results: pass, fail, skip, xfail.
    pub fn counts(&self) -> [usize; 4] {
        let count = |r| self.cases.iter().filter(|c| c.result == r).count();
        [
            count(CaseResult::Pass),
            count(CaseResult::Fail),
            count(CaseResult::Skip),
            count(CaseResult::Xfail),
        ]
    }

    /// The report for a terminal: the program's output, its kernels'
    /// reports in full, and a verdict line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let sources: Vec<String> = self
            .program
            .sources
            .iter()
            .map(|s| s.display().to_string())
            .collect();
        out.push_str(&format!(
            "selftest {} ({})\n",
            self.program.name,
            sources.join(", ")
        ));
        for note in &self.program.notes {
            out.push_str(&format!("note: {note}\n"));
        }
        for line in self.output.lines() {
            out.push_str(&format!("  {line}\n"));
        }
        for kernel in &self.kernels {
            for report in &kernel.reports {
                out.push_str(&format!(
                    "kernel report (process {}):\n{report}\n",
                    kernel.pid
                ));
            }
        }
        let [pass, fail, skip, xfail] = self.counts();
        let exit = match self.exit {
            Exit::Code(code) => format!("exit {code}"),
            Exit::Signal(sig) => format!("killed by signal {sig}"),
            Exit::TimedOut => "timed out".into(),
        };
        let verdict = match self.verdict() {
            Verdict::Pass => "PASS",
            Verdict::Skip => "SKIP",
            Verdict::Fail => "FAIL",
        };
        let compile = if self.program.cached {
            "compiled earlier".to_string()
        } else {
            format!("compiled in {:.2} s", self.program.compile_seconds)
        };
        out.push_str(&format!(
            "{verdict} {}: {exit}; {} case(s): {pass} pass, {fail} fail, {skip} skip, {xfail} xfail; \
             {} kernel(s); {compile}, ran in {:.2} s\n",
            self.program.name,
            self.cases.len(),
            self.kernels.len(),
            self.run_seconds
        ));
        for problem in self.problems() {
            out.push_str(&format!("  failed because {problem}\n"));
        }
        out
    }
}

/// Parses TAP/KTAP output: the plan and the results, each with the `#`
/// lines printed before it.
pub fn parse_tap(output: &str) -> (Option<usize>, Vec<TapCase>) {
    let result = Regex::new(r"^(not )?ok (\d+)\s*(?:- )?([^#]*?)\s*(?:#\s*(\w+)\s*(.*))?$")
        .expect("valid regex");
    let plan_re = Regex::new(r"^1\.\.(\d+)").expect("valid regex");
    let mut plan = None;
    let mut cases = Vec::new();
    let mut diagnostics = Vec::new();
    for line in output.lines() {
        let line = line.trim_end();
        if let Some(c) = plan_re.captures(line) {
            plan = c[1].parse().ok();
        } else if let Some(c) = result.captures(line) {
            let directive = c.get(4).map(|m| m.as_str().to_ascii_uppercase());
            let result = match (c.get(1).is_some(), directive.as_deref()) {
                (_, Some("SKIP")) => CaseResult::Skip,
                (_, Some("XFAIL")) => CaseResult::Xfail,
                (true, _) => CaseResult::Fail,
                (false, _) => CaseResult::Pass,
            };
            cases.push(TapCase {
                number: c[2].parse().unwrap_or(0),
                name: c[3].to_string(),
                result,
                reason: c.get(5).map(|m| m.as_str().to_string()).unwrap_or_default(),
                diagnostics: std::mem::take(&mut diagnostics),
            });
        } else if let Some(rest) = line.strip_prefix('#') {
            diagnostics.push(rest.trim_start().to_string());
        }
    }
    (plan, cases)
}

/// Compiles and runs every program at `path` (a `.c` file or a selftest
/// directory), one after the other.
pub fn run(path: &Path, options: &SelftestOptions) -> Result<Vec<SelftestReport>, SelftestError> {
    programs_in(path)?
        .into_iter()
        .map(|(name, sources)| {
            let program = compile(&name, &sources)?;
            run_program(&program, options)
        })
        .collect()
}

/// Runs a compiled program in a runner process of its own.
pub fn run_program(
    program: &Program,
    options: &SelftestOptions,
) -> Result<SelftestReport, SelftestError> {
    options
        .boot
        .validate()
        .map_err(|e| SelftestError::Setup(e.to_string()))?;
    let setup = |what: String| SelftestError::Setup(what);
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let logs = Path::new(env!("LKL_CACHE_DIR")).join("selftests/runs");
    fs::create_dir_all(&logs)
        .map_err(|e| setup(format!("cannot create {}: {e}", logs.display())))?;
    let log = logs.join(format!(
        "{}-{}-{}.jsonl",
        program.name,
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_file(&log);
    let (reader, writer) =
        std::io::pipe().map_err(|e| setup(format!("cannot make a pipe: {e}")))?;
    let writer2 = writer
        .try_clone()
        .map_err(|e| setup(format!("cannot make a pipe: {e}")))?;
    let mut cmd = Command::new(&options.runner);
    cmd.arg("__selftest-exec")
        .arg("--mem")
        .arg(options.boot.mem_mib.to_string())
        .arg("--cpus")
        .arg(options.boot.cpus.to_string())
        .arg("--cmdline")
        .arg(&options.boot.cmdline)
        .arg("--object")
        .arg(&program.object)
        .arg("--kernel-log")
        .arg(&log);
    if let Some(library) = &options.library {
        cmd.arg("--library").arg(library);
    }
    cmd.arg("--").arg(&program.name).args(&options.args);
    cmd.stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer2)
        .env_remove("LKL_ECHO");
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| {
        setup(format!(
            "cannot start the selftest runner {}: {e}",
            options.runner.display()
        ))
    })?;
    drop(cmd);
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let mut reader = reader;
        let mut bytes = Vec::new();
        let _ = reader.read_to_end(&mut bytes);
        let _ = tx.send(bytes);
    });
    let deadline = started + options.timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                // SAFETY: kill() with the child's process group id (it
                // leads a group of its own) touches no memory.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(setup(format!("cannot wait for the runner: {e}"))),
        }
    };
    let run_seconds = started.elapsed().as_secs_f64();
    // A test that left a process behind (one that made a process group of
    // its own) may hold the pipe open: do not wait for it long.
    let bytes = rx.recv_timeout(Duration::from_secs(2)).unwrap_or_default();
    let output = String::from_utf8_lossy(&bytes).into_owned();
    let exit = match status {
        None => Exit::TimedOut,
        Some(s) => {
            use std::os::unix::process::ExitStatusExt as _;
            match (s.code(), s.signal()) {
                (Some(code), _) => Exit::Code(code),
                (None, Some(sig)) => Exit::Signal(sig),
                (None, None) => Exit::Code(-1),
            }
        }
    };
    let kernels = fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<ProcessKernel>(line).ok())
        .collect();
    let _ = fs::remove_file(&log);
    let (plan, cases) = parse_tap(&output);
    Ok(SelftestReport {
        program: program.clone(),
        exit,
        output,
        plan,
        cases,
        kernels,
        run_seconds,
    })
}

/// What `__selftest-exec` was asked to do.
#[derive(Debug)]
pub struct ExecConfig {
    /// The program's shared object.
    pub object: PathBuf,
    /// Where each process appends its kernel's log (a JSON line).
    pub kernel_log: PathBuf,
    /// The kernel library to boot, or the linked kernel.
    pub library: Option<PathBuf>,
    /// Boot options of every kernel.
    pub boot: BootOptions,
    /// `argv`: the program's name, then its arguments.
    pub argv: Vec<String>,
}

static CONFIG: OnceLock<ExecConfig> = OnceLock::new();
static KERNEL: OnceLock<Kernel> = OnceLock::new();
/// The process that booted [`KERNEL`] (0: none yet).
static BOOT_PID: AtomicI32 = AtomicI32::new(0);
static BOOTING: Mutex<()> = Mutex::new(());
static HANDED_OVER: AtomicBool = AtomicBool::new(false);
static ORPHAN_WARNED: AtomicBool = AtomicBool::new(false);

fn pid() -> i32 {
    // SAFETY: getpid() has no preconditions.
    unsafe { libc::getpid() }
}

/// The kernel of this process, booted at its first system call.
fn kernel() -> Result<&'static Kernel, c_long> {
    let owner = BOOT_PID.load(Ordering::Acquire);
    if owner != 0 && owner != pid() {
        if !ORPHAN_WARNED.swap(true, Ordering::Relaxed) {
            append_kernel_log(&ProcessKernel {
                pid: pid(),
                status: None,
                dmesg: String::new(),
                reports: Vec::new(),
                forked_from: Some(owner),
            });
            eprintln!(
                "lkl-harness selftest: process {} was forked after process {owner} booted its \
                 kernel; a forked process has no kernel (the kernel's host threads do not survive \
                 fork()), so its system calls fail with ENOSYS",
                pid()
            );
        }
        return Err(-c_long::from(Errno::ENOSYS.0));
    }
    if let Some(kernel) = KERNEL.get() {
        return Ok(kernel);
    }
    let _booting = BOOTING.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(kernel) = KERNEL.get() {
        return Ok(kernel);
    }
    let config = CONFIG.get().expect("set before main()");
    let booted = match &config.library {
        Some(library) => Kernel::boot_library(library, config.boot.clone()),
        None => Kernel::boot_linked(config.boot.clone()),
    };
    let kernel = match booted {
        Ok(kernel) => kernel,
        Err(e) => {
            eprintln!("lkl-harness selftest: cannot boot the kernel: {e}");
            // SAFETY: _exit() ends the process; no Rust state outlives it.
            unsafe { libc::_exit(125) };
        }
    };
    reserve_stdio(&kernel);
    prepare_files(&kernel);
    BOOT_PID.store(pid(), Ordering::Release);
    let _ = KERNEL.set(kernel);
    Ok(KERNEL.get().expect("just set"))
}

/// Takes the kernel's descriptors 0, 1 and 2, so that the program's own
/// files are 3 and up, as in a process with stdin, stdout and stderr
/// (those three stay the host's).
fn reserve_stdio(kernel: &Kernel) {
    let root = c"/";
    for _ in 0..3 {
        let args = [
            crate::sys::AT_FDCWD as i64,
            root.as_ptr() as i64,
            i64::from(crate::sys::O_PATH | crate::sys::O_CLOEXEC),
            0,
        ];
        // SAFETY: openat() reads the NUL-terminated path, a static.
        let fd = unsafe { kernel.syscall_raw(crate::sys::__NR_openat, &args) };
        if !(0..2).contains(&fd) {
            break;
        }
    }
}

/// What a selftest expects of a system's files, as a minimal init makes
/// them: `/dev` with `null`, `zero`, `full`, `random`, `urandom` and
/// `shm/`, `/proc` mounted, and a world-writable `/tmp`. What this
/// kernel's configuration cannot give is left out; the program then
/// fails or skips as it would on such a system.
fn prepare_files(kernel: &Kernel) {
    let mkdir = |path: &std::ffi::CStr, mode: u32| {
        let _ = kernel.mkdir(path, mode);
    };
    mkdir(c"/dev", 0o755);
    mkdir(c"/dev/shm", 0o1777);
    mkdir(c"/proc", 0o555);
    mkdir(c"/tmp", 0o1777);
    let nodes: [(&std::ffi::CStr, u32, u32); 5] = [
        (c"/dev/null", 1, 3),
        (c"/dev/zero", 1, 5),
        (c"/dev/full", 1, 7),
        (c"/dev/random", 1, 8),
        (c"/dev/urandom", 1, 9),
    ];
    for (path, major, minor) in nodes {
        let args = [
            crate::sys::AT_FDCWD as i64,
            path.as_ptr() as i64,
            i64::from(libc::S_IFCHR | 0o666),
            i64::from((major << 8) | minor),
        ];
        // SAFETY: mknodat() reads the NUL-terminated path, a static.
        let _ = unsafe { kernel.syscall_raw(crate::sys::__NR_mknodat, &args) };
    }
    let _ = kernel.mount(c"proc", c"/proc", c"proc", 0);
    // /tmp is a mount of its own, as selftests expect (openat2's make it
    // private); tmpfs is ramfs without CONFIG_SHMEM.
    if kernel.mount(c"tmpfs", c"/tmp", c"tmpfs", 0).is_err() {
        let _ = kernel.mount(c"ramfs", c"/tmp", c"ramfs", 0);
    }
    // Whatever the task's umask, make /tmp's mode exact.
    let args = [
        crate::sys::AT_FDCWD as i64,
        c"/tmp".as_ptr() as i64,
        0o1777,
        0,
    ];
    // SAFETY: fchmodat() reads the NUL-terminated path, a static.
    let _ = unsafe { kernel.syscall_raw(crate::sys::__NR_fchmodat, &args) };
}

/// One system call of the program: the shim's `lkl_ksft_route`, exported
/// from the `lkl-harness` executable (build.rs) so that the program
/// resolves it when it is loaded, before its constructors run.
///
/// # Safety
///
/// `args` must point at six readable `long`s, and the pointers among them
/// must be valid for what the system call does with them, as for a real
/// system call.
#[no_mangle]
pub unsafe extern "C" fn lkl_ksft_route(nr: c_long, args: *const c_long) -> c_long {
    let kernel = match kernel() {
        Ok(kernel) => kernel,
        Err(errno) => return errno,
    };
    let Ok(nr) = u32::try_from(nr) else {
        return -c_long::from(Errno::ENOSYS.0);
    };
    // SAFETY: the shim passes its array of six longs (our contract).
    let args: [i64; 6] = unsafe { args.cast::<[i64; 6]>().read() };
    let call = || {
        // SAFETY: the arguments are the C program's own, made from its own
        // memory, as with a real system call: Rust owns none of it.
        unsafe { kernel.syscall_raw(nr, &args) }
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)) {
        Ok(ret) => ret,
        Err(_) => {
            // The kernel panicked or halted: its log says why. A panic
            // must not unwind into C.
            hand_over(None);
            // SAFETY: _exit() ends the process.
            unsafe { libc::_exit(KSFT_FAIL) }
        }
    }
}

/// The shim's `lkl_ksft_exit_hook`: the program calls `_exit(status)`,
/// or `abort()` (status -1).
#[no_mangle]
pub extern "C" fn lkl_ksft_exit_hook(status: c_int) {
    hand_over((status >= 0).then_some(status));
}

/// `atexit()`: the program returned from `main()` or called `exit()`.
extern "C" fn at_exit() {
    hand_over(None);
}

/// Appends this process's kernel log to the run's log file, once.
fn hand_over(status: Option<i32>) {
    if BOOT_PID.load(Ordering::Acquire) != pid() || HANDED_OVER.swap(true, Ordering::AcqRel) {
        return;
    }
    let Some(kernel) = KERNEL.get() else {
        return;
    };
    if cfg!(lkl_kernel = "debug") {
        // Leaks the program's calls made: kmemleak confirms them into
        // the log.
        let _ = kernel.scan_for_leaks();
    }
    let dmesg = kernel.dmesg();
    let lines: Vec<String> = dmesg.lines().map(String::from).collect();
    append_kernel_log(&ProcessKernel {
        pid: pid(),
        status,
        reports: crate::check::reports(&lines),
        dmesg,
        forked_from: None,
    });
}

/// Appends `entry` to the run's log file, as one line (an `O_APPEND`
/// write: processes do not interleave).
fn append_kernel_log(entry: &ProcessKernel) {
    let Some(config) = CONFIG.get() else {
        return;
    };
    let mut line = serde_json::to_string(entry).unwrap_or_default();
    line.push('\n');
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&config.kernel_log);
    if let Ok(mut file) = file {
        let _ = file.write_all(line.as_bytes());
    }
}

/// The runner process: loads the program, calls its `main()`, exits with
/// its status.
pub fn exec(config: ExecConfig) -> ! {
    let fail = |message: String| -> ! {
        eprintln!("lkl-harness selftest: {message}");
        std::process::exit(125)
    };
    if CONFIG.set(config).is_err() {
        fail("the runner was started twice".into());
    }
    let config = CONFIG.get().expect("just set");
    // SAFETY: loading the program runs no code of it but its constructors
    // (a kselftest program's, such as kselftest_harness's registration of
    // tests), which is what running it means.
    let library = match unsafe { libloading::Library::new(&config.object) } {
        Ok(library) => library,
        Err(e) => fail(format!("cannot load {}: {e}", config.object.display())),
    };
    type Main = unsafe extern "C" fn(c_int, *mut *mut c_char, *mut *mut c_char) -> c_int;
    // SAFETY: `main` is the program's main(), with this type.
    let main = match unsafe { library.get::<Main>(b"main\0") } {
        Ok(symbol) => *symbol,
        Err(e) => fail(format!("{} has no main(): {e}", config.object.display())),
    };
    type Constructors = unsafe extern "C" fn(c_int, *mut *mut c_char, *mut *mut c_char);
    // SAFETY: the shim's lkl_ksft_constructors(), with this type.
    let constructors = match unsafe { library.get::<Constructors>(b"lkl_ksft_constructors\0") } {
        Ok(symbol) => *symbol,
        Err(e) => fail(format!("{} has no shim: {e}", config.object.display())),
    };
    // SAFETY: at_exit is an extern "C" fn that never unwinds.
    if unsafe { libc::atexit(at_exit) } != 0 {
        fail("atexit() failed".into());
    }
    let args: Vec<CString> = config
        .argv
        .iter()
        .map(|a| CString::new(a.as_str()).unwrap_or_default())
        .collect();
    let mut argv: Vec<*mut c_char> = args.iter().map(|a| a.as_ptr().cast_mut()).collect();
    argv.push(std::ptr::null_mut());
    extern "C" {
        static mut environ: *mut *mut c_char;
    }
    // SAFETY: argv is a NULL-terminated array of NUL-terminated strings
    // that live until exit (args is never dropped: exit() does not
    // return); environ is libc's. The constructors run first, as they
    // would before a C main().
    let status = unsafe {
        constructors(args.len() as c_int, argv.as_mut_ptr(), environ);
        main(args.len() as c_int, argv.as_mut_ptr(), environ)
    };
    std::mem::forget(library);
    let _ = std::io::stdout().flush();
    // SAFETY: exit() runs the program's atexit handlers and ours, and
    // flushes its stdio, as returning from a C main() does.
    unsafe { libc::exit(status) }
}
