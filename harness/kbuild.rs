//! Building kernel libraries: the one `build.rs` links into this crate,
//! and the seeded ones tests and commands build on demand (another kernel
//! variant, or the kernel with a mutant patch applied).
//!
//! `build.rs` includes this file as a module of its own (`#[path]`), so it
//! uses the standard library only.
//!
//! Every kernel is built in the cache (`target/lkl/`), from one work tree
//! (`tree/`: the pristine source as hard links, the patches of
//! `lkl/patches/` applied file by file, `arch/lkl` linked to the port), in
//! a build directory of its own:
//!
//! | kernel | build directory |
//! | --- | --- |
//! | default | `build` |
//! | a variant | `build-<variant>` (`build-debug`, `build-race`) |
//! | with mutants | `build[-<variant>]-m-<mutant>[+<mutant>...]` |
//!
//! A build directory with mutants starts as a copy of its variant's (and
//! again from a new copy once that has been rebuilt), and the mutants'
//! files are put into the shared tree only while it builds
//! (under the cache's lock), with timestamps that let make rebuild just
//! those files, in that directory and no other.

// build.rs uses part of this module, the harness another part.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::env;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write as _};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

/// Debian package holding the kernel source.
pub const DEBIAN_PACKAGE: &str = "linux-source-6.12";
/// The tarball inside that package.
pub const DEBIAN_TARBALL: &str = "linux-source-6.12.tar.xz";
/// The release the patches of `lkl/patches/` are made against.
pub const PATCHED_RELEASE: (u32, u32, u32) = (6, 12, 118);
/// The version of [`DEBIAN_PACKAGE`] whose source is [`PATCHED_RELEASE`]:
/// the source is fetched at exactly this version, never at the point
/// release apt happens to offer, on which a patch may not apply.
pub const DEBIAN_VERSION: &str = "6.12.118-1~deb12u1";
/// A build log that has grown past this size is set aside (as
/// `build.log.1`) before make appends to it again.
pub const LOG_LIMIT: u64 = 32 << 20;
/// How many copies of a library [`install_copy`] keeps in a directory:
/// the newest, and those a test binary built a little earlier may load.
pub const COPIES_KEPT: usize = 3;
/// The make log of a build directory whose make ran beside another's
/// (see [`Cache::build_side_by_side`]).
pub const APART_LOG: &str = "make.log";
/// Symbols kept global in the library; everything else becomes local.
pub const API_SYMBOLS: &[&str] = &[
    "lkl_start_kernel",
    "lkl_syscall",
    "lkl_flush_console",
    "lkl_sys_halt",
    "lkl_cpus_state",
];
/// How a coverage kernel compiles the files under test: a call to
/// `__sanitizer_cov_trace_pc` at every basic block, line tables to map the
/// blocks back to source lines, and no merging of identical tails or
/// threading of jumps, so that each `return -EINVAL;` keeps a block of its
/// own instead of sharing one or being jumped past.
pub const COVERAGE_CFLAGS: &str =
    "-fsanitize-coverage=trace-pc -g -fno-crossjumping -fno-thread-jumps";
/// The only undefined symbol a relocatable vmlinux may have.
const ALLOWED_UNDEFINED: &[&str] = &["_GLOBAL_OFFSET_TABLE_"];

/// Result of this module: errors are messages for the user.
pub type Result<T> = std::result::Result<T, String>;

/// A kernel configuration: `lkl/config/lkl.config` plus fragments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Variant {
    /// The default kernel.
    Default,
    /// Lock and memory debugging (`LKL_KERNEL=debug`).
    Debug,
    /// KCSAN and lockdep (`LKL_KERNEL=race`).
    Race,
    /// The kernel's own torture tests built in (`lkl-harness torture`).
    Torture,
    /// KUnit and its suites built in (`lkl-harness kunit`).
    Kunit,
}

impl Variant {
    /// Every variant, in the order CI builds them.
    pub const ALL: [Variant; 5] = [
        Variant::Default,
        Variant::Debug,
        Variant::Race,
        Variant::Torture,
        Variant::Kunit,
    ];

    /// The variant's name (`LKL_KERNEL=<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Variant::Default => "default",
            Variant::Debug => "debug",
            Variant::Race => "race",
            Variant::Torture => "torture",
            Variant::Kunit => "kunit",
        }
    }

    /// The variant whose build directory this one's starts as a copy of,
    /// when it is built the first time: one whose configuration differs in
    /// a few options, so that make rebuilds only what they touch.
    fn base(self) -> Option<Variant> {
        match self {
            Variant::Torture | Variant::Kunit => Some(Variant::Default),
            _ => None,
        }
    }

    /// What the variant is for, for error messages and `--help`.
    pub fn about(self) -> &'static str {
        match self {
            Variant::Default => "the kernel with the project's configuration",
            Variant::Debug => "KASAN, UBSAN, kmemleak and lockdep",
            Variant::Race => "KCSAN, the data race detector, with lockdep",
            Variant::Torture => "locktorture and rcutorture, for `lkl-harness torture`",
            Variant::Kunit => "KUnit and its suites, for `lkl-harness kunit`",
        }
    }

    /// The variant named `name` (`""` is the default).
    pub fn from_name(name: &str) -> Result<Variant> {
        if name.is_empty() {
            return Ok(Variant::Default);
        }
        Variant::ALL
            .into_iter()
            .find(|v| v.name() == name)
            .ok_or_else(|| {
                let known: Vec<String> = Variant::ALL
                    .iter()
                    .map(|v| format!("{} ({})", v.name(), v.about()))
                    .collect();
                format!(
                    "LKL_KERNEL={name}: no such kernel; the kernels are {}",
                    known.join(", ")
                )
            })
    }

    /// The variants the test suite runs on (`LKL_KERNEL`).
    pub const SUITE: [Variant; 3] = [Variant::Default, Variant::Debug, Variant::Race];

    /// The variant `LKL_KERNEL` asks for: one the suite runs on.
    pub fn from_env() -> Result<Variant> {
        let name = env::var("LKL_KERNEL").unwrap_or_default();
        let variant = Variant::from_name(&name)?;
        if !Variant::SUITE.contains(&variant) {
            return Err(format!(
                "LKL_KERNEL={name}: {} is not a kernel to run the tests on; use \
                 `cargo run --release -- {name}`",
                variant.about()
            ));
        }
        Ok(variant)
    }

    /// The configuration fragments, after `lkl.config`.
    fn fragments(self) -> &'static [&'static str] {
        match self {
            Variant::Default => &[],
            Variant::Debug => &["debug.config"],
            Variant::Race => &["race.config"],
            Variant::Torture => &["torture.config"],
            Variant::Kunit => &["kunit.config"],
        }
    }

    fn dir_suffix(self) -> String {
        match self {
            Variant::Default => String::new(),
            v => format!("-{}", v.name()),
        }
    }
}

/// A kernel to build: a variant, and mutant patches applied after
/// `lkl/patches/`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Spec {
    /// The configuration.
    pub variant: Variant,
    /// Patches applied on top of `lkl/patches/`, in order.
    pub mutants: Vec<PathBuf>,
    /// The files under test (those the patches change, see
    /// [`Cache::covered_files`]) report basic-block coverage to the host.
    pub coverage: bool,
}

impl Spec {
    /// The plain kernel of `variant`.
    pub fn of(variant: Variant) -> Spec {
        Spec {
            variant,
            mutants: Vec::new(),
            coverage: false,
        }
    }

    /// The same kernel with coverage of the files under test.
    pub fn with_coverage(mut self) -> Spec {
        self.coverage = true;
        self
    }

    /// The kernel whose build directory this one's starts as a copy of.
    fn base(&self) -> Option<Spec> {
        if !self.mutants.is_empty() {
            return Some(Spec {
                mutants: Vec::new(),
                ..self.clone()
            });
        }
        if self.coverage {
            return Some(Spec::of(self.variant));
        }
        self.variant.base().map(Spec::of)
    }

    /// A short name for messages: `race`, `default+shared-buffer-race`.
    pub fn name(&self) -> String {
        let mut name = self.variant.name().to_string();
        if self.coverage {
            name.push_str("+coverage");
        }
        for m in &self.mutants {
            name.push('+');
            name.push_str(&mutant_name(m));
        }
        name
    }
}

