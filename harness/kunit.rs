//! KUnit, the kernel's unit test framework, in-process: the KUnit kernel
//! ([`Variant::Kunit`], built on demand) has KUnit and every suite its
//! configuration can build (`KUNIT_ALL_TESTS`), hello's own among them. The
//! suites run at boot, before the kernel answers system calls, filtered by
//! `kunit.filter_glob`; each [`run`] boots a private kernel for them, reads
//! their KTAP output from the log and halts it.
//!
//! ```no_run
//! let report = lkl_harness::kunit::run("hello").unwrap();
//! assert!(report.passed(), "{}", report.render());
//! assert_eq!(report.suites[0].cases.len(), 4);
//! ```
//!
//! A kernel bug a test triggers (a WARN, KASAN on a debug build, a panic)
//! counts as a failure of the run, as `kunit.py` counts a crash.
//!
//! To make cargo tests of suites, see [`kunit_suites!`](crate::kunit_suites).

use std::fmt::Write as _;

use serde::Serialize;

use crate::kbuild::{Spec, Variant};
use crate::kernel::{BootOptions, Error, Kernel};

/// A case's (or a suite's) result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Status {
    /// `ok`.
    Pass,
    /// `not ok`.
    Fail,
    /// `ok ... # SKIP <reason>`.
    Skip(String),
}

/// One test case, or one parameter of a parameterised case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Case {
    /// Its name.
    pub name: String,
    /// Its result.
    pub status: Status,
    /// Its diagnostic lines (`# name: EXPECTATION FAILED at file:line`,
    /// `Expected ...`), without indentation.
    pub diagnostics: Vec<String>,
    /// The results of its parameters, if it is parameterised.
    pub params: Vec<Case>,
    /// Every log line from the previous result to this one: the case's
    /// own output and what the kernel printed meanwhile.
    pub log: Vec<String>,
}

/// One suite.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Suite {
    /// Its name (`kunit_suite.name`).
    pub name: String,
    /// Its result, as KUnit gave it.
    pub status: Status,
    /// Its cases, in order.
    pub cases: Vec<Case>,
}

/// What one boot of the KUnit kernel ran.
#[derive(Clone, Debug, Serialize)]
pub struct KunitReport {
    /// The glob the suites were filtered by.
    pub glob: String,
    /// The suites, in the order they ran.
    pub suites: Vec<Suite>,
    /// How many suites the KTAP plan announced.
    pub planned: usize,
    /// Kernel bug reports in the log (WARN, BUG, KASAN, panics).
    pub splats: Vec<String>,
    /// From the boot of the KUnit kernel (which runs the suites) to its
    /// halt; the build's up-to-date check before it is not included.
    pub seconds: f64,
    /// The whole log.
    #[serde(skip)]
    pub log: String,
}

/// Totals of a report or a suite.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Cases that passed.
    pub passed: usize,
    /// Cases that failed.
    pub failed: usize,
    /// Cases that were skipped.
    pub skipped: usize,
}

impl Totals {
    fn add(&mut self, status: &Status) {
        match status {
            Status::Pass => self.passed += 1,
            Status::Fail => self.failed += 1,
            Status::Skip(_) => self.skipped += 1,
        }
    }

    /// All cases.
    pub fn total(&self) -> usize {
        self.passed + self.failed + self.skipped
    }
}

impl Suite {
    /// The suite's case totals.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for case in &self.cases {
            t.add(&case.status);
        }
        t
    }
}

