//! Coverage of the kernel code under test: which lines and branches of
//! the files the patches change did the tests run?
//!
//! A coverage kernel ([`Spec::coverage`]) compiles those files (see
//! [`crate::kbuild::Cache::covered_files`]) twice instrumented:
//!
//! - with the kernel's gcov (`CONFIG_GCOV_KERNEL`): before each kernel
//!   halts during a coverage run, [`gcov::save`] reads its counters from
//!   its own debugfs; [`run`] sums those of every kernel of the run
//!   ([`gcov::merge`]) and gcc's `gcov` turns them into lines and
//!   branches ([`gcov::report`]), exact and counted;
//! - with gcc's `-fsanitize-coverage=trace-pc`: every basic block calls
//!   the arch port, which hands it to [`lkl_sim::coverage`], per thread;
//!   [`Map::load`] lists every instrumented block of the library. This is
//!   a fuzzer's feedback: which blocks did this one call run?
//!
//! [`Report::render`] lists the lines never reached like a compiler's
//! diagnostics, [`Report::lcov`] writes an lcov tracefile for genhtml and
//! editors. `lkl-harness coverage` ([`run`]) does it all for a whole
//! `cargo test` run.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use object::{Object, ObjectSection, ObjectSymbol};

use crate::kbuild::{Spec, Variant};

/// The callback gcc calls at every instrumented block.
const CALLBACK: &str = "__sanitizer_cov_trace_pc";

/// One instrumented basic block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    /// What the kernel reports for it: its call's return address, as an
    /// offset from `_stext`.
    pub offset: u32,
    /// The function it is in (the outermost, when inlined).
    pub function: String,
    /// Where the line tables put the block, innermost (an inlined
    /// helper's) first, the compiled file's last; paths relative to the
    /// kernel tree. The compiler gives the callback no line of its own, so
    /// the innermost line is the nearest row's and can be a neighbour's:
    /// for line coverage use gcov ([`gcov`]), which is exact.
    pub lines: Vec<(String, u32)>,
}

impl Site {
    /// The file the block was compiled in (its outermost frame's).
    pub fn unit(&self) -> Option<&str> {
        self.lines.last().map(|(f, _)| f.as_str())
    }
}

/// Every instrumented block of a kernel library.
#[derive(Clone, Debug)]
pub struct Map {
    /// The library.
    pub library: PathBuf,
    /// Its blocks, by offset.
    pub sites: Vec<Site>,
}

impl Map {
    /// Reads `library` (a `liblkl.so` of a coverage kernel): scans its code
    /// for the calls to `__sanitizer_cov_trace_pc` and looks up their lines.
    pub fn load(library: &Path) -> Result<Map, String> {
        let data = std::fs::read(library)
            .map_err(|e| format!("cannot read {}: {e}", library.display()))?;
        let file = object::File::parse(&*data)
            .map_err(|e| format!("cannot parse {}: {e}", library.display()))?;
        let symbol = |name: &str| {
            file.symbols()
                .find(|s| s.name() == Ok(name))
                .map(|s| s.address())
        };
        let Some(callback) = symbol(CALLBACK) else {
            return Err(format!(
                "{} has no {CALLBACK}: it is not a coverage kernel (build it with \
                 Spec::with_coverage, or run `lkl-harness coverage`)",
                library.display()
            ));
        };
        let stext = symbol("_stext")
            .ok_or_else(|| format!("{} has no _stext symbol", library.display()))?;
        let text = file
            .section_by_name(".text")
            .ok_or_else(|| format!("{} has no .text", library.display()))?;
        let code = text
            .data()
            .map_err(|e| format!("cannot read .text of {}: {e}", library.display()))?;
        let base = text.address();
        let loader = addr2line::Loader::new(library)
            .map_err(|e| format!("cannot read the line tables of {}: {e}", library.display()))?;
        let tree = std::fs::canonicalize(env!("LKL_SOURCE_TREE"))
            .unwrap_or_else(|_| PathBuf::from(env!("LKL_SOURCE_TREE")));
        let mut sites = Vec::new();
        // `call rel32` (e8) whose target is the callback. A match that is
        // not an instruction would also need the exact 32-bit displacement
        // and line information; none has been seen.
        for at in 0..code.len().saturating_sub(4) {
            if code[at] != 0xe8 {
                continue;
            }
            let rel = i32::from_le_bytes([code[at + 1], code[at + 2], code[at + 3], code[at + 4]]);
            let call = base + at as u64;
            let ret = call + 5;
            if ret.wrapping_add(rel as i64 as u64) != callback {
                continue;
            }
            let mut lines = Vec::new();
            let mut function = String::new();
            if let Ok(mut frames) = loader.find_frames(ret) {
                while let Ok(Some(frame)) = frames.next() {
                    if let Some(name) = frame.function.as_ref().and_then(|n| n.demangle().ok()) {
                        function = name.into_owned();
                    }
                    if let Some(loc) = frame.location {
                        if let (Some(f), Some(l)) = (loc.file, loc.line) {
                            lines.push((relative(&tree, f), l));
                        }
                    }
                }
            }
            // gcov's constructors (`_sub_I_*`, run once at boot) are not
            // the code under test.
            let symbol = loader.find_symbol(call).unwrap_or_default();
            if lines.is_empty() || symbol.starts_with("_sub_I_") || symbol.starts_with("_sub_D_") {
                continue;
            }
            if function.is_empty() {
                function = symbol.to_string();
            }
            let offset = u32::try_from(ret - stext)
                .map_err(|_| format!("a block of {} is 4 GiB past _stext", library.display()))?;
            sites.push(Site {
                offset,
                function,
                lines,
            });
        }
        if sites.is_empty() {
            return Err(format!(
                "{} calls {CALLBACK} from no code with line tables: were the files under test \
                 compiled with `{}`?",
                library.display(),
                crate::kbuild::COVERAGE_CFLAGS
            ));
        }
        Ok(Map {
            library: library.to_path_buf(),
            sites,
        })
    }
}