/// A mutant's name: its file name without `.patch`.
pub fn mutant_name(patch: &Path) -> String {
    patch
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A kernel that was built.
#[derive(Clone, Debug)]
pub struct Built {
    /// Its build directory.
    pub build_dir: PathBuf,
    /// `lkl.o`: the relocatable kernel with only the API global.
    pub object: PathBuf,
    /// `liblkl.so`, for private instances.
    pub shared_library: PathBuf,
}

/// Where messages about a build go: cargo warnings in `build.rs`,
/// stderr at run time.
pub type Reporter = fn(&str);

/// The kernel build cache and the sources it builds from.
pub struct Cache {
    /// The project (where `lkl/` is).
    pub manifest: PathBuf,
    /// `target/lkl`.
    pub dir: PathBuf,
    /// A developer's own kernel tree (`LINUX_SRC`), used as it is.
    pub own_tree: Option<PathBuf>,
    /// Where progress messages go.
    pub report: Reporter,
    /// Make's parallelism: cargo's jobserver when `build.rs` runs, the
    /// number of host CPUs otherwise.
    pub jobserver: Option<String>,
}

/// Holds the cache's lock: one build at a time, across processes.
pub struct Lock(File);

impl Cache {
    /// The tree make reads the source from.
    pub fn source_dir(&self) -> PathBuf {
        self.own_tree
            .clone()
            .unwrap_or_else(|| self.dir.join("tree"))
    }

    /// The build directory of a kernel: one per source tree, variant and
    /// set of mutants, so that switching between them rebuilds nothing.
    pub fn build_dir(&self, spec: &Spec) -> PathBuf {
        let mut name = match &self.own_tree {
            None => "build".to_string(),
            Some(dir) => format!(
                "build-{:016x}",
                stable_hash(dir.as_os_str().as_encoded_bytes())
            ),
        };
        name.push_str(&spec.variant.dir_suffix());
        if spec.coverage {
            name.push_str("-cover");
        }
        if !spec.mutants.is_empty() {
            name.push_str("-m");
            for m in &spec.mutants {
                name.push('-');
                name.push_str(&mutant_name(m));
            }
        }
        self.dir.join(name)
    }

    /// The log of the latest build that ran make (the one before it is
    /// `build.log.1`).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("build.log")
    }

    /// Takes the cache's lock, waiting for another build to finish.
    pub fn lock(&self) -> Result<Lock> {
        fs::create_dir_all(&self.dir).map_err(|e| io_err("create", &self.dir, e))?;
        let path = self.dir.join("lock");
        let file = File::create(&path).map_err(|e| io_err("create", &path, e))?;
        file.lock().map_err(|e| io_err("lock", &path, e))?;
        Ok(Lock(file))
    }

    /// Starts a new build log, keeping the previous one as `build.log.1`
    /// (and no older one): each build that runs make does this first, so
    /// the logs hold one build each and never grow from build to build.
    pub fn rotate_log(&self) -> Result<()> {
        let log = self.log_path();
        if log.is_file() {
            let old = self.dir.join("build.log.1");
            fs::rename(&log, &old).map_err(|e| io_err("rename", &log, e))?;
        }
        Ok(())
    }

    /// Builds `spec`, or finds it up to date. The caller holds the lock.
    pub fn build(&self, spec: &Spec, lock: &Lock) -> Result<Built> {
        let mut built = self.build_side_by_side(std::slice::from_ref(spec), lock)?;
        Ok(built.remove(0))
    }

    /// Builds `specs`, or finds them up to date, with their makes running
    /// side by side. Specs that are not up to date must have the same
    /// mutants (one mutant on the default and the debug kernel, say): the
    /// mutants' files are put into the tree once for all of them, and the
    /// links, which make runs one job at a time, use the host's cores
    /// together. The caller holds the lock.
    pub fn build_side_by_side(&self, specs: &[Spec], _lock: &Lock) -> Result<Vec<Built>> {
        let mut stale = Vec::new();
        for spec in specs {
            if !stale.contains(spec) && self.up_to_date(spec)?.is_none() {
                stale.push(spec.clone());
            }
        }
        if let Some(first) = stale.first() {
            if let Some(other) = stale.iter().find(|s| s.mutants != first.mutants) {
                return Err(format!(
                    "cannot build {} and {} side by side: they differ in their mutants",
                    first.name(),
                    other.name()
                ));
            }
            ensure_host_tools(self.report)?;
            let source = self.kernel_source()?;
            self.rotate_log()?;
            self.prepare_tree(&source)?;
            self.make_and_package(&stale)?;
        }
        Ok(specs.iter().map(|spec| self.built(spec)).collect())
    }

    /// Where a build of `spec` leaves its library.
    fn built(&self, spec: &Spec) -> Built {
        let dir = self.build_dir(spec);
        Built {
            object: dir.join("lkl.o"),
            shared_library: dir.join("liblkl.so"),
            build_dir: dir,
        }
    }

    /// What the last build of `spec` left, if it was made from the inputs
    /// of today (see [`Cache::inputs_digest`]) and packaged.
    fn up_to_date(&self, spec: &Spec) -> Result<Option<Built>> {
        let Some(digest) = self.inputs_digest(spec)? else {
            return Ok(None);
        };
        let built = self.built(spec);
        let stamp = fs::read_to_string(built.build_dir.join(".lkl-inputs")).ok();
        Ok((stamp.as_deref() == Some(digest.as_str())
            && built.object.is_file()
            && built.shared_library.is_file())
        .then_some(built))
    }

    /// Makes and packages `specs` (with the same mutants) side by side in
    /// a prepared tree, and records what each was made from, so that the
    /// next build finds it up to date.
    fn make_and_package(&self, specs: &[Spec]) -> Result<()> {
        let dirs = specs
            .iter()
            .map(|spec| self.prepare_build_dir(spec))
            .collect::<Result<Vec<_>>>()?;
        self.make_vmlinux(specs, &dirs)?;
        for (spec, dir) in specs.iter().zip(&dirs) {
            self.package(dir)?;
            if let Some(digest) = self.inputs_digest(spec)? {
                let stamp = dir.join(".lkl-inputs");
                fs::write(&stamp, digest).map_err(|e| io_err("write", &stamp, e))?;
            }
        }
        Ok(())
    }

    /// A digest of what a build of `spec` is made from, beyond the kernel
    /// source the cache unpacked once: this module (how kernels are
    /// built), the configuration, every file of `lkl/` (patches, port,
    /// configuration, mutants) and the spec's own patches by size and
    /// modification time, and the work tree's record of its source and
    /// patches. When it matches the digest a build left, that build is
    /// up to date and make (seconds even when nothing changed) is not run.
    /// `None` for a developer's own tree, which may change anywhere.
    fn inputs_digest(&self, spec: &Spec) -> Result<Option<String>> {
        if self.own_tree.is_some() {
            return Ok(None);
        }
        let mut text = format!(
            "{:016x}\n{}\n",
            stable_hash(include_str!("kbuild.rs").as_bytes()),
            spec.name()
        );
        text += &self.config_fragment(spec)?;
        let mut files = Vec::new();
        list_files(&self.manifest.join("lkl"), &mut files);
        files.extend(spec.mutants.iter().cloned());
        files.sort();
        for file in &files {
            let meta = fs::metadata(file).map_err(|e| io_err("stat", file, e))?;
            let _ = writeln!(
                text,
                "{} {} {:?}",
                file.display(),
                meta.len(),
                meta.modified().ok()
            );
        }
        for record in ["tree.source", "tree.patched"] {
            text += &fs::read_to_string(self.dir.join(record)).unwrap_or_default();
        }
        Ok(Some(format!("{:016x}", stable_hash(text.as_bytes()))))
    }

    /// Makes `spec`'s build directory ready for make, and returns it: a
    /// new one, or a mutant's, starts as a copy of its base's (see
    /// [`Spec::base`]) so that only what differs is compiled, and is
    /// configured.
    fn prepare_build_dir(&self, spec: &Spec) -> Result<PathBuf> {
        let build = self.build_dir(spec);
        let fresh = !build.join(".config").is_file();
        if let Some(base) = spec.base().filter(|_| fresh || !spec.mutants.is_empty()) {
            // A base that is up to date is not made again: make would find
            // nothing to do, but reading the tree takes it seconds, for
            // every mutant of a run.
            if self.up_to_date(&base)?.is_none() {
                self.make_and_package(std::slice::from_ref(&base))?;
            }
            // A mutant's directory is its base's plus the mutant's files.
            // Once the base has been rebuilt since the copy (a new patch
            // in the series, say), a new copy costs seconds and the
            // mutant's files, where make in the old one would compile
            // again everything the base just did.
            let base_dir = self.build_dir(&base);
            let copied = build.join(".lkl-copied");
            if fresh || newer(&base_dir.join("vmlinux"), &copied) {
                copy_dir(&base_dir, &build)?;
                // Its packaged library is the base's until rebuilt.
                let _ = fs::remove_file(build.join("lkl.o"));
                fs::write(&copied, "").map_err(|e| io_err("write", &copied, e))?;
            }
        }
        self.configure(spec, &build)?;
        Ok(build)
    }

    /// Makes the vmlinux of `specs` (with the same mutants) in their
    /// prepared build directories `dirs`, side by side when there are
    /// several, each then with a make log of its own that is added to the
    /// cache's afterwards.
    fn make_vmlinux(&self, specs: &[Spec], dirs: &[PathBuf]) -> Result<()> {
        let mut vars = Vec::new();
        for spec in specs {
            vars.push(if spec.coverage {
                self.coverage_vars()?
            } else {
                Vec::new()
            });
        }
        let mutants = specs.first().map(|s| s.mutants.as_slice()).unwrap_or(&[]);
        let mutated = if mutants.is_empty() {
            Vec::new()
        } else {
            self.apply_mutants(mutants, dirs)?
        };
        let (made, logged): (Vec<Result<()>>, Result<()>) = if let [dir] = dirs {
            (vec![self.kmake(dir, &["vmlinux"], &vars[0])], Ok(()))
        } else {
            let made = std::thread::scope(|scope| {
                let makes: Vec<_> = dirs
                    .iter()
                    .zip(&vars)
                    .map(|(dir, vars)| scope.spawn(move || self.kmake_apart(dir, vars)))
                    .collect();
                makes
                    .into_iter()
                    .map(|m| {
                        m.join()
                            .unwrap_or_else(|_| Err("make's thread panicked".into()))
                    })
                    .collect()
            });
            (made, self.append_logs(dirs))
        };
        let restored = self.restore(&mutated);
        made.into_iter().collect::<Result<Vec<()>>>()?;
        restored?;
        logged
    }

    /// The kernel source files a coverage kernel instruments: the C files
    /// of the kernel proper that the patches of `lkl/patches/` create or
    /// change (not tools/, scripts/, Documentation/ or the arch port,
    /// whose host boundary must stay uninstrumented), less those of
    /// [`Cache::uncoverable_files`].
    pub fn covered_files(&self) -> Result<Vec<String>> {
        let excluded: BTreeSet<String> = self
            .uncoverable_files()?
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        Ok(self
            .patched_sources()?
            .into_iter()
            .filter(|f| !excluded.contains(f))
            .collect())
    }

    /// The patched C files the kernel's Makefiles keep from coverage
    /// instrumentation (`KCOV_INSTRUMENT := n`, or `KCOV_INSTRUMENT_<file>.o
    /// := n`: code such as the allocators' and KASAN's, which must not call
    /// out on every block), with the reason.
    pub fn uncoverable_files(&self) -> Result<Vec<(String, String)>> {
        let tree = self.source_dir();
        let mut out = Vec::new();
        for file in self.patched_sources()? {
            let path = Path::new(&file);
            let dir = path.parent().unwrap_or(Path::new(""));
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let makefile = dir.join("Makefile");
            let text = fs::read_to_string(tree.join(&makefile)).unwrap_or_default();
            let value = |var: &str| {
                text.lines().find_map(|l| {
                    let (name, value) = l.split_once(":=").or_else(|| l.split_once('='))?;
                    (name.trim() == var).then(|| value.trim().to_string())
                })
            };
            let per_file = format!("KCOV_INSTRUMENT_{stem}.o");
            let (var, setting) = match value(&per_file) {
                Some(v) => (per_file, v),
                None => match value("KCOV_INSTRUMENT") {
                    Some(v) => ("KCOV_INSTRUMENT".to_string(), v),
                    None => continue,
                },
            };
            if setting.starts_with('n') {
                out.push((
                    file.clone(),
                    format!("{var} := n in {}", makefile.display()),
                ));
            }
        }
        Ok(out)
    }

    /// The C files of the kernel proper the patches create or change.
    fn patched_sources(&self) -> Result<Vec<String>> {
        let files = patched_files_of(&self.patches()?)?;
        Ok(files
            .into_iter()
            .filter(|f| f.ends_with(".c"))
            .filter(|f| {
                ![
                    "tools/",
                    "scripts/",
                    "Documentation/",
                    "samples/",
                    "arch/lkl/",
                ]
                .iter()
                .any(|p| f.starts_with(p))
            })
            .collect())
    }

    /// Make variables that instrument the covered files and nothing else:
    /// `GCOV_PROFILE_<stem>.o` (the kernel's gcov) and `CFLAGS_<stem>.o`
    /// (gcc's `-fsanitize-coverage=trace-pc` and line tables), evaluated in
    /// each directory's Makefile, where `$(obj)` names the directory. A
    /// file its Makefile marks `KCOV_INSTRUMENT... := n` gets no trace-pc,
    /// as KCOV would.
    fn coverage_vars(&self) -> Result<Vec<String>> {
        let mut by_stem: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for file in self.covered_files()? {
            let path = Path::new(&file);
            let dir = path.parent().map(|d| d.to_string_lossy().into_owned());
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
            let (Some(dir), Some(stem)) = (dir, stem) else {
                continue;
            };
            let tree = self.source_dir();
            for makefile in ["Makefile", "Kbuild"] {
                let text = fs::read_to_string(tree.join(&dir).join(makefile)).unwrap_or_default();
                if text.contains(&format!("CFLAGS_{stem}.o")) {
                    return Err(format!(
                        "{dir}/{makefile} sets CFLAGS_{stem}.o, which the coverage kernel \
                         must set to instrument {file}; move those flags to ccflags-y or \
                         CFLAGS_REMOVE_{stem}.o"
                    ));
                }
            }
            by_stem.entry(stem).or_default().push(dir);
        }
        let mut vars = Vec::new();
        for (stem, dirs) in by_stem {
            let dirs = dirs.join(" ");
            vars.push(format!(
                "CFLAGS_{stem}.o=$(if $(filter {dirs},$(obj)),$(if $(filter n%,\
                 $(KCOV_INSTRUMENT_{stem}.o)$(KCOV_INSTRUMENT)),,{COVERAGE_CFLAGS}))"
            ));
            vars.push(format!(
                "GCOV_PROFILE_{stem}.o=$(if $(filter {dirs},$(obj)),y)"
            ));
        }
        Ok(vars)
    }

    /// The pristine source: `LINUX_SRC`, or Debian's at [`DEBIAN_VERSION`].
    /// Debian's is refused, before anything is patched or made, unless its
    /// release is [`PATCHED_RELEASE`] (see [`Cache::check_release`]); a
    /// developer's own tree is built as it is, with a warning if its
    /// release is another.
    pub fn kernel_source(&self) -> Result<PathBuf> {
        if let Some(root) = &self.own_tree {
            if !root.join("Makefile").is_file() || !root.join("kernel").is_dir() {
                return Err(format!(
                    "LINUX_SRC={} is not a kernel source tree (no Makefile or kernel/ there)",
                    root.display()
                ));
            }
            if let Some(release) = source_release(root).filter(|r| *r != PATCHED_RELEASE) {
                (self.report)(&format!(
                    "LINUX_SRC={} is Linux {}; lkl/patches/ are made for {}",
                    root.display(),
                    release_name(release),
                    release_name(PATCHED_RELEASE)
                ));
            }
            return Ok(root.clone());
        }
        let unpacked = self.dir.join("source");
        let root = unpacked.join("linux-source-6.12");
        if !root.join("Makefile").is_file() {
            let tarball = match installed_tarball() {
                Some(tarball) => tarball,
                None => self.fetch_debian_source()?,
            };
            let partial = self.dir.join("source.partial");
            let _ = fs::remove_dir_all(&partial);
            fs::create_dir_all(&partial).map_err(|e| io_err("create", &partial, e))?;
            (self.report)(&format!("unpacking {}", tarball.display()));
            run_cmd(
                Command::new("tar")
                    .arg("-xf")
                    .arg(&tarball)
                    .arg("-C")
                    .arg(&partial),
            )?;
            let _ = fs::remove_dir_all(&unpacked);
            fs::rename(&partial, &unpacked).map_err(|e| io_err("rename", &partial, e))?;
        }
        self.check_release(&root)?;
        Ok(root)
    }

    /// Checks the release of a kernel source against [`PATCHED_RELEASE`].
    /// Another series than 6.12 (or a Makefile that names none) is
    /// refused, with both releases and the fix. Another point release of
    /// 6.12 is what Debian serves once it moves on from
    /// [`DEBIAN_VERSION`]: it is built, and every build says so, since a
    /// patch may then fail to apply (its error names both releases) or
    /// apply and build another kernel than the tests were written against.
    pub fn check_release(&self, root: &Path) -> Result<()> {
        let found = source_release(root);
        let want = release_name(PATCHED_RELEASE);
        match found {
            Some(release) if release == PATCHED_RELEASE => return Ok(()),
            Some(release) if release.0 == PATCHED_RELEASE.0 && release.1 == PATCHED_RELEASE.1 => {
                (self.report)(&format!(
                    "the kernel source {} is Linux {}; lkl/patches/ are made for Linux {want}. \
                     Building it anyway: if a patch does not apply, rebase lkl/patches/ onto \
                     Linux {} (then set PATCHED_RELEASE and DEBIAN_VERSION in harness/kbuild.rs), \
                     or point LINUX_SRC at a Linux {want} tree",
                    root.display(),
                    release_name(release),
                    release_name(release),
                ));
                return Ok(());
            }
            _ => {}
        }
        let found = match found {
            Some(release) => format!("Linux {}", release_name(release)),
            None => "of no release its Makefile names (VERSION, PATCHLEVEL, SUBLEVEL)".into(),
        };
        Err(format!(
            "the kernel source {} is {found}, but lkl/patches/ are made for Linux {want}.\n\
             Fix: remove the kernel cache and build again, which fetches {DEBIAN_PACKAGE} \
             {DEBIAN_VERSION} (Linux {want}):\n    rm -rf {}\n\
             or point LINUX_SRC at a Linux {want} tree with lkl/patches/ applied. To move the \
             project to another release, rebase lkl/patches/ onto it and set PATCHED_RELEASE \
             and DEBIAN_VERSION in harness/kbuild.rs.",
            root.display(),
            self.dir.display()
        ))
    }

    /// `apt-get download`s [`DEBIAN_PACKAGE`] at [`DEBIAN_VERSION`] into
    /// the cache (once) and returns its tarball.
    fn fetch_debian_source(&self) -> Result<PathBuf> {
        let deb_dir = self.dir.join("deb");
        let tarball = deb_dir.join("usr/src").join(DEBIAN_TARBALL);
        if tarball.is_file() && deb_version(&deb_dir).as_deref() == Some(DEBIAN_VERSION) {
            return Ok(tarball);
        }
        // Another version's download (before the version was pinned).
        let _ = fs::remove_dir_all(&deb_dir);
        fs::create_dir_all(&deb_dir).map_err(|e| io_err("create", &deb_dir, e))?;
        let wanted = format!("{DEBIAN_PACKAGE}={DEBIAN_VERSION}");
        (self.report)(&format!("apt-get download {wanted}"));
        let download = |what: &str| {
            run_cmd(
                Command::new("apt-get")
                    .args(["download", what])
                    .current_dir(&deb_dir),
            )
        };
        if download(&wanted).is_err() {
            // A fresh machine may have no package lists yet.
            if is_root() {
                run_cmd(Command::new("apt-get").arg("update"))?;
            }
            if let Err(pinned) = download(&wanted) {
                // Debian keeps only recent point releases: take the one it
                // serves now (check_release() says what that means).
                (self.report)(&format!(
                    "{wanted} cannot be fetched any more; apt-get download {DEBIAN_PACKAGE}"
                ));
                download(DEBIAN_PACKAGE).map_err(|e| {
                    format!(
                        "{pinned}\n{e}\nThe kernel source, {DEBIAN_PACKAGE} (Linux {}, which \
                         lkl/patches/ are made for, is version {DEBIAN_VERSION}), could not be \
                         fetched. Either run\n    sudo apt-get update && sudo apt-get install \
                         {DEBIAN_PACKAGE}\nor point LINUX_SRC at a Linux {} source tree.",
                        release_name(PATCHED_RELEASE),
                        release_name(PATCHED_RELEASE)
                    )
                })?;
            }
        }
        if deb_version(&deb_dir).is_none() {
            return Err(format!(
                "apt-get download {DEBIAN_PACKAGE} left no .deb in {}",
                deb_dir.display()
            ));
        }
        let deb = deb_file(&deb_dir).expect("deb_version found it");
        run_cmd(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&deb_dir))?;
        if !tarball.is_file() {
            return Err(format!(
                "{} does not contain {DEBIAN_TARBALL}",
                deb.display()
            ));
        }
        Ok(tarball)
    }

    /// The patches of `lkl/patches/`, in name order.
    pub fn patches(&self) -> Result<Vec<PathBuf>> {
        patch_files(&self.manifest.join("lkl/patches"))
    }

    /// Makes the work tree: pristine source + patches + the arch port.
    fn prepare_tree(&self, source: &Path) -> Result<()> {
        let link_arch = |tree: &Path| -> Result<()> {
            let arch = tree.join("arch/lkl");
            let port = self.manifest.join("lkl/arch/lkl");
            if fs::read_link(&arch).is_ok_and(|target| target == port) {
                return Ok(());
            }
            if arch.exists() && fs::read_link(&arch).is_err() {
                return Err(format!(
                    "{} exists and is not our symlink; remove it",
                    arch.display()
                ));
            }
            let _ = fs::remove_file(&arch);
            symlink(&port, &arch).map_err(|e| io_err("symlink", &arch, e))
        };

        if self.own_tree.is_some() {
            // The developer's tree is built in place (with O=), unpatched.
            link_arch(source)?;
            let exclude = source.join(".git/info/exclude");
            if let Ok(text) = fs::read_to_string(&exclude) {
                if !text.lines().any(|l| l == "/arch/lkl") {
                    let _ = fs::write(&exclude, format!("{text}\n/arch/lkl\n"));
                }
            }
            return Ok(());
        }

        let tree = self.dir.join("tree");
        self.refresh_tree(source)?;
        link_arch(&tree)?;

        let patch_list = self.patches()?;
        let touched = patched_files_of(&patch_list)?;
        let scratch = self.dir.join("patch-scratch");
        apply_in_scratch(source, &scratch, &touched, &patch_list, |patch, e| {
            // The source is the release the patches are made for
            // (check_release): the patch itself is out of date.
            format!(
                "patch {} does not apply to Linux {}, the release lkl/patches/ are made \
                 for: rebase it onto that source, or an earlier patch in lkl/patches/ \
                 conflicts with it:\n{e}",
                patch.display(),
                release_name(PATCHED_RELEASE)
            )
        })?;

        // Files an earlier version of the patches touched go back to pristine.
        let record = self.dir.join("tree.patched");
        let previous: BTreeSet<String> = fs::read_to_string(&record)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        for file in previous.difference(&touched) {
            let pristine = source.join(file);
            let dst = tree.join(file);
            if pristine.is_file() {
                sync_file(&pristine, &dst)?;
            } else {
                let _ = fs::remove_file(&dst);
            }
        }
        for file in &touched {
            sync_file(&scratch.join(file), &tree.join(file))?;
        }
        let list: String = touched.iter().fold(String::new(), |mut s, f| {
            let _ = writeln!(s, "{f}");
            s
        });
        fs::write(&record, list).map_err(|e| io_err("write", &record, e))?;
        let _ = fs::remove_dir_all(&scratch);
        Ok(())
    }

    /// Makes the work tree anew as hard links of `source` when it was made
    /// from another source or release. Build directories made from a tree
    /// of another release go too: their objects look newer than the
    /// sources just unpacked, so make would keep them and link a kernel of
    /// two releases.
    fn refresh_tree(&self, source: &Path) -> Result<()> {
        let tree = self.dir.join("tree");
        let stamp = self.dir.join("tree.source");
        let source_id = source.display().to_string();
        let tree_release = source_release(&tree);
        let other_release = tree_release.is_some() && tree_release != source_release(source);
        if !other_release && fs::read_to_string(&stamp).ok().as_deref() == Some(source_id.as_str())
        {
            return Ok(());
        }
        if other_release {
            for dir in self.tree_build_dirs() {
                (self.report)(&format!(
                    "removing {}: it was built from Linux {}",
                    dir.display(),
                    tree_release.map(release_name).unwrap_or_default()
                ));
                fs::remove_dir_all(&dir).map_err(|e| io_err("remove", &dir, e))?;
            }
        }
        let _ = fs::remove_dir_all(&tree);
        run_cmd(Command::new("cp").arg("-al").arg(source).arg(&tree))?;
        fs::write(&stamp, &source_id).map_err(|e| io_err("write", &stamp, e))?;
        let _ = fs::remove_file(self.dir.join("tree.patched"));
        Ok(())
    }

    /// The build directories of kernels built from the cache's work tree
    /// (every one but those of developers' own trees, `build-<hash>...`).
    fn tree_build_dirs(&self) -> Vec<PathBuf> {
        let own_tree_dir = |name: &str| {
            name.strip_prefix("build-").is_some_and(|rest| {
                rest.len() >= 16
                    && rest.as_bytes()[..16].iter().all(u8::is_ascii_hexdigit)
                    && rest[16..].chars().next().is_none_or(|c| c == '-')
            })
        };
        let mut dirs: Vec<PathBuf> = fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                (name == "build" || name.starts_with("build-")) && !own_tree_dir(&name)
            })
            .map(|e| e.path())
            .collect();
        dirs.sort();
        dirs
    }

    /// Puts the version of `mutants` of the files they touch into the
    /// tree, for the build directories `builds`. Each such file gets the
    /// timestamp with which these directories last built this content,
    /// if they all did at the same time, and the present otherwise, so
    /// that make rebuilds it where its content is new. Returns what to
    /// restore.
    fn apply_mutants(&self, mutants: &[PathBuf], builds: &[PathBuf]) -> Result<Vec<Saved>> {
        let tree = self.source_dir();
        let touched = patched_files_of(mutants)?;
        let scratch = self.dir.join("mutant-scratch");
        apply_in_scratch(&tree, &scratch, &touched, mutants, |patch, e| {
            format!(
                "mutant {} does not apply on top of lkl/patches/: {e}",
                patch.display()
            )
        })?;
        let stamp_name = "lkl-mutant.stamp";
        let stamps: Vec<String> = builds
            .iter()
            .map(|b| fs::read_to_string(b.join(stamp_name)).unwrap_or_default())
            .collect();
        let mut saved = Vec::new();
        let mut new_stamp = String::new();
        for file in &touched {
            let path = tree.join(file);
            let original = fs::read(&path).ok();
            let mtime = fs::metadata(&path).and_then(|m| m.modified()).ok();
            saved.push(Saved {
                path: path.clone(),
                content: original,
                mtime,
            });
            let content = fs::read(scratch.join(file)).map_err(|e| io_err("read", &scratch, e))?;
            let hash = stable_hash(&content);
            // The timestamp a directory last built this content with.
            let built_at = |stamp: &String| {
                stamp.lines().find_map(|l| {
                    let mut f = l.split(' ');
                    (f.next() == Some(file) && f.next() == Some(&format!("{hash:016x}")))
                        .then(|| f.next().and_then(|t| t.parse::<u64>().ok()))
                        .flatten()
                })
            };
            let mut times = stamps.iter().map(built_at);
            let first = times.next().flatten();
            let when = first
                .filter(|&secs| times.all(|t| t == Some(secs)))
                .map(|secs| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
                .unwrap_or_else(SystemTime::now);
            let _ = fs::remove_file(&path);
            fs::write(&path, &content).map_err(|e| io_err("write", &path, e))?;
            set_mtime(&path, when)?;
            let secs = when
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let _ = writeln!(new_stamp, "{file} {hash:016x} {secs}");
        }
        for build in builds {
            let stamp_path = build.join(stamp_name);
            fs::write(&stamp_path, &new_stamp).map_err(|e| io_err("write", &stamp_path, e))?;
        }
        let _ = fs::remove_dir_all(&scratch);
        Ok(saved)
    }

    /// Puts the tree's files back as they were, timestamps included.
    fn restore(&self, saved: &[Saved]) -> Result<()> {
        for s in saved {
            let _ = fs::remove_file(&s.path);
            if let Some(content) = &s.content {
                fs::write(&s.path, content).map_err(|e| io_err("write", &s.path, e))?;
                if let Some(mtime) = s.mtime {
                    set_mtime(&s.path, mtime)?;
                }
            }
        }
        Ok(())
    }

    /// `make` in the kernel tree, output appended to the build log (set
    /// aside first if it has grown past [`LOG_LIMIT`]).
    pub fn kmake(&self, build: &Path, targets: &[&str], extra: &[String]) -> Result<()> {
        let log_path = self.log_path();
        if fs::metadata(&log_path).is_ok_and(|m| m.len() > LOG_LIMIT) {
            self.rotate_log()?;
        }
        self.kmake_into(build, targets, extra, &log_path)
    }

    /// `make vmlinux` in `build`, beside another make: its output goes to
    /// a log of its own, `build`'s [`APART_LOG`], which
    /// [`Cache::append_logs`] adds to the build log afterwards.
    fn kmake_apart(&self, build: &Path, extra: &[String]) -> Result<()> {
        let log_path = build.join(APART_LOG);
        let _ = fs::remove_file(&log_path);
        self.kmake_into(build, &["vmlinux"], extra, &log_path)
    }

    /// Adds the logs of [`Cache::kmake_apart`] in `builds` to the build log.
    fn append_logs(&self, builds: &[PathBuf]) -> Result<()> {
        let log_path = self.log_path();
        let mut log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| io_err("open", &log_path, e))?;
        for build in builds {
            let apart = build.join(APART_LOG);
            let text = fs::read(&apart).map_err(|e| io_err("read", &apart, e))?;
            log.write_all(&text)
                .map_err(|e| io_err("write", &log_path, e))?;
        }
        Ok(())
    }

    /// `make targets` in the kernel tree for `build`, output appended to
    /// `log_path`.
    fn kmake_into(
        &self,
        build: &Path,
        targets: &[&str],
        extra: &[String],
        log_path: &Path,
    ) -> Result<()> {
        fs::create_dir_all(build).map_err(|e| io_err("create", build, e))?;
        let mut log = File::options()
            .create(true)
            .append(true)
            .open(log_path)
            .map_err(|e| io_err("open", log_path, e))?;
        let (mut cmd, jobs) = self.make_command(build, targets, extra);
        let _ = writeln!(
            log,
            "=== make {} in {} ({jobs})",
            targets.join(" "),
            build.display()
        );
        let log_err = log.try_clone().map_err(|e| io_err("open", log_path, e))?;
        cmd.stdin(Stdio::null()).stdout(log).stderr(log_err);
        let started = Instant::now();
        let status = cmd.status().map_err(|e| format!("cannot run make: {e}"))?;
        if !status.success() {
            let tail = fs::read_to_string(log_path).unwrap_or_default();
            let lines: Vec<&str> = tail.lines().collect();
            let start = lines.len().saturating_sub(40);
            return Err(format!(
                "make {} failed ({status}); last 40 lines of {}:\n{}",
                targets.join(" "),
                log_path.display(),
                lines[start..].join("\n")
            ));
        }
        (self.report)(&format!(
            "make {} in {} took {:.1}s with {} (log: {})",
            targets.join(" "),
            build.file_name().unwrap_or_default().to_string_lossy(),
            started.elapsed().as_secs_f64(),
            if self.jobserver.is_some() {
                "cargo's jobserver"
            } else {
                "its own jobs"
            },
            log_path.display()
        ));
        Ok(())
    }

    /// The make command for `targets` in `build`, and how it runs jobs in
    /// parallel, for the log: under cargo's jobserver (`MAKEFLAGS` set to
    /// cargo's `CARGO_MAKEFLAGS`, whose descriptors make inherits), so
    /// that make and cargo's other jobs share one `-j`; otherwise with a
    /// job per host CPU.
    pub fn make_command(
        &self,
        build: &Path,
        targets: &[&str],
        extra: &[String],
    ) -> (Command, String) {
        let mut cmd = Command::new("make");
        cmd.arg("-C")
            .arg(self.source_dir())
            .arg(format!("O={}", build.display()))
            .arg("ARCH=lkl")
            .args(extra)
            .args(targets);
        for var in [
            "MAKEFLAGS",
            "MFLAGS",
            "MAKELEVEL",
            "CARGO_MAKEFLAGS",
            "CC",
            "CFLAGS",
            "LD",
            "AR",
        ] {
            cmd.env_remove(var);
        }
        let jobs = match &self.jobserver {
            Some(flags) => {
                cmd.env("MAKEFLAGS", flags);
                format!("cargo's jobserver: MAKEFLAGS={flags}")
            }
            None => {
                let jobs = format!("-j{}", host_cpus());
                cmd.arg(&jobs);
                jobs
            }
        };
        (cmd, jobs)
    }

    /// The configuration of `spec`: `lkl.config` and its variant's
    /// fragments, concatenated.
    pub fn config_fragment(&self, spec: &Spec) -> Result<String> {
        let dir = self.manifest.join("lkl/config");
        let mut wanted = String::new();
        for name in std::iter::once("lkl.config").chain(spec.variant.fragments().iter().copied()) {
            let path = dir.join(name);
            wanted += &fs::read_to_string(&path).map_err(|e| io_err("read", &path, e))?;
        }
        if spec.coverage {
            wanted += "# Coverage of the files under test (Spec::coverage): gcov's\n\
                       # counters (read from debugfs before halt) and trace-pc blocks.\n\
                       CONFIG_LKL_COVERAGE=y\nCONFIG_DEBUG_FS=y\nCONFIG_GCOV_KERNEL=y\n";
        }
        Ok(wanted)
    }

    /// Writes `.config` from the fragment whenever the fragment changes.
    fn configure(&self, spec: &Spec, build: &Path) -> Result<()> {
        fs::create_dir_all(build).map_err(|e| io_err("create", build, e))?;
        let wanted = self.config_fragment(spec)?;
        let fragment = build.join("lkl-fragment.config");
        fs::write(&fragment, &wanted).map_err(|e| io_err("write", &fragment, e))?;
        let stamp = build.join(".config.fragment");
        let config = build.join(".config");
        if config.is_file() && fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
            return Ok(());
        }
        self.kmake(
            build,
            &["allnoconfig"],
            &[format!("KCONFIG_ALLCONFIG={}", fragment.display())],
        )?;
        let text = fs::read_to_string(&config).map_err(|e| io_err("read", &config, e))?;
        for line in wanted.lines().filter(|l| l.starts_with("CONFIG_")) {
            if !text.lines().any(|l| l == line) {
                return Err(format!(
                    "{} asks for `{line}`, but Kconfig did not take it (a missing dependency?); see {}",
                    fragment.display(),
                    config.display()
                ));
            }
        }
        fs::write(&stamp, wanted).map_err(|e| io_err("write", &stamp, e))?;
        Ok(())
    }

    /// vmlinux → lkl.o (only the API global) → liblkl.so.
    fn package(&self, build: &Path) -> Result<Built> {
        let vmlinux = build.join("vmlinux");
        let object = build.join("lkl.o");
        let shared = build.join("liblkl.so");
        if newer(&vmlinux, &object) || !shared.is_file() {
            let partial = build.join("lkl.o.partial");
            let mut objcopy = Command::new("objcopy");
            for sym in API_SYMBOLS {
                objcopy.arg("-G").arg(sym);
            }
            // The kernel needs no executable stack; say so for the linker.
            objcopy
                .arg("--add-section")
                .arg(".note.GNU-stack=/dev/null");
            run_cmd(objcopy.arg(&vmlinux).arg(&partial))?;
            check_symbols(&partial)?;
            let shared_partial = build.join("liblkl.so.partial");
            run_cmd(
                Command::new("gcc")
                    .args(["-shared", "-nostdlib", "-Wl,-z,noexecstack", "-o"])
                    .arg(&shared_partial)
                    .arg(&partial),
            )?;
            // Whole files only: a test binary may be copying them right now.
            fs::rename(&shared_partial, &shared).map_err(|e| io_err("rename", &shared, e))?;
            fs::rename(&partial, &object).map_err(|e| io_err("rename", &object, e))?;
        }
        Ok(Built {
            build_dir: build.to_path_buf(),
            object,
            shared_library: shared,
        })
    }

    /// What `build.rs` has cargo watch (`rerun-if-changed`): the project's
    /// own inputs and, with a developer's tree, the files of it that the
    /// build in `build` read ([`Cache::own_tree_inputs`]). Never a kernel
    /// tree itself, whose ~80,000 files cargo would scan on every
    /// invocation.
    pub fn rerun_inputs(&self, build: &Path) -> Vec<PathBuf> {
        let mut inputs: Vec<PathBuf> = ["build.rs", "harness/kbuild.rs", "harness/glue", "lkl"]
            .iter()
            .map(|p| self.manifest.join(p))
            .collect();
        inputs.extend(self.own_tree_inputs(build));
        inputs
    }

    /// The files a developer's own tree builds from (for `build.rs` to
    /// watch): everything make's dependency files list, and the Makefiles,
    /// Kbuild and Kconfig files of their directories.
    pub fn own_tree_inputs(&self, build: &Path) -> BTreeSet<PathBuf> {
        let Some(root) = &self.own_tree else {
            return BTreeSet::new();
        };
        let mut inputs = BTreeSet::new();
        let mut dirs = BTreeSet::new();
        let mut stack = vec![build.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_dir() {
                    stack.push(path);
                    continue;
                }
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if !(name.starts_with('.') && name.ends_with(".cmd")) {
                    continue;
                }
                let Ok(text) = fs::read_to_string(&path) else {
                    continue;
                };
                for word in text.split_whitespace() {
                    let word = word.trim_start_matches("$(wildcard").trim_end_matches(')');
                    let p = Path::new(word);
                    if p.is_absolute() && p.starts_with(root) && p.is_file() {
                        if let Some(parent) = p.parent() {
                            dirs.insert(parent.to_path_buf());
                        }
                        inputs.insert(p.to_path_buf());
                    }
                }
            }
        }
        for dir in dirs {
            for name in ["Makefile", "Kbuild", "Kconfig"] {
                let p = dir.join(name);
                if p.is_file() {
                    inputs.insert(p);
                }
            }
        }
        // Only files that exist: cargo takes a missing one for changed,
        // and would run build.rs on every invocation.
        for top in ["Makefile", "scripts/syscall.tbl"] {
            let p = root.join(top);
            if p.is_file() {
                inputs.insert(p);
            }
        }
        inputs
    }
}