impl KunitReport {
    /// The case totals of every suite.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for suite in &self.suites {
            for case in &suite.cases {
                t.add(&case.status);
            }
        }
        t
    }

    /// Whether at least one suite ran, every suite announced ran, none
    /// failed, and the kernel reported no bug.
    pub fn passed(&self) -> bool {
        !self.suites.is_empty()
            && self.suites.len() == self.planned
            && self.suites.iter().all(|s| s.status != Status::Fail)
            && self.splats.is_empty()
    }

    /// The suite named `name`.
    pub fn suite(&self, name: &str) -> Option<&Suite> {
        self.suites.iter().find(|s| s.name == name)
    }

    /// The report as `kunit.py` prints it: a line per suite, each failed
    /// case in full (diagnostics and the log around it), kernel bug
    /// reports, and a summary line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for suite in &self.suites {
            let t = suite.totals();
            let verdict = match &suite.status {
                Status::Pass => "PASSED",
                Status::Fail => "FAILED",
                Status::Skip(_) => "SKIPPED",
            };
            let _ = writeln!(
                out,
                "[{verdict}] {} ({} cases: {} passed, {} failed, {} skipped)",
                suite.name,
                t.total(),
                t.passed,
                t.failed,
                t.skipped
            );
            for case in &suite.cases {
                match &case.status {
                    Status::Fail => {
                        let _ = writeln!(out, "    [FAILED] {}", case.name);
                        for line in &case.diagnostics {
                            let _ = writeln!(out, "        {line}");
                        }
                        for param in case.params.iter().filter(|p| p.status == Status::Fail) {
                            let _ = writeln!(out, "        [FAILED] {}", param.name);
                            for line in &param.diagnostics {
                                let _ = writeln!(out, "            {line}");
                            }
                        }
                        // The log's other lines: the kernel's messages.
                        let others: Vec<&String> = case
                            .log
                            .iter()
                            .filter(|l| {
                                let l = l.trim();
                                !l.is_empty()
                                    && !l.starts_with("# ")
                                    && !is_ktap(l)
                                    && !case.diagnostics.iter().any(|d| d == l)
                            })
                            .collect();
                        if !others.is_empty() {
                            let _ = writeln!(out, "        log:");
                            for line in others {
                                let _ = writeln!(out, "          {line}");
                            }
                        }
                    }
                    Status::Skip(reason) => {
                        let _ = writeln!(out, "    [SKIPPED] {}: {reason}", case.name);
                    }
                    Status::Pass => {}
                }
            }
        }
        if self.suites.len() != self.planned {
            let _ = writeln!(
                out,
                "KTAP announced {} suite(s) and {} ran: the kernel stopped in the middle",
                self.planned,
                self.suites.len()
            );
        }
        if !self.splats.is_empty() {
            let _ = writeln!(out, "the kernel reported bugs:");
            for line in &self.splats {
                let _ = writeln!(out, "  {line}");
            }
        }
        let t = self.totals();
        let _ = writeln!(
            out,
            "============================================================\n\
             Testing complete. Ran {} tests: passed: {}, failed: {}, skipped: {} \
             ({} suites matching {:?})\n\
             Elapsed time: {:.3}s (boot, tests and halt of the KUnit kernel)",
            t.total(),
            t.passed,
            t.failed,
            t.skipped,
            self.suites.len(),
            self.glob,
            self.seconds
        );
        out
    }
}

/// The KUnit kernel, with `mutants` applied (for seeded bugs).
pub fn spec(mutants: Vec<std::path::PathBuf>) -> Spec {
    Spec {
        variant: Variant::Kunit,
        mutants,
        coverage: false,
    }
}

/// Runs the suites whose names match `glob` (`kunit.filter_glob`:
/// `suite` or `suite.case`, with `*` wildcards) in a private KUnit
/// kernel, and returns their results. An error is a kernel that could not
/// be built or booted; failing tests are a report that did not pass.
pub fn run(glob: &str) -> Result<KunitReport, Error> {
    run_on(&spec(Vec::new()), glob, BootOptions::default())
}

/// [`run`] on the KUnit kernel `spec`, booted with `options` (its
/// command line gets the filter).
pub fn run_on(spec: &Spec, glob: &str, options: BootOptions) -> Result<KunitReport, Error> {
    check_glob(glob)?;
    let mut options = options;
    options.cmdline = join(&options.cmdline, &format!("kunit.filter_glob={glob}"));
    let library = crate::seeded::build(spec).map_err(|e| {
        Error::Load(format!(
            "cannot build the KUnit kernel {}: {e}",
            spec.name()
        ))
    })?;
    let started = std::time::Instant::now();
    let kernel = Kernel::boot_library(&library, options)?;
    // The suites ran at boot: the kernel answers only once they are done.
    let records = kernel.log();
    let log = kernel.dmesg();
    let lines: Vec<String> = records
        .iter()
        .flat_map(|r| r.text.lines().map(str::to_string).collect::<Vec<_>>())
        .collect();
    let (planned, suites) = parse(&lines);
    let splats = crate::check::splat_lines(&records);
    kernel.halt()?;
    Ok(KunitReport {
        glob: glob.to_string(),
        suites,
        planned,
        splats,
        seconds: started.elapsed().as_secs_f64(),
        log,
    })
}

