//! Builds the Linux Kernel Library that the harness links.
//!
//! 1. Kernel source: `LINUX_SRC` (a developer's own tree), or Debian's
//!    `linux-source-6.12`, from `/usr/src` if installed, otherwise fetched
//!    with `apt-get download` and unpacked with `dpkg-deb -x` into a cache.
//! 2. A work tree in the cache: the pristine source (hard links, cheap), the
//!    patches of `lkl/patches/` applied file by file so that a file whose
//!    content did not change keeps its timestamp, and `arch/lkl` linked to
//!    `lkl/arch/lkl`.  Make's own incrementality then rebuilds exactly what
//!    an edit touches.
//! 3. `make ARCH=lkl vmlinux` (a relocatable object), `objcopy` keeping only
//!    the `lkl_*` API global, `liblkl.a` (linked here) and `liblkl.so`.
//! 4. `make headers_install` and bindgen: Rust types and `__NR_*` numbers
//!    come from the kernel's own headers.
//!
//! The cache lives in `target/lkl/` and is shared by every profile.  Build
//! output goes to a log file whose path is printed; a failure prints its
//! tail.

use std::collections::BTreeSet;
use std::env;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Debian package holding the kernel source.
const DEBIAN_PACKAGE: &str = "linux-source-6.12";
/// The tarball inside that package.
const DEBIAN_TARBALL: &str = "linux-source-6.12.tar.xz";
/// Symbols kept global in the library; everything else becomes local.
const API_SYMBOLS: &[&str] = &[
    "lkl_start_kernel",
    "lkl_syscall",
    "lkl_flush_console",
    "lkl_sys_halt",
];
/// The only undefined symbol a relocatable vmlinux may have.
const ALLOWED_UNDEFINED: &[&str] = &["_GLOBAL_OFFSET_TABLE_"];

type Result<T> = std::result::Result<T, String>;

/// Which kernel to build: `LKL_KERNEL=debug` adds lock debugging
/// (lockdep) and list debugging from `lkl/config/debug.config`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    Default,
    Debug,
}

fn kernel_variant() -> Variant {
    match env::var("LKL_KERNEL").as_deref() {
        Ok("debug") => Variant::Debug,
        _ => Variant::Default,
    }
}

fn main() {
    if let Err(message) = run() {
        // A panic in build.rs prints its message in full: the user sees
        // what failed and what to do.
        panic!("\n\nlkl-harness: building the kernel library failed:\n{message}\n");
    }
}

struct Paths {
    manifest: PathBuf,
    cache: PathBuf,
    out: PathBuf,
}

impl Paths {
    fn tree(&self) -> PathBuf {
        self.cache.join("tree")
    }
    /// The kernel's object tree: one per source tree, so that switching
    /// between the Debian source and a developer's `LINUX_SRC` never
    /// rebuilds from scratch.
    fn build(&self) -> PathBuf {
        let variant = match kernel_variant() {
            Variant::Default => "",
            Variant::Debug => "-debug",
        };
        match env::var_os("LINUX_SRC") {
            None => self.cache.join(format!("build{variant}")),
            Some(dir) => {
                use std::hash::{Hash, Hasher};
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                dir.hash(&mut hasher);
                self.cache
                    .join(format!("build-{:016x}{variant}", hasher.finish()))
            }
        }
    }
    fn headers(&self) -> PathBuf {
        self.build().join("lkl-headers")
    }
    fn log(&self) -> PathBuf {
        self.cache.join("build.log")
    }
}