/// The developer's own tree that `LINUX_SRC` names, as a canonical path:
/// `LINUX_SRC=../linux`, `LINUX_SRC=/home/me/linux/` and a symbolic link
/// to it are one tree, with one build directory, not a cold build each.
/// Unset or empty: none.
pub fn own_tree_from(linux_src: Option<&std::ffi::OsStr>) -> Result<Option<PathBuf>> {
    let Some(dir) = linux_src.filter(|dir| !dir.is_empty()) else {
        return Ok(None);
    };
    fs::canonicalize(dir).map(Some).map_err(|e| {
        format!(
            "LINUX_SRC={}: {e}; point it at a Linux {} source tree, or unset it to build \
             Debian's",
            Path::new(dir).display(),
            release_name(PATCHED_RELEASE)
        )
    })
}

/// Installs a copy of `file` in `dir` named for its content
/// (`liblkl.so` becomes `liblkl-<stable_hash>.so`) and returns its path.
/// The copy is written aside and renamed into place, so it is whole
/// whenever it can be opened, and a later install of other content goes
/// to another name: a program built against one copy loads that copy,
/// never a newer library written over it. The [`COPIES_KEPT`] newest
/// copies stay; older ones are removed.
pub fn install_copy(file: &Path, dir: &Path) -> Result<PathBuf> {
    let bytes = fs::read(file).map_err(|e| io_err("read", file, e))?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (stem, ext) = name.split_once('.').unwrap_or((&name, ""));
    let prefix = format!("{stem}-");
    let suffix = if ext.is_empty() {
        String::new()
    } else {
        format!(".{ext}")
    };
    let copy = dir.join(format!("{prefix}{:016x}{suffix}", stable_hash(&bytes)));
    if fs::read(&copy).is_ok_and(|old| old == bytes) {
        // Already here: only make it the newest.
        set_mtime(&copy, SystemTime::now())?;
    } else {
        let partial = dir.join(format!("{prefix}partial{suffix}"));
        fs::write(&partial, &bytes).map_err(|e| io_err("write", &partial, e))?;
        fs::rename(&partial, &copy).map_err(|e| io_err("rename", &partial, e))?;
    }
    let mut older: Vec<(SystemTime, PathBuf)> = fs::read_dir(dir)
        .map_err(|e| io_err("read", dir, e))?
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(&prefix) && n.ends_with(&suffix) && e.path() != copy
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    older.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    for (_, old) in older.iter().skip(COPIES_KEPT - 1) {
        fs::remove_file(old).map_err(|e| io_err("remove", old, e))?;
    }
    Ok(copy)
}