/// The `suite.case` names of the tests matching `glob`, without running
/// them (`kunit.action=list`).
pub fn list(glob: &str) -> Result<Vec<String>, Error> {
    list_on(&spec(Vec::new()), glob)
}

/// [`list`] on the KUnit kernel `spec`.
pub fn list_on(spec: &Spec, glob: &str) -> Result<Vec<String>, Error> {
    check_glob(glob)?;
    let kernel = Kernel::boot_seeded(
        spec,
        BootOptions {
            cmdline: format!("kunit.action=list kunit.filter_glob={glob}"),
            ..BootOptions::default()
        },
    )?;
    let records = kernel.log();
    kernel.halt()?;
    // The list is printed between the KTAP header and the kernel's next
    // messages: one `suite.case` a line (after a line with the suite's
    // name), no spaces.
    let mut names = Vec::new();
    let mut inside = false;
    for record in &records {
        let text = record.text.trim_end();
        if text == "KTAP version 1" {
            inside = true;
            continue;
        }
        if !inside {
            continue;
        }
        if text.is_empty() || text.contains(char::is_whitespace) {
            inside = false;
        } else if let Some((suite, case)) = text.split_once('.') {
            if !suite.is_empty() && !case.is_empty() {
                names.push(text.to_string());
            }
        }
    }
    Ok(names)
}

/// The suite names of `names` (`suite.case`), in order, once each.
pub fn suites_of(names: &[String]) -> Vec<String> {
    let mut suites: Vec<String> = Vec::new();
    for name in names {
        let suite = name.split_once('.').map_or(name.as_str(), |(s, _)| s);
        if suites.last().map(String::as_str) != Some(suite) {
            suites.push(suite.to_string());
        }
    }
    suites
}

/// A glob the kernel's command line can carry.
fn check_glob(glob: &str) -> Result<(), Error> {
    if glob.is_empty() || glob.contains(char::is_whitespace) || glob.contains('"') {
        return Err(Error::BadOption {
            option: "glob",
            value: format!("{glob:?}"),
            accepted: "a suite glob without spaces or quotes, such as `hello` or `list*.test_*`"
                .into(),
            fix: "pass the suite name, or a glob of names, as kunit.py's filter_glob".into(),
        });
    }
    Ok(())
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a} {b}")
    }
}

/// Whether `line` is KTAP structure: a version, a plan or a result.
fn is_ktap(line: &str) -> bool {
    let l = line.trim_start();
    l.starts_with("KTAP version")
        || l.starts_with("1..")
        || l.starts_with("ok ")
        || l.starts_with("not ok ")
}