/// `path` relative to the kernel tree (DWARF has it absolute, or relative
/// to the build directory as `../tree/kernel/hello.c`).
fn relative(tree: &Path, path: &str) -> String {
    let p = Path::new(path);
    if let Ok(rest) = p.strip_prefix(tree) {
        return rest.display().to_string();
    }
    if let Ok(c) = std::fs::canonicalize(p) {
        if let Ok(rest) = c.strip_prefix(tree) {
            return rest.display().to_string();
        }
    }
    path.trim_start_matches("./").to_string()
}

/// The coverage of one source file, from gcov.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileReport {
    /// Relative to the kernel tree: `kernel/hello.c`.
    pub file: String,
    /// Every line with code: how often it ran, and its branches.
    pub lines: BTreeMap<u32, gcov::Line>,
    /// The lines the patches add, when they change a file they did not
    /// create: uncovered lines are listed only among these.
    pub patch_lines: Option<BTreeSet<u32>>,
    /// Functions: first line and times called.
    pub functions: BTreeMap<String, (u32, u64)>,
}

impl FileReport {
    /// `(lines run, lines with code)`.
    pub fn line_counts(&self) -> (usize, usize) {
        (
            self.lines.values().filter(|l| l.count > 0).count(),
            self.lines.len(),
        )
    }

    /// `(branches taken, branches)`.
    pub fn branch_counts(&self) -> (usize, usize) {
        let all = self.lines.values().flat_map(|l| &l.branches);
        (all.clone().filter(|&&c| c > 0).count(), all.count())
    }

    /// The lines with code that never ran, among the patch's lines when
    /// the patches only change this file.
    pub fn uncovered(&self) -> Vec<u32> {
        self.lines
            .iter()
            .filter(|(l, line)| {
                line.count == 0 && self.patch_lines.as_ref().is_none_or(|p| p.contains(l))
            })
            .map(|(&l, _)| l)
            .collect()
    }

    /// The lines that ran but have a branch never taken (same filter).
    pub fn partial(&self) -> Vec<(u32, usize, usize)> {
        self.lines
            .iter()
            .filter(|(l, _)| self.patch_lines.as_ref().is_none_or(|p| p.contains(l)))
            .filter_map(|(&l, line)| {
                let taken = line.branches.iter().filter(|&&c| c > 0).count();
                (line.count > 0 && taken < line.branches.len()).then_some((
                    l,
                    taken,
                    line.branches.len(),
                ))
            })
            .collect()
    }
}

/// Which lines and branches of the files under test ran.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// One per file under test, in order.
    pub files: Vec<FileReport>,
    /// Files under test that are not instrumented or not built, with the
    /// reason (`not instrumented: ...`, `not built ...`).
    pub not_instrumented: Vec<(String, String)>,
}

impl Report {
    /// The report of gcov's `sources`; `patch_lines` restricts the
    /// listing of files the patches change but did not create.
    pub fn new(
        sources: Vec<gcov::Source>,
        patch_lines: &BTreeMap<String, BTreeSet<u32>>,
    ) -> Report {
        Report {
            files: sources
                .into_iter()
                .map(|s| FileReport {
                    patch_lines: patch_lines.get(&s.file).cloned(),
                    file: s.file,
                    lines: s.lines,
                    functions: s.functions,
                })
                .collect(),
            not_instrumented: Vec::new(),
        }
    }

    /// How often `file:line` ran: `None` if it has no code.
    pub fn line(&self, file: &str, line: u32) -> Option<u64> {
        Some(
            self.files
                .iter()
                .find(|f| f.file == file)?
                .lines
                .get(&line)?
                .count,
        )
    }