/// A tree file a mutant build replaced, to put back.
struct Saved {
    path: PathBuf,
    content: Option<Vec<u8>>,
    mtime: Option<SystemTime>,
}

/// Copies `from`'s files that `patches` touch into `scratch`, and applies
/// the patches there.
fn apply_in_scratch(
    from: &Path,
    scratch: &Path,
    touched: &BTreeSet<String>,
    patches: &[PathBuf],
    explain: impl Fn(&Path, String) -> String,
) -> Result<()> {
    let _ = fs::remove_dir_all(scratch);
    fs::create_dir_all(scratch).map_err(|e| io_err("create", scratch, e))?;
    for file in touched {
        let src = from.join(file);
        let dst = scratch.join(file);
        fs::create_dir_all(dst.parent().expect("a file has a parent"))
            .map_err(|e| io_err("create", scratch, e))?;
        if src.is_file() {
            fs::copy(&src, &dst).map_err(|e| io_err("copy", &src, e))?;
        }
    }
    for patch in patches {
        run_cmd(
            Command::new("patch")
                .args([
                    "-p1",
                    "--forward",
                    "--batch",
                    "--no-backup-if-mismatch",
                    "-s",
                    "-i",
                ])
                .arg(patch)
                .current_dir(scratch),
        )
        .map_err(|e| explain(patch, e))?;
    }
    Ok(())
}