fn run() -> Result<()> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let out = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?);
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { manifest.join(p) })
        .unwrap_or_else(|| manifest.join("target"));
    let paths = Paths {
        cache: target_dir.join("lkl"),
        manifest,
        out,
    };
    fs::create_dir_all(&paths.cache).map_err(|e| io_err("create", &paths.cache, e))?;

    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=lkl");
    println!("cargo:rerun-if-changed=harness/glue");
    println!("cargo:rerun-if-env-changed=LINUX_SRC");
    println!("cargo:rerun-if-env-changed=LKL_KERNEL");
    if let Ok(other) = env::var("LKL_KERNEL") {
        if other != "debug" && !other.is_empty() {
            return Err(format!(
                "LKL_KERNEL={other}: the kernels are the default one (LKL_KERNEL unset) \
                 and LKL_KERNEL=debug"
            ));
        }
    }

    // Two cargo processes (say `cargo test` and `cargo run --release`)
    // may build at once; the cache takes one at a time.
    let lock_path = paths.cache.join("lock");
    let lock = File::create(&lock_path).map_err(|e| io_err("create", &lock_path, e))?;
    lock.lock().map_err(|e| io_err("lock", &lock_path, e))?;

    ensure_host_tools()?;
    let source = kernel_source(&paths)?;
    prepare_tree(&paths, &source)?;
    configure(&paths)?;
    build_kernel(&paths)?;
    let lib = package_library(&paths)?;
    install_headers(&paths)?;
    generate_bindings(&paths)?;
    build_glue(&paths)?;

    println!("cargo:rustc-link-search=native={}", paths.out.display());
    println!("cargo:rustc-link-lib=static=lkl");
    println!("cargo:rustc-env=LKL_SHARED_LIBRARY={}", lib.display());
    println!(
        "cargo:rustc-env=LKL_STATIC_LIBRARY={}",
        paths.out.join("liblkl.a").display()
    );
    println!(
        "cargo:rustc-env=LKL_HEADERS={}",
        paths.headers().join("include").display()
    );
    println!("cargo:rustc-env=LKL_BUILD_LOG={}", paths.log().display());
    println!(
        "cargo:rustc-env=LKL_KERNEL_VARIANT={}",
        match kernel_variant() {
            Variant::Default => "default",
            Variant::Debug => "debug",
        }
    );
    println!(
        "cargo:rustc-env=LKL_SOURCE_TREE={}",
        source_dir(&paths).display()
    );
    Ok(())
}

fn io_err(what: &str, path: &Path, err: std::io::Error) -> String {
    format!("cannot {what} {}: {err}", path.display())
}