    /// The summary, then every line never reached, with its source text
    /// read from `tree`, like a compiler's diagnostics:
    /// `kernel/hello.c:58: return -EINVAL;  never reached`; then the lines
    /// with a branch never taken.
    pub fn render(&self, tree: &Path) -> String {
        let mut out = String::new();
        let width = self
            .files
            .iter()
            .map(|f| f.file.len())
            .chain(self.not_instrumented.iter().map(|(f, _)| f.len()))
            .max()
            .unwrap_or(4)
            .max(4);
        let _ = writeln!(
            out,
            "{:width$}  {:>16}  {:>16}",
            "file", "lines", "branches"
        );
        for f in &self.files {
            let (hit, total) = f.line_counts();
            let (taken, branches) = f.branch_counts();
            let _ = writeln!(
                out,
                "{:width$}  {:>16}  {:>16}",
                f.file,
                ratio(hit, total),
                ratio(taken, branches),
            );
        }
        for (file, why) in &self.not_instrumented {
            let _ = writeln!(out, "{file:width$}  {why}");
        }
        for f in &self.files {
            let uncovered = f.uncovered();
            let partial = f.partial();
            if uncovered.is_empty() && partial.is_empty() {
                continue;
            }
            let source = std::fs::read_to_string(tree.join(&f.file)).unwrap_or_default();
            let text: Vec<&str> = source.lines().collect();
            let code = |line: u32| {
                text.get(line as usize - 1)
                    .map(|s| s.trim())
                    .unwrap_or("?")
                    .to_string()
            };
            let among = if f.patch_lines.is_some() {
                " (among the lines the patches add)"
            } else {
                ""
            };
            if !uncovered.is_empty() {
                let _ = writeln!(
                    out,
                    "\n{}: {} line{} never reached{among}:",
                    f.file,
                    uncovered.len(),
                    if uncovered.len() == 1 { "" } else { "s" },
                );
                for line in uncovered {
                    let _ = writeln!(out, "{}:{line}: {}  never reached", f.file, code(line));
                }
            }
            if !partial.is_empty() {
                let _ = writeln!(
                    out,
                    "\n{}: {} line{} with a branch never taken{among}:",
                    f.file,
                    partial.len(),
                    if partial.len() == 1 { "" } else { "s" },
                );
                for (line, taken, all) in partial {
                    let _ = writeln!(
                        out,
                        "{}:{line}: {}  {taken} of {all} branches taken",
                        f.file,
                        code(line)
                    );
                }
            }
        }
        out
    }

    /// An lcov tracefile: `SF` paths under `tree`, `FN`/`FNDA` per
    /// function, `DA` per line and `BRDA` per branch, with gcov's counts.
    pub fn lcov(&self, tree: &Path, test_name: &str) -> String {
        let mut out = String::new();
        for f in &self.files {
            let _ = writeln!(out, "TN:{test_name}");
            let _ = writeln!(out, "SF:{}", tree.join(&f.file).display());
            for (name, (line, _)) in &f.functions {
                let _ = writeln!(out, "FN:{line},{name}");
            }
            for (name, (_, count)) in &f.functions {
                let _ = writeln!(out, "FNDA:{count},{name}");
            }
            let _ = writeln!(out, "FNF:{}", f.functions.len());
            let _ = writeln!(
                out,
                "FNH:{}",
                f.functions.values().filter(|(_, c)| *c > 0).count()
            );
            for (line, l) in &f.lines {
                for (i, taken) in l.branches.iter().enumerate() {
                    // `-`: the line never ran, so neither did its branch.
                    let taken = if l.count == 0 {
                        "-".to_string()
                    } else {
                        taken.to_string()
                    };
                    let _ = writeln!(out, "BRDA:{line},0,{i},{taken}");
                }
            }
            let (taken, branches) = f.branch_counts();
            let _ = writeln!(out, "BRF:{branches}");
            let _ = writeln!(out, "BRH:{taken}");
            for (line, l) in &f.lines {
                let _ = writeln!(out, "DA:{line},{}", l.count);
            }
            let (hit, total) = f.line_counts();
            let _ = writeln!(out, "LF:{total}");
            let _ = writeln!(out, "LH:{hit}");
            let _ = writeln!(out, "end_of_record");
        }
        out
    }
}

fn ratio(hit: usize, total: usize) -> String {
    if total == 0 {
        return "-".to_string();
    }
    format!("{hit}/{total} {:5.1}%", 100.0 * hit as f64 / total as f64)
}

/// The lines each patch adds, in the final version of each file it
/// changes, for files the patches change but did not create (a created
/// file is all the patch's). Later patches move earlier ones' lines.
pub fn added_lines(patches: &[PathBuf]) -> Result<BTreeMap<String, BTreeSet<u32>>, String> {
    let mut added: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    let mut created: BTreeSet<String> = BTreeSet::new();
    for patch in patches {
        let text = std::fs::read_to_string(patch)
            .map_err(|e| format!("cannot read {}: {e}", patch.display()))?;
        for (file, new_file, hunks) in parse_patch(&text) {
            if new_file {
                created.insert(file.clone());
            }
            let old = added.remove(&file).unwrap_or_default();
            let mut lines = BTreeSet::new();
            // Earlier additions, moved by this patch's hunks (or dropped
            // when it removes them).
            for l in old {
                if let Some(m) = map_line(&hunks, l) {
                    lines.insert(m);
                }
            }
            for h in &hunks {
                lines.extend(h.added.iter().copied());
            }
            added.insert(file, lines);
        }
    }
    for f in created {
        added.remove(&f);
    }
    Ok(added)
}