/// The release of a kernel tree, from its Makefile.
pub fn source_release(root: &Path) -> Option<(u32, u32, u32)> {
    let text = fs::read_to_string(root.join("Makefile")).ok()?;
    let field = |name: &str| -> Option<u32> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim_start().strip_prefix('='))
            .and_then(|v| v.trim().parse().ok())
    };
    Some((field("VERSION")?, field("PATCHLEVEL")?, field("SUBLEVEL")?))
}

/// `6.12.118`.
pub fn release_name((version, patchlevel, sublevel): (u32, u32, u32)) -> String {
    format!("{version}.{patchlevel}.{sublevel}")
}

/// `/usr/src`'s tarball, if the installed [`DEBIAN_PACKAGE`] is
/// [`DEBIAN_VERSION`].
fn installed_tarball() -> Option<PathBuf> {
    let tarball = Path::new("/usr/src").join(DEBIAN_TARBALL);
    if !tarball.is_file() {
        return None;
    }
    let version =
        run_cmd(Command::new("dpkg-query").args(["-W", "-f=${Version}", DEBIAN_PACKAGE])).ok()?;
    (version.trim() == DEBIAN_VERSION).then_some(tarball)
}

/// The `.deb` file in `dir`.
fn deb_file(dir: &Path) -> Option<PathBuf> {
    fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
}