/// A result line (`ok 3 name # SKIP why`, `not ok 1 name`): its status and
/// name.
fn result(line: &str) -> Option<(Status, String)> {
    let (ok, rest) = if let Some(rest) = line.strip_prefix("ok ") {
        (true, rest)
    } else if let Some(rest) = line.strip_prefix("not ok ") {
        (false, rest)
    } else {
        return None;
    };
    let (_number, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let (name, directive) = match rest.split_once(" # ") {
        Some((name, directive)) => (name, Some(directive)),
        None => (rest, None),
    };
    let status = match directive {
        Some(d) if d.to_ascii_uppercase().starts_with("SKIP") => {
            Status::Skip(d[4..].trim().to_string())
        }
        _ if ok => Status::Pass,
        _ => Status::Fail,
    };
    Some((status, name.trim().to_string()))
}

/// The indentation level of a KTAP line: four spaces a level.
fn depth(line: &str) -> usize {
    (line.len() - line.trim_start_matches(' ').len()) / 4
}

/// Parses the KTAP output in `lines` (the log's lines, other kernel
/// messages mixed in): the announced number of suites, and the suites.
pub fn parse(lines: &[String]) -> (usize, Vec<Suite>) {
    let Some(start) = lines.iter().position(|l| l.trim_end() == "KTAP version 1") else {
        return (0, Vec::new());
    };
    let mut planned = 0;
    let mut suites = Vec::new();
    // The suite being read: its name, its cases so far, and the lines
    // since the last result (for the next case's diagnostics and log).
    let mut name: Option<String> = None;
    let mut cases: Vec<Case> = Vec::new();
    let mut params: Vec<Case> = Vec::new();
    let mut pending: Vec<String> = Vec::new();
    let diagnostics = |pending: &[String]| -> Vec<String> {
        pending
            .iter()
            .map(|l| l.trim().to_string())
            .filter(|l| {
                !l.is_empty()
                    && !l.starts_with("KTAP version")
                    && !l.starts_with("1..")
                    && !l.starts_with("# Subtest:")
                    && !l.starts_with("# module:")
                    && !l.starts_with("# Totals:")
            })
            .collect()
    };
    for line in &lines[start + 1..] {
        let text = line.trim_end();
        let d = depth(text);
        let body = text.trim_start();
        if d == 0 && body.starts_with("1..") && suites.is_empty() && name.is_none() {
            planned = body[3..].trim().parse().unwrap_or(0);
            continue;
        }
        if d == 1 {
            if let Some(subtest) = body.strip_prefix("# Subtest: ") {
                name = Some(subtest.trim().to_string());
                cases.clear();
                pending.clear();
                continue;
            }
        }
        match (d, result(body)) {
            (0, Some((status, suite))) => {
                suites.push(Suite {
                    name: name.take().unwrap_or(suite),
                    status,
                    cases: std::mem::take(&mut cases),
                });
                pending.clear();
            }
            (1, Some((status, case))) => {
                let own = std::mem::take(&mut params);
                cases.push(Case {
                    name: case,
                    status,
                    diagnostics: diagnostics(&pending),
                    params: own,
                    log: std::mem::take(&mut pending),
                });
            }
            (2, Some((status, param))) => {
                params.push(Case {
                    name: param,
                    status,
                    diagnostics: diagnostics(&pending),
                    params: Vec::new(),
                    log: Vec::new(),
                });
            }
            _ => pending.push(text.to_string()),
        }
    }
    (planned, suites)
}

/// Turns KUnit suites into cargo tests: one `#[test]` per suite, named
/// after it, that runs it alone in a private KUnit kernel and fails with
/// the rendered report unless every case passed or was skipped, and at
/// least one passed.
/// So `cargo test` and `cargo nextest` list and filter suites like any
/// other test. A suite that needs several CPUs says how many it needs at
/// least (`min_cpus = N`): its kernel gets them whatever
/// [`BootOptions::cpus`](crate::BootOptions::cpus) would be, so that the
/// suite tests something even in a run at one CPU.
///
/// ```no_run
/// lkl_harness::kunit_suites! {
///     hello => "hello",
///     list_sort => "list_sort",
///     lkl_atomic => "lkl-atomic" (min_cpus = 2),
/// }
/// ```
#[macro_export]
macro_rules! kunit_suites {
    ($($test:ident => $suite:literal $((min_cpus = $cpus:literal))?),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                #[allow(unused_mut)]
                let mut options = $crate::BootOptions::default();
                $(options.cpus = options.cpus.max($cpus);)?
                let report = $crate::kunit::run_on(
                    &$crate::kunit::spec(Vec::new()),
                    $suite,
                    options,
                )
                .unwrap_or_else(|e| panic!("the KUnit kernel did not run {}: {e}", $suite));
                assert!(
                    report.suite($suite).is_some(),
                    "no suite {} in the KUnit kernel:\n{}",
                    $suite,
                    report.render()
                );
                assert!(report.passed(), "{}\n{}", report.render(), report.log);
                assert!(
                    report.totals().passed > 0,
                    "every case of {} was skipped: nothing was tested\n{}",
                    $suite,
                    report.render()
                );
            }
        )*
        /// The suites this file turns into tests.
        #[allow(dead_code)]
        pub const KUNIT_SUITES: &[&str] = &[$($suite),*];
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    /// A report of parsed suites, with no kernel behind it.
    fn parsed_report(planned: usize, suites: Vec<Suite>) -> KunitReport {
        KunitReport {
            glob: "*".into(),
            suites,
            planned,
            splats: Vec::new(),
            seconds: 0.0,
            log: String::new(),
        }
    }

    #[test]
    fn parses_suites_cases_skips_params_and_failures() {
        let log = lines(
            "Run /init as init process\n\
             KTAP version 1\n\
             1..2\n\
             \x20   KTAP version 1\n\
             \x20   # Subtest: hello\n\
             \x20   # module: hello_kunit\n\
             \x20   1..3\n\
             \x20   ok 1 hello_test_args_layout\n\
             \x20   # hello_test_size: EXPECTATION FAILED at kernel/hello_kunit.c:56\n\
             \x20   Expected hello_call(test, NULL, size) == (long)-EINVAL, but\n\
             \x20       hello_call(test, NULL, size) == 0 (0x0)\n\
             random kernel line\n\
             \x20   not ok 2 hello_test_size\n\
             \x20   ok 3 hello_test_other # SKIP no wrapper\n\
             # hello: pass:1 fail:1 skip:1 total:3\n\
             not ok 1 hello\n\
             \x20   KTAP version 1\n\
             \x20   # Subtest: params\n\
             \x20   1..1\n\
             \x20       KTAP version 1\n\
             \x20       # Subtest: case_p\n\
             \x20       ok 1 one\n\
             \x20       not ok 2 two\n\
             \x20   # case_p: pass:1 fail:1 skip:0 total:2\n\
             \x20   not ok 1 case_p\n\
             not ok 2 params\n",
        );
        let (planned, suites) = parse(&log);
        assert_eq!(planned, 2);
        assert_eq!(suites.len(), 2);
        let hello = &suites[0];
        assert_eq!(hello.name, "hello");
        assert_eq!(hello.status, Status::Fail);
        assert_eq!(hello.cases.len(), 3);
        assert_eq!(hello.cases[0].status, Status::Pass);
        let failed = &hello.cases[1];
        assert_eq!(failed.status, Status::Fail);
        assert_eq!(
            failed.diagnostics[0],
            "# hello_test_size: EXPECTATION FAILED at kernel/hello_kunit.c:56"
        );
        assert!(failed.log.iter().any(|l| l == "random kernel line"));
        assert_eq!(hello.cases[2].status, Status::Skip("no wrapper".into()));
        assert_eq!(
            hello.totals(),
            Totals {
                passed: 1,
                failed: 1,
                skipped: 1
            }
        );
        let params = &suites[1].cases[0];
        assert_eq!(params.name, "case_p");
        assert_eq!(params.params.len(), 2);
        assert_eq!(params.params[1].status, Status::Fail);

        let report = parsed_report(planned, suites);
        assert!(!report.passed());
        let text = report.render();
        assert!(text.contains("[FAILED] hello (3 cases: 1 passed, 1 failed, 1 skipped)"));
        assert!(text.contains("EXPECTATION FAILED at kernel/hello_kunit.c:56"));
        assert!(text.contains("random kernel line"));
        assert!(text.contains("[SKIPPED] hello_test_other: no wrapper"));
        assert!(text.contains("Ran 4 tests: passed: 1, failed: 2, skipped: 1"));
    }

    #[test]
    fn a_run_cut_short_or_empty_does_not_pass() {
        let log = lines("KTAP version 1\n1..2\n    # Subtest: a\n    1..1\n    ok 1 x\nok 1 a\n");
        let (planned, suites) = parse(&log);
        let report = parsed_report(planned, suites);
        assert!(!report.passed());
        assert!(report
            .render()
            .contains("KTAP announced 2 suite(s) and 1 ran"));
        assert_eq!(parse(&lines("no ktap here")), (0, Vec::new()));
    }

    #[test]
    fn suites_of_keeps_order_once_each() {
        let names: Vec<String> = ["a.x", "a.y", "b.z"].map(String::from).to_vec();
        assert_eq!(suites_of(&names), ["a", "b"]);
    }
}