/// One hunk: where it starts in the old and the new file, which old lines
/// it removes, keeps (old → new) and which new lines it adds.
struct Hunk {
    old_start: u32,
    old_len: u32,
    new_start: u32,
    new_len: u32,
    kept: Vec<(u32, u32)>,
    added: Vec<u32>,
}

/// The files of a git-format patch: name, whether created, hunks.
fn parse_patch(text: &str) -> Vec<(String, bool, Vec<Hunk>)> {
    let mut files: Vec<(String, bool, Vec<Hunk>)> = Vec::new();
    let mut from_null = false;
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix("--- ") {
            from_null = rest.trim() == "/dev/null";
            continue;
        }
        if let Some(rest) = line.strip_prefix("+++ ") {
            if let Some(name) = rest.split('\t').next().and_then(|p| p.strip_prefix("b/")) {
                files.push((name.to_string(), from_null, Vec::new()));
            }
            continue;
        }
        let Some(rest) = line.strip_prefix("@@ -") else {
            continue;
        };
        let Some((_, _, hunks)) = files.last_mut() else {
            continue;
        };
        let mut nums = rest.split(' ');
        let range = |s: Option<&str>| -> (u32, u32) {
            let s = s.unwrap_or("0").trim_start_matches('+');
            let mut p = s.split(',');
            let start = p.next().and_then(|n| n.parse().ok()).unwrap_or(0);
            let len = p.next().map_or(1, |n| n.parse().unwrap_or(0));
            (start, len)
        };
        let (old_start, old_len) = range(nums.next());
        let (new_start, new_len) = range(nums.next());
        let mut hunk = Hunk {
            old_start,
            old_len,
            new_start,
            new_len,
            kept: Vec::new(),
            added: Vec::new(),
        };
        let (mut o, mut n) = (old_start, new_start);
        while o < old_start + old_len || n < new_start + new_len {
            let Some(body) = lines.next() else { break };
            match body.chars().next() {
                Some('+') => {
                    hunk.added.push(n);
                    n += 1;
                }
                Some('-') => o += 1,
                Some('\\') => {}
                _ => {
                    hunk.kept.push((o, n));
                    o += 1;
                    n += 1;
                }
            }
        }
        hunks.push(hunk);
    }
    files
}

/// Where old line `l` is after `hunks`: `None` if they remove it.
fn map_line(hunks: &[Hunk], l: u32) -> Option<u32> {
    let mut shift: i64 = 0;
    for h in hunks {
        if l < h.old_start {
            break;
        }
        if l < h.old_start + h.old_len {
            return h.kept.iter().find(|(o, _)| *o == l).map(|(_, n)| *n);
        }
        shift = i64::from(h.new_start + h.new_len) - i64::from(h.old_start + h.old_len);
    }
    u32::try_from(i64::from(l) + shift).ok()
}

/// `lkl-harness coverage`: what it ran and what it wrote.
#[derive(Debug)]
pub struct Outcome {
    /// The coverage of the files under test.
    pub report: Report,
    /// The lcov tracefile.
    pub lcov: PathBuf,
    /// The HTML report, when genhtml is there.
    pub html: Option<PathBuf>,
    /// Whether every test passed.
    pub tests_passed: bool,
    /// Kernels whose counters were summed.
    pub kernels: usize,
}

/// Where `lkl-harness coverage` writes: `target/coverage`.
pub fn output_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/coverage")
}