/// The package version of the `.deb` file in `dir`.
fn deb_version(dir: &Path) -> Option<String> {
    let deb = deb_file(dir)?;
    let version = run_cmd(Command::new("dpkg-deb").arg("-f").arg(&deb).arg("Version")).ok()?;
    Some(version.trim().to_string())
}

/// The `*.patch` files of `dir`, in name order.
pub fn patch_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut list: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| io_err("read", dir, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "patch"))
        .collect();
    list.sort();
    Ok(list)
}

/// Files the patches create or modify, from their `+++ b/...` lines.
fn patched_files_of(patches: &[PathBuf]) -> Result<BTreeSet<String>> {
    let mut files = BTreeSet::new();
    for patch in patches {
        let file = File::open(patch).map_err(|e| io_err("open", patch, e))?;
        for line in BufReader::new(file).lines() {
            let line = line.map_err(|e| io_err("read", patch, e))?;
            if let Some(rest) = line.strip_prefix("+++ ") {
                if let Some(path) = rest.split('\t').next().and_then(|p| p.strip_prefix("b/")) {
                    files.insert(path.to_string());
                }
            }
        }
    }
    Ok(files)
}

/// Replaces `dst` by `src`'s content only if it differs, keeping the old
/// timestamp (and so make's view of it) otherwise.
fn sync_file(src: &Path, dst: &Path) -> Result<bool> {
    let new = fs::read(src).map_err(|e| io_err("read", src, e))?;
    if fs::read(dst).is_ok_and(|old| old == new) {
        return Ok(false);
    }
    if let Some(parent) = dst.parent() {
        fs::create_dir_all(parent).map_err(|e| io_err("create", parent, e))?;
    }
    // Never write through a hard link into the pristine source.
    let _ = fs::remove_file(dst);
    fs::write(dst, new).map_err(|e| io_err("write", dst, e))?;
    Ok(true)
}

fn set_mtime(path: &Path, when: SystemTime) -> Result<()> {
    File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(when))
        .map_err(|e| io_err("set the time of", path, e))
}

/// Copies a build directory (real copies: make writes object files in
/// place, which would write through hard links).
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    let _ = fs::remove_dir_all(to);
    run_cmd(Command::new("cp").arg("-a").arg(from).arg(to)).map(|_| ())
}

fn newer(a: &Path, b: &Path) -> bool {
    let mtime = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    match (mtime(a), mtime(b)) {
        (Some(a), Some(b)) => a > b,
        _ => true,
    }
}

/// The symbols `nm <args> object` lists that are not in `allowed`.
fn symbols_except(object: &Path, args: &[&str], allowed: &[&str]) -> Result<Vec<String>> {
    let listing = run_cmd(Command::new("nm").args(args).arg(object))?;
    Ok(listing
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|s| !allowed.contains(s))
        .map(str::to_string)
        .collect())
}

/// Fails unless the object's undefined and global symbols are as designed.
fn check_symbols(object: &Path) -> Result<()> {
    let unexpected = symbols_except(object, &["-u"], ALLOWED_UNDEFINED)?;
    if !unexpected.is_empty() {
        return Err(format!(
            "the kernel library has undefined symbols (the arch port must define them): {}",
            unexpected.join(" ")
        ));
    }
    let leaked = symbols_except(object, &["-g", "--defined-only"], API_SYMBOLS)?;
    if !leaked.is_empty() {
        return Err(format!(
            "non-API global symbols in the kernel library: {}",
            leaked.join(" ")
        ));
    }
    Ok(())
}

/// Every file under `dir`, recursively (symbolic links are not followed).
fn list_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => list_files(&path, out),
            Ok(_) => out.push(path),
            Err(_) => {}
        }
    }
}

/// FNV-1a: a hash that stays the same across Rust releases, for names of
/// build directories and digests of build inputs.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn host_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

pub(crate) fn io_err(what: &str, path: &Path, err: std::io::Error) -> String {
    format!("cannot {what} {}: {err}", path.display())
}

/// Runs a command, failing with its output if it fails.
pub fn run_cmd(cmd: &mut Command) -> Result<String> {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Whether a program is on `PATH`.
pub fn have(tool: &str) -> bool {
    env::var_os("PATH")
        .map(|paths| env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false)
}

fn have_libclang() -> bool {
    if env::var_os("LIBCLANG_PATH").is_some() {
        return true;
    }
    // libclang.so, libclang.so.1 or libclang-14.so.1 -- not
    // libclang-cpp.so, which bindgen cannot use.
    let is_libclang = |name: &str| {
        name.starts_with("libclang.so")
            || name.strip_prefix("libclang-").is_some_and(|rest| {
                rest.starts_with(|c: char| c.is_ascii_digit()) && rest.contains(".so")
            })
    };
    let mut dirs: Vec<PathBuf> = ["/usr/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib64"]
        .iter()
        .map(PathBuf::from)
        .collect();
    dirs.extend(
        fs::read_dir("/usr/lib")
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("llvm-"))
            .map(|e| e.path().join("lib")),
    );
    dirs.iter()
        .flat_map(|dir| fs::read_dir(dir).into_iter().flatten().flatten())
        .any(|e| is_libclang(&e.file_name().to_string_lossy()))
}