/// Runs a command, failing with its output if it fails.
fn run_cmd(cmd: &mut Command) -> Result<String> {
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

fn have(tool: &str) -> bool {
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

/// Installs missing build tools with apt-get when running as root on
/// Debian; otherwise names the command that would.
fn ensure_host_tools() -> Result<()> {
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
    if missing.is_empty() {
        return Ok(());
    }
    let command = format!("apt-get install -y {}", missing.join(" "));
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc_geteuid() } == 0;
    if !root || !have("apt-get") {
        return Err(format!(
            "missing build tools: {}\nInstall them with:\n    sudo {command}",
            missing.join(", ")
        ));
    }
    println!("cargo:warning=lkl-harness: installing build tools: {command}");
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

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// Where the kernel source comes from.
struct Source {
    /// The pristine tree.
    root: PathBuf,
    /// A developer's own tree (`LINUX_SRC`): used as it is, unpatched.
    own_tree: bool,
}

fn kernel_source(paths: &Paths) -> Result<Source> {
    if let Some(dir) = env::var_os("LINUX_SRC") {
        let root = PathBuf::from(dir);
        if !root.join("Makefile").is_file() || !root.join("kernel").is_dir() {
            return Err(format!(
                "LINUX_SRC={} is not a kernel source tree (no Makefile or kernel/ there)",
                root.display()
            ));
        }
        return Ok(Source {
            root,
            own_tree: true,
        });
    }

    let unpacked = paths.cache.join("source");
    let root = unpacked.join("linux-source-6.12");
    if root.join("Makefile").is_file() {
        return Ok(Source {
            root,
            own_tree: false,
        });
    }

    let tarball = Path::new("/usr/src").join(DEBIAN_TARBALL);
    let tarball = if tarball.is_file() {
        tarball
    } else {
        fetch_debian_source(paths)?
    };
    let partial = paths.cache.join("source.partial");
    let _ = fs::remove_dir_all(&partial);
    fs::create_dir_all(&partial).map_err(|e| io_err("create", &partial, e))?;
    println!("cargo:warning=lkl-harness: unpacking {}", tarball.display());
    run_cmd(
        Command::new("tar")
            .arg("-xf")
            .arg(&tarball)
            .arg("-C")
            .arg(&partial),
    )?;
    let _ = fs::remove_dir_all(&unpacked);
    fs::rename(&partial, &unpacked).map_err(|e| io_err("rename", &partial, e))?;
    Ok(Source {
        root,
        own_tree: false,
    })
}

fn fetch_debian_source(paths: &Paths) -> Result<PathBuf> {
    let deb_dir = paths.cache.join("deb");
    let tarball = deb_dir.join("usr/src").join(DEBIAN_TARBALL);
    if tarball.is_file() {
        return Ok(tarball);
    }
    fs::create_dir_all(&deb_dir).map_err(|e| io_err("create", &deb_dir, e))?;
    println!("cargo:warning=lkl-harness: apt-get download {DEBIAN_PACKAGE}");
    let download = || {
        run_cmd(
            Command::new("apt-get")
                .args(["download", DEBIAN_PACKAGE])
                .current_dir(&deb_dir),
        )
    };
    if download().is_err() {
        // A fresh machine may have no package lists yet.
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc_geteuid() } == 0 {
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

/// Files a patch creates or modifies, from its `+++ b/...` lines.
fn patched_files(patch: &Path) -> Result<Vec<String>> {
    let file = File::open(patch).map_err(|e| io_err("open", patch, e))?;
    let mut files = Vec::new();
    for line in BufReader::new(file).lines() {
        let line = line.map_err(|e| io_err("read", patch, e))?;
        if let Some(rest) = line.strip_prefix("+++ ") {
            if let Some(path) = rest.split('\t').next().and_then(|p| p.strip_prefix("b/")) {
                files.push(path.to_string());
            }
        }
    }
    Ok(files)
}

fn patches(paths: &Paths) -> Result<Vec<PathBuf>> {
    let dir = paths.manifest.join("lkl/patches");
    let mut list: Vec<PathBuf> = fs::read_dir(&dir)
        .map_err(|e| io_err("read", &dir, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "patch"))
        .collect();
    list.sort();
    Ok(list)
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

/// Makes the work tree: pristine source + patches + the arch port.
fn prepare_tree(paths: &Paths, source: &Source) -> Result<()> {
    let tree = paths.tree();
    let link_arch = |tree: &Path| -> Result<()> {
        let arch = tree.join("arch/lkl");
        let port = paths.manifest.join("lkl/arch/lkl");
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

    if source.own_tree {
        // The developer's tree is built in place (with O=), unpatched; an
        // edit anywhere in it reruns this script (make then decides what
        // to rebuild).
        println!("cargo:rerun-if-changed={}", source.root.display());
        link_arch(&source.root)?;
        let exclude = source.root.join(".git/info/exclude");
        if let Ok(text) = fs::read_to_string(&exclude) {
            if !text.lines().any(|l| l == "/arch/lkl") {
                let _ = fs::write(&exclude, format!("{text}\n/arch/lkl\n"));
            }
        }
        return Ok(());
    }

    let stamp = paths.cache.join("tree.source");
    let source_id = source.root.display().to_string();
    if fs::read_to_string(&stamp).ok().as_deref() != Some(source_id.as_str()) {
        let _ = fs::remove_dir_all(&tree);
        run_cmd(Command::new("cp").arg("-al").arg(&source.root).arg(&tree))?;
        fs::write(&stamp, &source_id).map_err(|e| io_err("write", &stamp, e))?;
        let _ = fs::remove_file(paths.cache.join("tree.patched"));
    }
    link_arch(&tree)?;

    // Apply the patches to copies of the files they touch, in a scratch
    // directory, then sync those into the tree by content.
    let patch_list = patches(paths)?;
    let mut touched = BTreeSet::new();
    for patch in &patch_list {
        touched.extend(patched_files(patch)?);
    }
    let scratch = paths.cache.join("patch-scratch");
    let _ = fs::remove_dir_all(&scratch);
    for file in &touched {
        let from = source.root.join(file);
        let to = scratch.join(file);
        fs::create_dir_all(to.parent().expect("a file has a parent"))
            .map_err(|e| io_err("create", &scratch, e))?;
        if from.is_file() {
            fs::copy(&from, &to).map_err(|e| io_err("copy", &from, e))?;
        }
    }
    fs::create_dir_all(&scratch).map_err(|e| io_err("create", &scratch, e))?;
    for patch in &patch_list {
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
                .current_dir(&scratch),
        )
        .map_err(|e| {
            format!(
                "patch {} does not apply to the kernel source:\n{e}",
                patch.display()
            )
        })?;
    }

    // Files an earlier version of the patches touched go back to pristine.
    let record = paths.cache.join("tree.patched");
    let previous: BTreeSet<String> = fs::read_to_string(&record)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    for file in previous.difference(&touched) {
        let pristine = source.root.join(file);
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

fn source_dir(paths: &Paths) -> PathBuf {
    env::var_os("LINUX_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| paths.tree())
}

fn jobs() -> String {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .to_string()
}

/// `make` in the kernel tree, output appended to the build log.
fn kmake(paths: &Paths, targets: &[&str], extra: &[String]) -> Result<()> {
    let log_path = paths.log();
    let log = File::options()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| io_err("open", &log_path, e))?;
    let log_err = log.try_clone().map_err(|e| io_err("open", &log_path, e))?;
    let mut cmd = Command::new("make");
    cmd.arg("-C")
        .arg(source_dir(paths))
        .arg(format!("O={}", paths.build().display()))
        .arg("ARCH=lkl")
        .arg(format!("-j{}", jobs()))
        .args(extra)
        .args(targets)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    // Cargo's jobserver and variables are not the kernel's business.
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
    println!(
        "cargo:warning=lkl-harness: make {} took {:.1}s (log: {})",
        targets.join(" "),
        started.elapsed().as_secs_f64(),
        log_path.display()
    );
    Ok(())
}

/// Writes `.config` from the fragment whenever the fragment changes.
fn configure(paths: &Paths) -> Result<()> {
    fs::create_dir_all(paths.build()).map_err(|e| io_err("create", &paths.build(), e))?;
    let base = paths.manifest.join("lkl/config/lkl.config");
    let mut wanted = fs::read_to_string(&base).map_err(|e| io_err("read", &base, e))?;
    if kernel_variant() == Variant::Debug {
        let debug = paths.manifest.join("lkl/config/debug.config");
        wanted += &fs::read_to_string(&debug).map_err(|e| io_err("read", &debug, e))?;
    }
    // The fragment make reads: the configuration files, concatenated.
    let fragment = paths.build().join("lkl-fragment.config");
    fs::write(&fragment, &wanted).map_err(|e| io_err("write", &fragment, e))?;
    let stamp = paths.build().join(".config.fragment");
    let config = paths.build().join(".config");
    if config.is_file() && fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(());
    }
    kmake(
        paths,
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

fn build_kernel(paths: &Paths) -> Result<()> {
    kmake(paths, &["vmlinux"], &[])
}

fn newer(a: &Path, b: &Path) -> bool {
    let mtime = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    match (mtime(a), mtime(b)) {
        (Some(a), Some(b)) => a > b,
        _ => true,
    }
}

/// vmlinux → lkl.o (only the API global) → liblkl.a and liblkl.so.
fn package_library(paths: &Paths) -> Result<PathBuf> {
    let vmlinux = paths.build().join("vmlinux");
    let object = paths.build().join("lkl.o");
    let shared = paths.build().join("liblkl.so");
    if newer(&vmlinux, &object) || !shared.is_file() {
        let mut objcopy = Command::new("objcopy");
        for sym in API_SYMBOLS {
            objcopy.arg("-G").arg(sym);
        }
        // The kernel needs no executable stack; say so for the linker.
        objcopy
            .arg("--add-section")
            .arg(".note.GNU-stack=/dev/null");
        run_cmd(objcopy.arg(&vmlinux).arg(&object))?;
        check_symbols(&object)?;
        run_cmd(
            Command::new("gcc")
                .args(["-shared", "-nostdlib", "-Wl,-z,noexecstack", "-o"])
                .arg(&shared)
                .arg(&object),
        )?;
    }
    let archive = paths.out.join("liblkl.a");
    let _ = fs::remove_file(&archive);
    run_cmd(Command::new("ar").arg("rcs").arg(&archive).arg(&object))?;
    Ok(shared)
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

/// `make headers_install`, only when the UAPI headers may have changed.
fn install_headers(paths: &Paths) -> Result<()> {
    let installed = paths.headers().join("include/asm/unistd_64.h");
    let generated = paths
        .build()
        .join("arch/lkl/include/generated/uapi/asm/unistd_64.h");
    let stamp = paths.build().join("lkl-headers.stamp");
    let newest_uapi = newest_mtime(&[
        source_dir(paths).join("include/uapi"),
        paths.manifest.join("lkl/arch/lkl/include/uapi"),
    ]);
    let stamp_time = fs::metadata(&stamp).and_then(|m| m.modified()).ok();
    let fresh = installed.is_file()
        && !newer(&generated, &stamp)
        && matches!((newest_uapi, stamp_time), (Some(a), Some(b)) if a <= b);
    if fresh {
        return Ok(());
    }
    kmake(
        paths,
        &["headers_install"],
        &[format!("INSTALL_HDR_PATH={}", paths.headers().display())],
    )?;
    fs::write(&stamp, "").map_err(|e| io_err("write", &stamp, e))?;
    Ok(())
}

fn newest_mtime(dirs: &[PathBuf]) -> Option<std::time::SystemTime> {
    let mut newest = None;
    let mut stack: Vec<PathBuf> = dirs.to_vec();
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if let Ok(m) = meta.modified() {
                newest = newest.max(Some(m));
            }
        }
    }
    newest
}

/// Rust declarations from the installed kernel headers.
fn generate_bindings(paths: &Paths) -> Result<()> {
    let include = paths.headers().join("include");
    let wrapper = paths.out.join("lkl_wrapper.h");
    fs::write(
        &wrapper,
        "#include <asm/unistd.h>\n\
         #include <asm/host_ops.h>\n\
         #include <linux/utsname.h>\n\
         #include <linux/time_types.h>\n\
         #include <linux/sysinfo.h>\n\
         #include <linux/errno.h>\n\
         #include <linux/fcntl.h>\n\
         #include <linux/reboot.h>\n\
         #if __has_include(<linux/hello.h>)\n\
         #include <linux/hello.h>\n\
         #endif\n",
    )
    .map_err(|e| io_err("write", &wrapper, e))?;
    let bindings = bindgen::Builder::default()
        .header(wrapper.display().to_string())
        // Only the kernel's own headers: never the host's libc or kernel.
        .clang_args(["-nostdinc", "-I"])
        .clang_arg(include.display().to_string())
        .allowlist_var("__NR_.*")
        .allowlist_var("HELLO_.*")
        .allowlist_var("E[A-Z0-9]+")
        .allowlist_var("O_.*")
        .allowlist_var("AT_.*")
        .allowlist_var("LINUX_REBOOT_.*")
        .allowlist_type("hello_args")
        .allowlist_type("new_utsname")
        .allowlist_type("sysinfo")
        .allowlist_type("__kernel_timespec")
        .allowlist_type("lkl_host_ops")
        .derive_default(true)
        .layout_tests(true)
        .generate()
        .map_err(|e| format!("bindgen failed on the installed kernel headers: {e}"))?;
    let out = paths.out.join("bindings.rs");
    bindings
        .write_to_file(&out)
        .map_err(|e| io_err("write", &out, e))?;
    generate_kconfig(paths)
}

/// The configuration values the harness checks its options against, as
/// Rust constants (`sys::kconfig`).
fn generate_kconfig(paths: &Paths) -> Result<()> {
    let config_path = paths.build().join(".config");
    let config = fs::read_to_string(&config_path).map_err(|e| io_err("read", &config_path, e))?;
    let value = |name: &str| -> Result<String> {
        config
            .lines()
            .find_map(|l| l.strip_prefix(&format!("CONFIG_{name}=")))
            .map(str::to_string)
            .ok_or_else(|| format!("{} has no CONFIG_{name}", config_path.display()))
    };
    let text = format!(
        "/// Values of the kernel's configuration (`.config`).\n\
         pub mod kconfig {{\n    \
         /// `CONFIG_NR_CPUS`: the most CPUs the kernel can boot with.\n    \
         pub const NR_CPUS: u32 = {};\n}}\n",
        value("NR_CPUS")?
    );
    let out = paths.out.join("kconfig.rs");
    fs::write(&out, text).map_err(|e| io_err("write", &out, e))
}

/// C glue compiled with cc: the seed's selftest, run in-process against a
/// `syscall()` that enters the library kernel.
fn build_glue(paths: &Paths) -> Result<()> {
    let glue = paths.manifest.join("harness/glue");
    let selftest = source_dir(paths).join("tools/testing/selftests/hello/hello_test.c");
    cc::Build::new()
        .file(glue.join("syscall_shim.c"))
        .warnings(true)
        .extra_warnings(true)
        .compile("lkl_glue");
    println!("cargo:rustc-check-cfg=cfg(lkl_hello_selftest)");
    if selftest.is_file() {
        println!("cargo:rustc-cfg=lkl_hello_selftest");
        // The selftest is a program: its main() gets a name of its own,
        // and its syscall() and output go to the glue.
        cc::Build::new()
            .file(&selftest)
            .include(paths.headers().join("include"))
            .define("main", "lkl_hello_selftest_main")
            .define("syscall", "lkl_glue_syscall")
            .define("printf", "lkl_glue_printf")
            .define("fprintf", "lkl_glue_fprintf")
            .define("__assert_fail", "lkl_glue_assert_fail")
            .warnings(true)
            .compile("lkl_hello_selftest");
    }
    Ok(())
}