/// Builds `variant`'s coverage kernel, runs `cargo test <test_args>`
/// against it (every kernel saves its gcov counters before it halts), sums
/// the counters and reports the coverage of the files under test.
pub fn run(variant: Variant, test_args: &[String]) -> Result<Outcome, String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let spec = Spec::of(variant).with_coverage();
    let library = crate::seeded::build(&spec)?;
    let cache = crate::seeded::cache();
    let out = output_dir();
    let data = out.join("data");
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).map_err(|e| format!("cannot create {}: {e}", data.display()))?;
    let target = crate::mutants::target_dir(manifest, variant);
    if variant != Variant::Default {
        crate::mutants::link_cache(&target)?;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(manifest).arg("test");
    // The coverage of the whole run, even when a test binary fails.
    if !test_args.iter().any(|a| a == "--no-fail-fast") {
        cmd.arg("--no-fail-fast");
    }
    cmd.args(test_args)
        .env("CARGO_TARGET_DIR", &target)
        .env("LKL_LIBRARY", &library)
        .env(COVERAGE_ENV, &data);
    if variant == Variant::Default {
        cmd.env_remove("LKL_KERNEL");
    } else {
        cmd.env("LKL_KERNEL", variant.name());
    }
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run cargo test: {e}"))?;
    let mut errors = String::new();
    for entry in std::fs::read_dir(&data).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().starts_with("errors-") {
            errors += &std::fs::read_to_string(entry.path()).unwrap_or_default();
        }
    }
    if !errors.is_empty() {
        return Err(format!(
            "some kernels' counters could not be saved:\n{errors}"
        ));
    }
    let (gcdas, kernels) = gcov::merged(&data)?;
    if kernels == 0 {
        return Err(format!(
            "no kernel of the run saved its counters: did `cargo test {}` boot any kernel with \
             Kernel::boot (kernels from boot_linked are the uninstrumented one linked in)?",
            test_args.join(" ")
        ));
    }
    let report = report_of(&spec, &gcdas)?;
    let tree = cache.source_dir();
    let lcov = out.join("lcov.info");
    std::fs::write(&lcov, report.lcov(&tree, "lkl_harness"))
        .map_err(|e| format!("cannot write {}: {e}", lcov.display()))?;
    let html = genhtml(&lcov, &out.join("html"));
    Ok(Outcome {
        report,
        lcov,
        html,
        tests_passed: status.success(),
        kernels,
    })
}