/// Whether the process runs as root.
pub fn is_root() -> bool {
    extern "C" {
        fn geteuid() -> u32;
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { geteuid() == 0 }
}

/// Installs missing Debian packages with apt-get when running as root;
/// otherwise names the command that would. `wanted` pairs a program (or
/// `None` for one that `present` checks) with its package.
pub fn ensure_packages(report: Reporter, missing: Vec<&str>) -> Result<()> {
    if missing.is_empty() {
        return Ok(());
    }
    let command = format!("apt-get install -y {}", missing.join(" "));
    if !is_root() || !have("apt-get") {
        return Err(format!(
            "missing tools: {}\nInstall them with:\n    sudo {command}",
            missing.join(", ")
        ));
    }
    report(&format!("installing build tools: {command}"));
    run_cmd(
        Command::new("apt-get")
            .arg("update")
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    run_cmd(
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    Ok(())
}

/// The tools a kernel build needs.
fn ensure_host_tools(report: Reporter) -> Result<()> {
    let wanted: &[(&str, &str)] = &[
        ("make", "make"),
        ("gcc", "gcc"),
        ("flex", "flex"),
        ("bison", "bison"),
        ("bc", "bc"),
        ("perl", "perl"),
        ("patch", "patch"),
        ("xz", "xz-utils"),
        ("objcopy", "binutils"),
        // `make headers_install` copies the headers with rsync.
        ("rsync", "rsync"),
    ];
    let mut missing: Vec<&str> = wanted
        .iter()
        .filter(|(tool, _)| !have(tool))
        .map(|(_, package)| *package)
        .collect();
    if !have_libclang() {
        missing.push("libclang-dev");
    }
    ensure_packages(report, missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_hash_is_fnv1a() {
        // The FNV-1a test vectors.
        assert_eq!(stable_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn build_directories_are_named_for_variant_and_mutants() {
        let cache = Cache {
            manifest: "/p".into(),
            dir: "/p/target/lkl".into(),
            own_tree: None,
            report: |_| {},
            jobserver: None,
        };
        assert_eq!(
            cache.build_dir(&Spec::of(Variant::Default)),
            Path::new("/p/target/lkl/build")
        );
        assert_eq!(
            cache.build_dir(&Spec::of(Variant::Race)),
            Path::new("/p/target/lkl/build-race")
        );
        let spec = Spec {
            variant: Variant::Debug,
            mutants: vec!["lkl/mutants/leak.patch".into()],
            coverage: false,
        };
        assert_eq!(
            cache.build_dir(&spec),
            Path::new("/p/target/lkl/build-debug-m-leak")
        );
        assert_eq!(spec.name(), "debug+leak");
    }

    #[test]
    fn own_tree_build_directories_are_named_by_a_hash_stable_across_rust_releases() {
        // FNV-1a of "/src/linux": std's DefaultHasher may change with any
        // Rust release, and a new name is a cold build.
        let cache = Cache {
            own_tree: Some("/src/linux".into()),
            ..cache_in(Path::new("/p"), None, None)
        };
        assert_eq!(
            cache.build_dir(&Spec::of(Variant::Race)),
            Path::new("/p/cache/build-943bdc91cd59c349-race")
        );
    }

    #[test]
    fn every_spelling_of_linux_src_is_one_tree_with_one_build_directory() {
        let dir = scratch("spellings");
        let tree = dir.join("linux");
        fs::create_dir_all(&tree).expect("tree");
        symlink(&tree, dir.join("link")).expect("symlink");
        let cwd = env::current_dir().expect("cwd");
        let up = "../".repeat(cwd.components().count() - 1);
        let relative = format!("{up}{}", tree.display().to_string().trim_start_matches('/'));
        let spellings = [
            tree.display().to_string(),
            format!("{}/", tree.display()),
            format!("{}/../linux/.", tree.display()),
            dir.join("link").display().to_string(),
            relative,
        ];
        let dirs: BTreeSet<PathBuf> = spellings
            .iter()
            .map(|spelling| {
                let own_tree = own_tree_from(Some(std::ffi::OsStr::new(spelling)))
                    .unwrap_or_else(|e| panic!("{spelling}: {e}"));
                assert_eq!(own_tree.as_deref(), Some(tree.as_path()), "{spelling}");
                Cache {
                    own_tree,
                    ..cache_in(&dir, None, None)
                }
                .build_dir(&Spec::of(Variant::Default))
            })
            .collect();
        assert_eq!(dirs.len(), 1, "{dirs:?}");

        assert_eq!(own_tree_from(None), Ok(None));
        assert_eq!(own_tree_from(Some(std::ffi::OsStr::new(""))), Ok(None));
        let err = own_tree_from(Some(std::ffi::OsStr::new("/no/such/linux"))).unwrap_err();
        assert!(
            err.starts_with("LINUX_SRC=/no/such/linux: ") && err.contains("unset it"),
            "{err}"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn debian_version_and_patched_release_agree() {
        let release = format!("{}-", release_name(PATCHED_RELEASE));
        assert!(DEBIAN_VERSION.starts_with(&release), "{DEBIAN_VERSION}");
    }

    #[test]
    fn a_source_of_another_release_is_refused_before_anything_is_made() {
        let dir = scratch("release");
        let cache = cache_in(&dir, None, None);
        let root = cache.dir.join("source/linux-source-6.12");
        fs::create_dir_all(root.join("kernel")).expect("source");
        let (version, patchlevel, _) = PATCHED_RELEASE;
        let other_series = (version, patchlevel + 1, 3);
        fs::write(root.join("Makefile"), release_lines(other_series)).expect("Makefile");
        let lock = cache.lock().expect("lock");
        let err = cache
            .build(&Spec::of(Variant::Default), &lock)
            .expect_err("another release is refused");
        assert!(
            err.contains(&format!(
                "is Linux {}, but lkl/patches/ are made for Linux {}",
                release_name(other_series),
                release_name(PATCHED_RELEASE)
            )),
            "{err}"
        );
        assert!(
            err.contains(&format!("rm -rf {}", cache.dir.display()))
                && err.contains(DEBIAN_VERSION)
                && err.contains("LINUX_SRC"),
            "the fix: {err}"
        );
        // Refused before the tree was patched or make ran.
        assert!(!cache.dir.join("tree").exists());
        assert!(!cache.log_path().exists());
        assert!(cache.tree_build_dirs().is_empty());

        fs::write(root.join("Makefile"), release_lines(PATCHED_RELEASE)).expect("Makefile");
        assert_eq!(cache.check_release(&root), Ok(()));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn another_point_release_is_built_and_every_build_says_so() {
        static SAID: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
        let dir = scratch("point-release");
        let cache = Cache {
            report: |message| SAID.lock().expect("said").push(message.to_string()),
            ..cache_in(&dir, None, None)
        };
        let root = dir.join("linux");
        fs::create_dir_all(&root).expect("source");
        let (version, patchlevel, sublevel) = PATCHED_RELEASE;
        let point_release = (version, patchlevel, sublevel + 2);
        fs::write(root.join("Makefile"), release_lines(point_release)).expect("Makefile");
        assert_eq!(cache.check_release(&root), Ok(()));
        let said = SAID.lock().expect("said").join("\n");
        assert!(
            said.contains(&format!(
                "is Linux {}; lkl/patches/ are made for Linux {}",
                release_name(point_release),
                release_name(PATCHED_RELEASE)
            )) && said.contains("if a patch does not apply, rebase lkl/patches/"),
            "{said}"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_download_of_the_pinned_version_is_used_without_fetching_again() {
        let dir = scratch("deb");
        let cache = cache_in(&dir, None, None);
        // The package as `apt-get download` left it, and extracted.
        let package = dir.join("package");
        fs::create_dir_all(package.join("DEBIAN")).expect("package");
        fs::create_dir_all(package.join("usr/src")).expect("package");
        fs::write(
            package.join("DEBIAN/control"),
            format!(
                "Package: {DEBIAN_PACKAGE}\nVersion: {DEBIAN_VERSION}\nArchitecture: all\n\
                 Maintainer: nobody <nobody@example.org>\nDescription: a test\n"
            ),
        )
        .expect("control");
        fs::write(package.join("usr/src").join(DEBIAN_TARBALL), "").expect("tarball");
        let deb_dir = cache.dir.join("deb");
        fs::create_dir_all(&deb_dir).expect("deb dir");
        let deb = deb_dir.join("linux-source.deb");
        run_cmd(
            Command::new("dpkg-deb")
                .arg("--build")
                .arg(&package)
                .arg(&deb),
        )
        .expect("dpkg-deb --build");
        run_cmd(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&deb_dir)).expect("extract");
        assert_eq!(deb_version(&deb_dir).as_deref(), Some(DEBIAN_VERSION));
        assert_eq!(
            cache.fetch_debian_source(),
            Ok(deb_dir.join("usr/src").join(DEBIAN_TARBALL))
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_tree_of_another_release_is_made_anew_without_its_builds() {
        let dir = scratch("new-release");
        let cache = cache_in(&dir, None, None);
        let source = cache.dir.join("source/linux-source-6.12");
        fs::create_dir_all(&source).expect("source");
        fs::write(source.join("Makefile"), release_lines(PATCHED_RELEASE)).expect("Makefile");
        let (version, patchlevel, sublevel) = PATCHED_RELEASE;
        let older = (version, patchlevel, sublevel - 1);
        fs::create_dir_all(cache.dir.join("tree")).expect("tree");
        fs::write(cache.dir.join("tree/Makefile"), release_lines(older)).expect("Makefile");
        fs::write(cache.dir.join("tree.source"), source.display().to_string()).expect("stamp");
        let own = "build-0123456789abcdef";
        for build in ["build", "build-race", "build-m-leak", own] {
            fs::create_dir_all(cache.dir.join(build)).expect("build dir");
        }
        cache.refresh_tree(&source).expect("refresh");
        assert_eq!(
            source_release(&cache.dir.join("tree")),
            Some(PATCHED_RELEASE)
        );
        assert_eq!(cache.tree_build_dirs(), Vec::<PathBuf>::new());
        assert!(
            cache.dir.join(own).is_dir(),
            "a developer's tree's build stays"
        );
        // The same release again: the builds stay.
        fs::create_dir_all(cache.dir.join("build")).expect("build dir");
        cache.refresh_tree(&source).expect("refresh");
        assert_eq!(cache.tree_build_dirs(), [cache.dir.join("build")]);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_installed_copy_is_named_for_its_content_and_never_rewritten() {
        let dir = scratch("install");
        let library = dir.join("liblkl.so");
        let out = dir.join("out");
        fs::create_dir_all(&out).expect("out");
        fs::write(&library, b"first build").expect("write");
        let first = install_copy(&library, &out).expect("install");
        assert_eq!(
            first,
            out.join(format!("liblkl-{:016x}.so", stable_hash(b"first build")))
        );
        fs::write(&library, b"second build").expect("write");
        let second = install_copy(&library, &out).expect("install");
        assert_ne!(first, second);
        // A binary built against the first copy still loads the first build.
        assert_eq!(fs::read(&first).expect("first"), b"first build");
        assert_eq!(fs::read(&second).expect("second"), b"second build");
        assert_eq!(
            install_copy(&library, &out),
            Ok(second),
            "same content, same copy"
        );
        for n in 0..5 {
            fs::write(&library, format!("build {n}")).expect("write");
            let copy = install_copy(&library, &out).expect("install");
            assert_eq!(
                fs::read(&copy).expect("copy"),
                format!("build {n}").as_bytes()
            );
        }
        let left = fs::read_dir(&out).expect("out").count();
        assert_eq!(
            left, COPIES_KEPT,
            "older copies are removed, no partial file is left"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn make_runs_under_the_jobserver_it_is_given() {
        use std::io::Write as _;
        use std::os::fd::AsRawFd;

        let dir = scratch("jobserver");
        let tree = toy_tree(&dir);
        let (reader, mut writer) = std::io::pipe().expect("pipe");
        writer.write_all(b"+").expect("a token");
        // Copies make inherits (F_DUPFD leaves close-on-exec off),
        // numbered apart from any make would open itself.
        // SAFETY: fcntl duplicates descriptors this test owns; it closes
        // the copies below.
        let (r, w) = unsafe {
            (
                libc::fcntl(reader.as_raw_fd(), libc::F_DUPFD, 100),
                libc::fcntl(writer.as_raw_fd(), libc::F_DUPFD, 100),
            )
        };
        assert!(r >= 100 && w >= 100, "fcntl: {r} {w}");
        let flags = format!("-j --jobserver-auth={r},{w}");
        let cache = cache_in(&dir, Some(tree.clone()), Some(flags.clone()));
        let lock = cache.lock().expect("lock");
        let built = cache.build(&Spec::of(Variant::Default), &lock);
        // SAFETY: the copies made above, used by no one now.
        unsafe {
            libc::close(r);
            libc::close(w);
        }
        built.expect("the toy kernel builds");
        let log = fs::read_to_string(cache.log_path()).expect("log");
        let seen = toy_makeflags(&log);
        assert!(seen.contains(&format!("--jobserver-auth={r},{w}")), "{log}");
        assert!(!log.contains("jobserver unavailable"), "{log}");
        assert!(
            log.contains(&format!("(cargo's jobserver: MAKEFLAGS={flags})")),
            "{log}"
        );

        // Without one, make runs a job per CPU of its own.
        let cache = cache_in(&dir, Some(tree), None);
        cache
            .build(&Spec::of(Variant::Default), &lock)
            .expect("the toy kernel builds");
        let log = fs::read_to_string(cache.log_path()).expect("log");
        let seen = toy_makeflags(&log);
        assert!(seen.contains(&format!("-j{}", host_cpus())), "{log}");
        assert!(
            !seen.contains(&format!("--jobserver-auth={r},{w}")),
            "{log}"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn one_mutant_builds_for_two_kernels_side_by_side() {
        let dir = scratch("side-by-side");
        let tree = toy_tree(&dir);
        let mutant = dir.join("extra.patch");
        fs::write(
            &mutant,
            "--- a/kernel/api.c\n+++ b/kernel/api.c\n@@ -1 +1,2 @@\n\
             +int toy_mutant(void) { return 1; }\n \
             int lkl_start_kernel(void) { return 0; }\n",
        )
        .expect("patch");
        let original = fs::read_to_string(tree.join("kernel/api.c")).expect("api.c");
        let cache = cache_in(&dir, Some(tree.clone()), None);
        let lock = cache.lock().expect("lock");
        let specs: Vec<Spec> = [Variant::Default, Variant::Debug]
            .into_iter()
            .map(|variant| Spec {
                variant,
                mutants: vec![mutant.clone()],
                coverage: false,
            })
            .collect();
        let built = cache
            .build_side_by_side(&specs, &lock)
            .expect("the toy mutant builds for both kernels");
        let log = fs::read_to_string(cache.log_path()).expect("log");
        for (spec, built) in specs.iter().zip(&built) {
            assert_eq!(built.build_dir, cache.build_dir(spec));
            let symbols =
                run_cmd(Command::new("nm").arg(built.build_dir.join("vmlinux"))).expect("nm");
            assert!(
                symbols.contains(" T toy_mutant"),
                "{}: {symbols}",
                spec.name()
            );
            assert!(built.shared_library.is_file(), "{}", spec.name());
            // Each make's log, kept apart while they ran, is in the cache's.
            let header = format!("=== make vmlinux in {} ", built.build_dir.display());
            assert!(log.contains(&header), "{header}: {log}");
            assert!(built.build_dir.join(APART_LOG).is_file());
        }
        assert_eq!(
            fs::read_to_string(tree.join("kernel/api.c")).expect("api.c"),
            original,
            "the tree is as it was"
        );

        let err = cache
            .build_side_by_side(&[specs[0].clone(), Spec::of(Variant::Debug)], &lock)
            .expect_err("kernels with other mutants");
        assert!(err.contains("differ in their mutants"), "{err}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_build_log_holds_one_build_and_stays_bounded() {
        let dir = scratch("log");
        let cache = cache_in(&dir, Some(toy_tree(&dir)), None);
        let lock = cache.lock().expect("lock");
        let mut built = None;
        for _ in 0..3 {
            built = Some(
                cache
                    .build(&Spec::of(Variant::Default), &lock)
                    .expect("the toy kernel builds"),
            );
        }
        let logs: BTreeSet<String> = fs::read_dir(&cache.dir)
            .expect("cache")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("build.log"))
            .collect();
        assert_eq!(
            logs,
            BTreeSet::from(["build.log".into(), "build.log.1".into()])
        );
        for log in ["build.log", "build.log.1"] {
            let text = fs::read_to_string(cache.dir.join(log)).expect("log");
            assert_eq!(text.matches("=== make vmlinux").count(), 1, "{log}: {text}");
        }

        // A log past the limit (one build's make after make, say) is set
        // aside before make appends more.
        let log = cache.log_path();
        File::options()
            .append(true)
            .open(&log)
            .and_then(|f| f.set_len(LOG_LIMIT + 1))
            .expect("a large log");
        let build = built.expect("built").build_dir;
        cache.kmake(&build, &["vmlinux"], &[]).expect("make");
        let len = |p: &Path| fs::metadata(p).expect("log").len();
        assert_eq!(len(&cache.dir.join("build.log.1")), LOG_LIMIT + 1);
        assert!(len(&log) < 64 << 10, "{} bytes", len(&log));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_own_tree_has_cargo_watch_the_files_its_build_read_not_the_tree() {
        let dir = scratch("rerun");
        let tree = toy_tree(&dir);
        let cache = cache_in(&dir, Some(tree.clone()), None);
        let lock = cache.lock().expect("lock");
        let built = cache
            .build(&Spec::of(Variant::Default), &lock)
            .expect("the toy kernel builds");
        let inputs: BTreeSet<PathBuf> = cache.rerun_inputs(&built.build_dir).into_iter().collect();
        let project = Path::new(env!("CARGO_MANIFEST_DIR"));
        let want: BTreeSet<PathBuf> = [
            project.join("build.rs"),
            project.join("harness/kbuild.rs"),
            project.join("harness/glue"),
            project.join("lkl"),
            // What the dependency file lists under the tree (not the host's
            // headers, not a config wildcard that names no file), and the
            // Makefiles of their directories.
            tree.join("kernel/api.c"),
            tree.join("include/api.h"),
            tree.join("kernel/Makefile"),
            tree.join("Makefile"),
        ]
        .into_iter()
        .collect();
        assert_eq!(inputs, want);
        for input in inputs.iter().filter(|p| p.starts_with(&tree)) {
            // A directory would have cargo scan all of it; a missing file
            // would have cargo run build.rs every time.
            assert!(input.is_file(), "{}", input.display());
        }
        let _ = fs::remove_dir_all(&dir);
    }

    /// A directory of this test's own, empty, by its canonical name.
    fn scratch(name: &str) -> PathBuf {
        let dir = env::temp_dir().join(format!("lkl-kbuild-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("a scratch directory");
        fs::canonicalize(&dir).expect("its canonical name")
    }

    /// A cache in `dir/cache` that builds with this project's `lkl/`.
    fn cache_in(dir: &Path, own_tree: Option<PathBuf>, jobserver: Option<String>) -> Cache {
        Cache {
            manifest: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
            dir: dir.join("cache"),
            own_tree,
            report: |_| {},
            jobserver,
        }
    }

    /// The lines of a kernel Makefile that say its release.
    fn release_lines((version, patchlevel, sublevel): (u32, u32, u32)) -> String {
        format!("VERSION = {version}\nPATCHLEVEL = {patchlevel}\nSUBLEVEL = {sublevel}\nEXTRAVERSION =\n")
    }

    /// A kernel tree in miniature, for `Cache::build` as a developer's own
    /// tree: a Makefile with the targets the cache makes, whose vmlinux
    /// holds just the API and which leaves a dependency file as kbuild
    /// does, and says what `MAKEFLAGS` make ran with.
    fn toy_tree(dir: &Path) -> PathBuf {
        let root = dir.join("linux");
        for sub in ["kernel", "include", "arch"] {
            fs::create_dir_all(root.join(sub)).expect("toy tree");
        }
        let api: String = API_SYMBOLS
            .iter()
            .map(|symbol| format!("int {symbol}(void) {{ return 0; }}\n"))
            .collect();
        fs::write(root.join("kernel/api.c"), api).expect("api.c");
        fs::write(root.join("include/api.h"), "").expect("api.h");
        fs::write(root.join("kernel/Makefile"), "obj-y += api.o\n").expect("Makefile");
        let makefile = release_lines(PATCHED_RELEASE)
            + "allnoconfig:\n\
               \tcp $(KCONFIG_ALLCONFIG) $(O)/.config\n\
               vmlinux:\n\
               \t@echo \"toy make: MAKEFLAGS=$(MAKEFLAGS)\"\n\
               \tmkdir -p $(O)/kernel\n\
               \t$(CC) -c -fPIC -o $(O)/kernel/api.o $(CURDIR)/kernel/api.c\n\
               \tobjcopy -R .note.GNU-stack $(O)/kernel/api.o $(O)/vmlinux\n\
               \techo 'deps_kernel/api.o := $(CURDIR)/kernel/api.c $(CURDIR)/include/api.h \
               $$(wildcard $(CURDIR)/include/config/TOY) /usr/include/stdio.h' \
               >$(O)/kernel/.api.o.cmd\n";
        fs::write(root.join("Makefile"), makefile).expect("Makefile");
        root
    }

    /// The `MAKEFLAGS` the toy tree's vmlinux was made with, from the log.
    fn toy_makeflags(log: &str) -> String {
        log.lines()
            .find_map(|l| l.strip_prefix("toy make: MAKEFLAGS="))
            .unwrap_or_else(|| panic!("no toy make line in the log:\n{log}"))
            .to_string()
    }

    #[test]
    fn unknown_variants_are_refused_with_the_list() {
        let err = Variant::from_name("fast").unwrap_err();
        assert!(err.contains("LKL_KERNEL=fast"), "{err}");
        assert!(err.contains("race (KCSAN"), "{err}");
        assert_eq!(Variant::from_name("").unwrap(), Variant::Default);
        assert_eq!(Variant::from_name("debug").unwrap(), Variant::Debug);
    }
}
