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
//! A build directory with mutants starts as a copy of its variant's, and
//! the mutants' files are put into the shared tree only while it builds
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
pub const PATCHED_RELEASE: (u32, u32, u32) = (6, 12, 117);
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

    /// The build log of the current run (the previous one is `build.log.1`).
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

    /// Starts a new build log, keeping the previous one as `build.log.1`.
    pub fn rotate_log(&self) -> Result<()> {
        let log = self.log_path();
        if log.is_file() {
            let old = self.dir.join("build.log.1");
            fs::rename(&log, &old).map_err(|e| io_err("rename", &log, e))?;
        }
        Ok(())
    }

    /// Builds `spec`, or finds it up to date. The caller holds the lock.
    pub fn build(&self, spec: &Spec, _lock: &Lock) -> Result<Built> {
        let dir = self.build_dir(spec);
        let stamp = dir.join(".lkl-inputs");
        if let Some(digest) = self.inputs_digest(spec)? {
            let built = Built {
                object: dir.join("lkl.o"),
                shared_library: dir.join("liblkl.so"),
                build_dir: dir.clone(),
            };
            if fs::read_to_string(&stamp).ok().as_deref() == Some(digest.as_str())
                && built.object.is_file()
                && built.shared_library.is_file()
            {
                return Ok(built);
            }
        }
        ensure_host_tools(self.report)?;
        let source = self.kernel_source()?;
        self.prepare_tree(&source)?;
        let build = self.make_vmlinux(spec)?;
        let built = self.package(&build)?;
        if let Some(digest) = self.inputs_digest(spec)? {
            fs::write(&stamp, digest).map_err(|e| io_err("write", &stamp, e))?;
        }
        Ok(built)
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

    /// Configures and makes `spec`'s vmlinux in its build directory, which
    /// starts as a copy of its base's (see [`Spec::base`]) so that only
    /// what differs is compiled. Returns the directory.
    fn make_vmlinux(&self, spec: &Spec) -> Result<PathBuf> {
        let build = self.build_dir(spec);
        if !build.join(".config").is_file() {
            if let Some(base) = spec.base() {
                let base_dir = self.make_vmlinux(&base)?;
                copy_dir(&base_dir, &build)?;
                // Its packaged library is the base's until rebuilt.
                let _ = fs::remove_file(build.join("lkl.o"));
            }
        }
        self.configure(spec, &build)?;
        let vars = if spec.coverage {
            self.coverage_vars()?
        } else {
            Vec::new()
        };
        if spec.mutants.is_empty() {
            self.kmake(&build, &["vmlinux"], &vars)?;
        } else {
            let mutated = self.apply_mutants(spec, &build)?;
            let made = self.kmake(&build, &["vmlinux"], &vars);
            let restored = self.restore(&mutated);
            made?;
            restored?;
        }
        Ok(build)
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

    /// The pristine source: `LINUX_SRC`, or Debian's.
    fn kernel_source(&self) -> Result<PathBuf> {
        if let Some(root) = &self.own_tree {
            if !root.join("Makefile").is_file() || !root.join("kernel").is_dir() {
                return Err(format!(
                    "LINUX_SRC={} is not a kernel source tree (no Makefile or kernel/ there)",
                    root.display()
                ));
            }
            return Ok(root.clone());
        }
        let unpacked = self.dir.join("source");
        let root = unpacked.join("linux-source-6.12");
        if root.join("Makefile").is_file() {
            return Ok(root);
        }
        let tarball = Path::new("/usr/src").join(DEBIAN_TARBALL);
        let tarball = if tarball.is_file() {
            tarball
        } else {
            self.fetch_debian_source()?
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
        Ok(root)
    }

    fn fetch_debian_source(&self) -> Result<PathBuf> {
        let deb_dir = self.dir.join("deb");
        let tarball = deb_dir.join("usr/src").join(DEBIAN_TARBALL);
        if tarball.is_file() {
            return Ok(tarball);
        }
        fs::create_dir_all(&deb_dir).map_err(|e| io_err("create", &deb_dir, e))?;
        (self.report)(&format!("apt-get download {DEBIAN_PACKAGE}"));
        let download = || {
            run_cmd(
                Command::new("apt-get")
                    .args(["download", DEBIAN_PACKAGE])
                    .current_dir(&deb_dir),
            )
        };
        if download().is_err() {
            // A fresh machine may have no package lists yet.
            if is_root() {
                run_cmd(Command::new("apt-get").arg("update"))?;
            }
            download().map_err(|e| {
                format!(
                    "{e}\nThe kernel source could not be fetched. Either run\n    \
                     sudo apt-get update && sudo apt-get install {DEBIAN_PACKAGE}\n\
                     or point LINUX_SRC at a Linux 6.12 source tree."
                )
            })?;
        }
        let deb = fs::read_dir(&deb_dir)
            .map_err(|e| io_err("read", &deb_dir, e))?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .ok_or_else(|| format!("apt-get download left no .deb in {}", deb_dir.display()))?;
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
        let stamp = self.dir.join("tree.source");
        let source_id = source.display().to_string();
        if fs::read_to_string(&stamp).ok().as_deref() != Some(source_id.as_str()) {
            let _ = fs::remove_dir_all(&tree);
            run_cmd(Command::new("cp").arg("-al").arg(source).arg(&tree))?;
            fs::write(&stamp, &source_id).map_err(|e| io_err("write", &stamp, e))?;
            let _ = fs::remove_file(self.dir.join("tree.patched"));
        }
        link_arch(&tree)?;

        let patch_list = self.patches()?;
        let touched = patched_files_of(&patch_list)?;
        let scratch = self.dir.join("patch-scratch");
        apply_in_scratch(source, &scratch, &touched, &patch_list, |patch, e| {
            let release = source_release(source)
                .map(|(a, b, c)| format!("{a}.{b}.{c}"))
                .unwrap_or_else(|| "an unknown release".into());
            let (a, b, c) = PATCHED_RELEASE;
            format!(
                "patch {} does not apply to the kernel source ({release}; the patches \
                 are made for {a}.{b}.{c}): rebase it onto that source, or conflicts \
                 with an earlier patch in lkl/patches/ are the cause:\n{e}",
                patch.display()
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

    /// Puts the mutants' version of the files they touch into the tree.
    /// Each such file gets a timestamp of this build directory's, so that
    /// make rebuilds it here when its content is new to this directory
    /// only. Returns what to restore.
    fn apply_mutants(&self, spec: &Spec, build: &Path) -> Result<Vec<Saved>> {
        let tree = self.source_dir();
        let touched = patched_files_of(&spec.mutants)?;
        let scratch = self.dir.join("mutant-scratch");
        apply_in_scratch(&tree, &scratch, &touched, &spec.mutants, |patch, e| {
            format!(
                "mutant {} does not apply on top of lkl/patches/: {e}",
                patch.display()
            )
        })?;
        let stamp_path = build.join("lkl-mutant.stamp");
        let stamp = fs::read_to_string(&stamp_path).unwrap_or_default();
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
            // The timestamp this directory last built this content with.
            let when = stamp
                .lines()
                .find_map(|l| {
                    let mut f = l.split(' ');
                    (f.next() == Some(file) && f.next() == Some(&format!("{hash:016x}")))
                        .then(|| f.next().and_then(|t| t.parse::<u64>().ok()))
                        .flatten()
                })
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
        fs::write(&stamp_path, new_stamp).map_err(|e| io_err("write", &stamp_path, e))?;
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

    /// `make` in the kernel tree, output appended to the build log.
    pub fn kmake(&self, build: &Path, targets: &[&str], extra: &[String]) -> Result<()> {
        fs::create_dir_all(build).map_err(|e| io_err("create", build, e))?;
        let log_path = self.log_path();
        let mut log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| io_err("open", &log_path, e))?;
        let _ = writeln!(log, "=== make {} in {}", targets.join(" "), build.display());
        let log_err = log.try_clone().map_err(|e| io_err("open", &log_path, e))?;
        let mut cmd = Command::new("make");
        cmd.arg("-C")
            .arg(self.source_dir())
            .arg(format!("O={}", build.display()))
            .arg("ARCH=lkl")
            .args(extra)
            .args(targets)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
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
        match &self.jobserver {
            // Cargo's jobserver: make takes its share of cargo's -j.
            Some(flags) => {
                cmd.env("MAKEFLAGS", flags);
            }
            None => {
                cmd.arg(format!("-j{}", host_cpus()));
            }
        }
        let started = Instant::now();
        let status = cmd.status().map_err(|e| format!("cannot run make: {e}"))?;
        if !status.success() {
            let tail = fs::read_to_string(&log_path).unwrap_or_default();
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
            "make {} in {} took {:.1}s (log: {})",
            targets.join(" "),
            build.file_name().unwrap_or_default().to_string_lossy(),
            started.elapsed().as_secs_f64(),
            log_path.display()
        ));
        Ok(())
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
        for top in ["Makefile", "scripts/syscall.tbl"] {
            inputs.insert(root.join(top));
        }
        inputs
    }
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
    fn unknown_variants_are_refused_with_the_list() {
        let err = Variant::from_name("fast").unwrap_err();
        assert!(err.contains("LKL_KERNEL=fast"), "{err}");
        assert!(err.contains("race (KCSAN"), "{err}");
        assert_eq!(Variant::from_name("").unwrap(), Variant::Default);
        assert_eq!(Variant::from_name("debug").unwrap(), Variant::Debug);
    }
}