/// The report of `spec`'s coverage kernel from its summed counters
/// (as [`gcov::read_all`] names them).
pub fn report_of(spec: &Spec, gcdas: &BTreeMap<String, Vec<u8>>) -> Result<Report, String> {
    let cache = crate::seeded::cache();
    let build = cache.build_dir(spec);
    let build_key = std::fs::canonicalize(&build)
        .unwrap_or(build.clone())
        .display()
        .to_string();
    let build_key = build_key.trim_start_matches('/');
    let scratch = output_dir().join(format!("gcov-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let mut sources = Vec::new();
    let mut not_built = Vec::new();
    for file in cache.covered_files()? {
        let object = Path::new(&file).with_extension("o").display().to_string();
        let key = format!(
            "{build_key}/{}",
            Path::new(&file).with_extension("gcda").display()
        );
        let Some(gcda) = gcdas.get(&key) else {
            // Not compiled in this configuration: no kernel has its .gcda.
            not_built.push((
                file,
                "not built in the coverage kernel's configuration (the default one)".to_string(),
            ));
            continue;
        };
        sources.push(gcov::report(&build, &object, gcda, &scratch, &file)?);
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let mut report = Report::new(sources, &added_lines(&cache.patches()?)?);
    report.not_instrumented = cache
        .uncoverable_files()?
        .into_iter()
        .map(|(file, why)| (file, format!("not instrumented: {why}")))
        .chain(not_built)
        .collect();
    report.not_instrumented.sort();
    Ok(report)
}

/// The environment variable that makes every kernel the harness boots
/// save its gcov counters into that directory before it halts.
pub const COVERAGE_ENV: &str = "LKL_COVERAGE_OUT";

/// Runs genhtml (Debian's lcov; installed when root, as build tools are)
/// into `dir`; `None` (with a message on stderr) when it cannot.
fn genhtml(lcov: &Path, dir: &Path) -> Option<PathBuf> {
    if !crate::kbuild::have("genhtml") {
        if let Err(e) =
            crate::kbuild::ensure_packages(|m| eprintln!("lkl-harness: {m}"), vec!["lcov"])
        {
            eprintln!("lkl-harness: no HTML report: {e}");
            return None;
        }
    }
    let output = Command::new("genhtml")
        .arg("--quiet")
        .arg("--branch-coverage")
        .arg("--output-directory")
        .arg(dir)
        .arg(lcov)
        .output();
    match output {
        Ok(o) if o.status.success() => Some(dir.join("index.html")),
        Ok(o) => {
            eprintln!(
                "lkl-harness: genhtml failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            None
        }
        Err(e) => {
            eprintln!("lkl-harness: cannot run genhtml: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATCH: &str = "\
--- a/x.c
+++ b/x.c
@@ -2,3 +2,4 @@ ctx
 a
+new1
 b
 c
@@ -10,2 +11,1 @@
-gone
 keep
--- /dev/null
+++ b/y.c
@@ -0,0 +1,2 @@
+one
+two
";

    #[test]
    fn a_patch_adds_its_plus_lines_and_moves_later_ones() {
        let files = parse_patch(PATCH);
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].0, "x.c");
        assert!(!files[0].1);
        assert_eq!(files[0].2[0].added, [3]);
        assert!(files[1].1, "y.c is created");
        // Old line 1 is before every hunk; old 3 ("b") is now 4; old 10
        // ("gone") is removed; old 20 moves by +1 -1 = 0.
        let hunks = &files[0].2;
        assert_eq!(map_line(hunks, 1), Some(1));
        assert_eq!(map_line(hunks, 3), Some(4));
        assert_eq!(map_line(hunks, 10), None);
        assert_eq!(map_line(hunks, 11), Some(11));
        assert_eq!(map_line(hunks, 20), Some(20));
    }

    #[test]
    fn added_lines_skip_created_files_and_compose() {
        let dir = std::env::temp_dir().join(format!("lkl-cov-patch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = dir.join("1.patch");
        let second = dir.join("2.patch");
        std::fs::write(&first, PATCH).unwrap();
        // Two lines inserted at the top: the first patch's line 3 is 5.
        std::fs::write(
            &second,
            "--- a/x.c\n+++ b/x.c\n@@ -1,1 +1,3 @@\n+top1\n+top2\n first\n",
        )
        .unwrap();
        let added = added_lines(&[first, second]).unwrap();
        assert_eq!(added.len(), 1, "{added:?}");
        assert_eq!(added["x.c"], BTreeSet::from([1, 2, 5]));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_report_lists_lines_never_reached_and_branches_never_taken() {
        let line = |count, branches: &[u64]| gcov::Line {
            count,
            branches: branches.to_vec(),
        };
        let source = gcov::Source {
            file: "k/a.c".into(),
            lines: BTreeMap::from([
                (10, line(5, &[5, 0])),
                (11, line(0, &[])),
                (12, line(5, &[])),
            ]),
            functions: BTreeMap::from([("f".to_string(), (9, 5))]),
        };
        let report = Report::new(vec![source], &BTreeMap::new());
        assert_eq!(report.line("k/a.c", 10), Some(5));
        assert_eq!(report.line("k/a.c", 11), Some(0));
        assert_eq!(report.line("k/a.c", 13), None);
        assert_eq!(report.files[0].line_counts(), (2, 3));
        assert_eq!(report.files[0].branch_counts(), (1, 2));
        let dir = std::env::temp_dir().join(format!("lkl-cov-src-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("k")).unwrap();
        let text: String = (1..=12).map(|n| format!("  code {n};\n")).collect();
        std::fs::write(dir.join("k/a.c"), text).unwrap();
        let shown = report.render(&dir);
        assert!(
            shown.contains("k/a.c:11: code 11;  never reached"),
            "{shown}"
        );
        assert!(
            shown.contains("k/a.c:10: code 10;  1 of 2 branches taken"),
            "{shown}"
        );
        let lcov = report.lcov(Path::new("/t"), "t");
        assert!(lcov.contains("SF:/t/k/a.c\n"), "{lcov}");
        assert!(
            lcov.contains("BRDA:10,0,1,0\n") && lcov.contains("DA:11,0\n"),
            "{lcov}"
        );
        assert!(
            lcov.contains("FNDA:5,f\n") && lcov.contains("LF:3\nLH:2\n"),
            "{lcov}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// gcov's counters: read from a coverage kernel's debugfs before it halts,
/// summed over every kernel of the run, and handed to gcc's `gcov`.
pub mod gcov {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    use crate::calls::DirEntry;
    use crate::{Errno, Kernel};

    /// Where a kernel mounts its debugfs to read the counters.
    const MOUNT: &std::ffi::CStr = c"/.lkl-gcov";

    /// The `.gcda` files of `kernel` (paths under debugfs' `gcov/`, as the
    /// kernel names them: the object's absolute path without the leading
    /// `/`), or `None` when it has no gcov (not a coverage kernel).
    pub fn read_all(kernel: &Kernel) -> Result<Option<BTreeMap<String, Vec<u8>>>, String> {
        match kernel.mkdir(MOUNT, 0o700) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(format!("mkdir {MOUNT:?}: {e}")),
        }
        match kernel.mount(c"debugfs", MOUNT, c"debugfs", 0) {
            Ok(()) | Err(Errno::EBUSY) => {}
            Err(Errno::ENODEV) => return Ok(None),
            Err(e) => return Err(format!("mount debugfs: {e}")),
        }
        let root = format!("{}/gcov", MOUNT.to_string_lossy());
        let mut files = BTreeMap::new();
        let mut dirs = vec![String::new()];
        while let Some(rel) = dirs.pop() {
            let path = format!("{root}{rel}");
            let entries = match kernel.read_dir(&path) {
                Ok(entries) => entries,
                // debugfs without gcov/: a kernel without GCOV_KERNEL.
                Err(Errno::ENOENT) if rel.is_empty() => return Ok(None),
                Err(e) => return Err(format!("read directory {path}: {e}")),
            };
            for entry in entries {
                let child = format!("{rel}/{}", entry.name);
                // DT_DIR, DT_LNK (debugfs links each .gcno), DT_REG.
                match entry.kind {
                    DirEntry::DIR => dirs.push(child),
                    DirEntry::FILE if entry.name.ends_with(".gcda") => {
                        let data = read_file(kernel, &format!("{root}{child}"))?;
                        files.insert(child.trim_start_matches('/').to_string(), data);
                    }
                    _ => {}
                }
            }
        }
        Ok(Some(files))
    }

    fn read_file(kernel: &Kernel, path: &str) -> Result<Vec<u8>, String> {
        kernel
            .read_file(path)
            .map_err(|e| format!("read {path}: {e}"))
    }

    /// Saves `kernel`'s counters under `dir/<pid>-<n>/` (called by every
    /// kernel's halt when [`super::COVERAGE_ENV`] is set). Failures are
    /// written to `dir/errors-<pid>.txt`, which the coverage run reports.
    pub(crate) fn save(kernel: &Kernel, dir: &Path) {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let result = read_all(kernel).and_then(|files| {
            let Some(files) = files else { return Ok(()) };
            let n = SEQ.fetch_add(1, Ordering::Relaxed);
            let here = dir.join(format!("gcda/{}-{n}", std::process::id()));
            for (name, data) in files {
                let path = here.join(&name);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| format!("create {}: {e}", parent.display()))?;
                }
                std::fs::write(&path, data)
                    .map_err(|e| format!("write {}: {e}", path.display()))?;
            }
            Ok(())
        });
        if let Err(e) = result {
            use std::io::Write as _;
            let path = dir.join(format!("errors-{}.txt", std::process::id()));
            eprintln!("lkl-harness: coverage: {e}");
            let _ = std::fs::create_dir_all(dir);
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
            {
                let _ = writeln!(f, "{e}");
            }
        }
    }

    const MAGIC: u32 = 0x6763_6461; // "gcda"
    const TAG_COUNTER_BASE: u32 = 0x01a1_0000;

    /// Adds the counters of `more` to `sum`, two `.gcda` files of the same
    /// object (as the kernel writes them: a 4-word header, then records of
    /// tag, byte length, payload). Only arc counters (what
    /// `-fprofile-arcs` makes) are summed; any other counter is refused.
    pub fn merge(sum: &mut [u8], more: &[u8]) -> Result<(), String> {
        if sum.len() != more.len() {
            return Err(format!(
                "gcda files of one object differ in size ({} and {} bytes): \
                 were they written by different kernels?",
                sum.len(),
                more.len()
            ));
        }
        let word =
            |b: &[u8], at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        if sum.len() < 16 || word(sum, 0) != MAGIC {
            return Err("not a gcda file".into());
        }
        if sum[..16] != more[..16] {
            return Err("gcda files of different builds (header differs)".into());
        }
        let mut at = 16;
        while at + 8 <= sum.len() {
            let tag = word(sum, at);
            let len = word(sum, at + 4) as usize;
            if tag != word(more, at) || len != word(more, at + 4) as usize {
                return Err(format!("gcda records differ at byte {at}"));
            }
            let body = at + 8;
            if body + len > sum.len() {
                return Err(format!("gcda record at byte {at} runs past the end"));
            }
            if tag == TAG_COUNTER_BASE {
                for v in (body..body + len).step_by(8) {
                    let a = u64::from(word(sum, v)) | u64::from(word(sum, v + 4)) << 32;
                    let b = u64::from(word(more, v)) | u64::from(word(more, v + 4)) << 32;
                    let c = a.saturating_add(b);
                    sum[v..v + 4].copy_from_slice(&(c as u32).to_le_bytes());
                    sum[v + 4..v + 8].copy_from_slice(&((c >> 32) as u32).to_le_bytes());
                }
            } else if tag > TAG_COUNTER_BASE && tag < 0x01b0_0000 {
                return Err(format!("gcda counter type {tag:#x} cannot be summed"));
            } else if sum[body..body + len] != more[body..body + len] {
                return Err(format!("gcda function records differ at byte {at}"));
            }
            at = body + len;
        }
        Ok(())
    }

    /// Sums the counters of several kernels' `.gcda` files, per object.
    pub fn sum(
        kernels: impl IntoIterator<Item = BTreeMap<String, Vec<u8>>>,
    ) -> Result<BTreeMap<String, Vec<u8>>, String> {
        let mut out: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for files in kernels {
            for (name, data) in files {
                match out.get_mut(&name) {
                    Some(total) => merge(total, &data).map_err(|e| format!("{name}: {e}"))?,
                    None => {
                        out.insert(name, data);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Every saved kernel's `.gcda` under `dir/gcda/`, summed per object
    /// (keyed by the kernel's name for it).
    pub fn merged(dir: &Path) -> Result<(BTreeMap<String, Vec<u8>>, usize), String> {
        let mut out: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut kernels = 0;
        let root = dir.join("gcda");
        let Ok(entries) = std::fs::read_dir(&root) else {
            return Ok((out, 0));
        };
        for entry in entries.flatten() {
            kernels += 1;
            let base = entry.path();
            let mut stack = vec![base.clone()];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))? {
                    let p = e.map_err(|e| e.to_string())?.path();
                    if p.is_dir() {
                        stack.push(p);
                        continue;
                    }
                    let name = p
                        .strip_prefix(&base)
                        .map_err(|e| e.to_string())?
                        .display()
                        .to_string();
                    let data = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
                    match out.get_mut(&name) {
                        Some(sum) => merge(sum, &data).map_err(|e| format!("{name}: {e}"))?,
                        None => {
                            out.insert(name, data);
                        }
                    }
                }
            }
        }
        Ok((out, kernels))
    }

    /// One line of gcov's report.
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct Line {
        /// Times it ran.
        pub count: u64,
        /// Its branches: times each was taken.
        pub branches: Vec<u64>,
    }

    /// gcov's view of one source file.
    #[derive(Clone, Debug, Default)]
    pub struct Source {
        /// Relative to the kernel tree.
        pub file: String,
        /// Lines with code.
        pub lines: BTreeMap<u32, Line>,
        /// Functions: name → (first line, times called).
        pub functions: BTreeMap<String, (u32, u64)>,
    }

    /// Runs gcc's `gcov` on `gcda` (the summed counters of the object
    /// built in `build` as `object`, e.g. `kernel/hello.o`) and returns
    /// the report of `source` (`kernel/hello.c`).
    pub fn report(
        build: &Path,
        object: &str,
        gcda: &[u8],
        scratch: &Path,
        source: &str,
    ) -> Result<Source, String> {
        let stem = Path::new(object).with_extension("");
        let dir = scratch.join(stem.parent().unwrap_or(Path::new("")));
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let base = stem
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let gcno = build.join(stem.with_extension("gcno"));
        std::fs::copy(&gcno, dir.join(format!("{base}.gcno")))
            .map_err(|e| format!("copy {}: {e}", gcno.display()))?;
        std::fs::write(dir.join(format!("{base}.gcda")), gcda)
            .map_err(|e| format!("write {}: {e}", dir.display()))?;
        let output = std::process::Command::new("gcov")
            .current_dir(build)
            .arg("--json-format")
            .arg("--stdout")
            .arg("--branch-probabilities")
            .arg("--branch-counts")
            .arg("--object-directory")
            .arg(&dir)
            .arg(PathBuf::from(object).with_extension("c"))
            .output()
            .map_err(|e| format!("cannot run gcov (gcc's, from the gcc package): {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "gcov failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        let json: serde_json::Value = serde_json::from_slice(&output.stdout)
            .map_err(|e| format!("gcov printed no JSON: {e}"))?;
        let mut out = Source {
            file: source.to_string(),
            ..Source::default()
        };
        for file in json["files"].as_array().into_iter().flatten() {
            let name = file["file"].as_str().unwrap_or_default();
            if !name.ends_with(source) {
                continue;
            }
            for f in file["functions"].as_array().into_iter().flatten() {
                let name = f["demangled_name"]
                    .as_str()
                    .or_else(|| f["name"].as_str())
                    .unwrap_or_default()
                    .to_string();
                let start = f["start_line"].as_u64().unwrap_or(0) as u32;
                let count = f["execution_count"].as_u64().unwrap_or(0);
                out.functions.insert(name, (start, count));
            }
            for l in file["lines"].as_array().into_iter().flatten() {
                let number = l["line_number"].as_u64().unwrap_or(0) as u32;
                let entry = out.lines.entry(number).or_default();
                entry.count += l["count"].as_u64().unwrap_or(0);
                for b in l["branches"].as_array().into_iter().flatten() {
                    entry.branches.push(b["count"].as_u64().unwrap_or(0));
                }
            }
        }
        Ok(out)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn gcda(counts: &[u64]) -> Vec<u8> {
            let mut v = Vec::new();
            for w in [MAGIC, 0x4231_322a, 7, 0] {
                v.extend_from_slice(&w.to_le_bytes());
            }
            for w in [0x0100_0000u32, 12, 1, 2, 3] {
                v.extend_from_slice(&w.to_le_bytes());
            }
            v.extend_from_slice(&TAG_COUNTER_BASE.to_le_bytes());
            v.extend_from_slice(&((counts.len() * 8) as u32).to_le_bytes());
            for c in counts {
                v.extend_from_slice(&(*c as u32).to_le_bytes());
                v.extend_from_slice(&((*c >> 32) as u32).to_le_bytes());
            }
            v
        }

        #[test]
        fn merging_sums_the_arc_counters_and_refuses_other_builds() {
            let mut sum = gcda(&[1, 0, 1 << 32]);
            merge(&mut sum, &gcda(&[2, 0, 1])).unwrap();
            assert_eq!(sum, gcda(&[3, 0, (1 << 32) + 1]));
            let mut other = gcda(&[1, 2, 3]);
            other[8] = 8; // another stamp
            assert!(merge(&mut sum, &other)
                .unwrap_err()
                .contains("different builds"));
            assert!(merge(&mut sum, &gcda(&[1]))
                .unwrap_err()
                .contains("differ in size"));
        }
    }
}
