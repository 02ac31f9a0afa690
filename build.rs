//! Builds the Linux Kernel Library that the harness links.
//!
//! The kernel itself is built by `harness/kbuild.rs` (shared with the
//! harness, which builds seeded kernels at run time): the source
//! (`LINUX_SRC`, or Debian's `linux-source-6.12`), the work tree with the
//! patches of `lkl/patches/`, `make ARCH=lkl vmlinux`, and the library
//! (`lkl.o` with only the `lkl_*` API global, `liblkl.so`). This script
//! then installs the kernel's UAPI headers, runs bindgen on them (Rust
//! types and `__NR_*` numbers come from the kernel's own headers), builds
//! the C glue, and puts its own copies of the libraries in `OUT_DIR`
//! (`liblkl-<digest>.so`: a newer build never rewrites the file an older
//! test binary loads).
//!
//! `LKL_KERNEL` picks the kernel variant (see `kbuild::Variant`). The
//! cache lives in `target/lkl/` and is shared by every profile; make runs
//! under cargo's jobserver, its output goes to `target/lkl/build.log` (the
//! previous build's is `build.log.1`), and a failure prints its tail.

#[path = "harness/kbuild.rs"]
mod kbuild;

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use kbuild::{io_err, run_cmd, Cache, Result, Spec, Variant};

fn main() {
    if let Err(message) = run() {
        // A panic in build.rs prints its message in full: the user sees
        // what failed and what to do.
        panic!("\n\nlkl-harness: building the kernel library failed:\n{message}\n");
    }
}

fn warn(message: &str) {
    println!("cargo:warning=lkl-harness: {message}");
}

/// Where this build script works.
struct Paths {
    manifest: PathBuf,
    out: PathBuf,
    /// The kernel's build directory.
    build: PathBuf,
    /// The tree make reads the source from.
    source: PathBuf,
}

impl Paths {
    fn headers(&self) -> PathBuf {
        self.build.join("lkl-headers")
    }

    /// This build's own copy of the installed headers, which bindgen, the
    /// glue and the tests (`LKL_HEADERS`) read.
    fn own_headers(&self) -> PathBuf {
        self.out.join("lkl-headers/include")
    }
}

fn run() -> Result<()> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let out = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?);
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { manifest.join(p) })
        .unwrap_or_else(|| manifest.join("target"));

    println!("cargo:rerun-if-env-changed=LINUX_SRC");
    println!("cargo:rerun-if-env-changed=LKL_KERNEL");
    let variant = Variant::from_env()?;
    let own_tree = kbuild::own_tree_from(env::var_os("LINUX_SRC").as_deref())?;
    // A canonical path too: `target/kdebug/lkl` is a link to `target/lkl`
    // (see README), and make must see one build directory under one name,
    // or the other name's builds would rebuild everything.
    let cache_dir = target_dir.join("lkl");
    fs::create_dir_all(&cache_dir).map_err(|e| io_err("create", &cache_dir, e))?;
    let cache_dir = fs::canonicalize(&cache_dir).map_err(|e| io_err("find", &cache_dir, e))?;
    let cache = Cache {
        manifest: manifest.clone(),
        dir: cache_dir,
        own_tree,
        report: warn,
        // make shares cargo's jobs instead of adding its own -j.
        jobserver: env::var("CARGO_MAKEFLAGS").ok(),
    };

    // Two cargo processes (say `cargo test` and `cargo run --release`)
    // may build at once; the cache takes one at a time.
    let lock = cache.lock()?;
    let source = cache.source_dir();
    let spec = Spec::of(variant);
    let built = cache.build(&spec, &lock)?;
    let paths = Paths {
        manifest,
        out,
        build: built.build_dir.clone(),
        source,
    };
    install_headers(&cache, &paths)?;
    copy_headers(&paths)?;
    generate_bindings(&paths)?;
    build_glue(&paths)?;

    // This build's own copies: a later build of the cache cannot change
    // them under a test binary that was linked with these.
    let shared = kbuild::install_copy(&built.shared_library, &paths.out)?;
    let archive = paths.out.join("liblkl.a");
    let _ = fs::remove_file(&archive);
    run_cmd(
        Command::new("ar")
            .arg("rcs")
            .arg(&archive)
            .arg(&built.object),
    )?;

    for input in cache.rerun_inputs(&paths.build) {
        println!("cargo:rerun-if-changed={}", input.display());
    }
    println!("cargo:rustc-link-search=native={}", paths.out.display());
    println!("cargo:rustc-link-lib=static=lkl");
    println!("cargo:rustc-env=LKL_SHARED_LIBRARY={}", shared.display());
    println!("cargo:rustc-env=LKL_STATIC_LIBRARY={}", archive.display());
    println!(
        "cargo:rustc-env=LKL_HEADERS={}",
        paths.own_headers().display()
    );
    println!(
        "cargo:rustc-env=LKL_BUILD_LOG={}",
        cache.log_path().display()
    );
    println!("cargo:rustc-env=LKL_KERNEL_VARIANT={}", variant.name());
    // The selftest runner's entry points, which the programs it loads
    // resolve (harness/glue/ksft_shim.c).
    for symbol in ["lkl_ksft_route", "lkl_ksft_exit_hook"] {
        println!("cargo:rustc-link-arg-bin=lkl-harness=-Wl,--export-dynamic-symbol={symbol}");
    }
    // Tests of one variant's checkers exist only in that variant's build.
    let names: Vec<String> = Variant::ALL
        .iter()
        .map(|v| format!("\"{}\"", v.name()))
        .collect();
    println!(
        "cargo:rustc-check-cfg=cfg(lkl_kernel, values({}))",
        names.join(", ")
    );
    println!("cargo:rustc-cfg=lkl_kernel=\"{}\"", variant.name());
    println!("cargo:rustc-env=LKL_SOURCE_TREE={}", paths.source.display());
    println!("cargo:rustc-env=LKL_CACHE_DIR={}", cache.dir.display());
    println!(
        "cargo:rustc-env=LKL_OWN_TREE={}",
        cache
            .own_tree
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    Ok(())
}

/// `make headers_install`, only when the UAPI headers may have changed.
fn install_headers(cache: &Cache, paths: &Paths) -> Result<()> {
    let installed = paths.headers().join("include/asm/unistd_64.h");
    let generated = paths
        .build
        .join("arch/lkl/include/generated/uapi/asm/unistd_64.h");
    let stamp = paths.build.join("lkl-headers.stamp");
    let newest_uapi = newest_mtime(&[
        paths.source.join("include/uapi"),
        paths.manifest.join("lkl/arch/lkl/include/uapi"),
    ]);
    let stamp_time = fs::metadata(&stamp).and_then(|m| m.modified()).ok();
    let fresh = installed.is_file()
        && !newer(&generated, &stamp)
        && matches!((newest_uapi, stamp_time), (Some(a), Some(b)) if a <= b);
    if fresh {
        return Ok(());
    }
    cache.kmake(
        &paths.build,
        &["headers_install"],
        &[format!("INSTALL_HDR_PATH={}", paths.headers().display())],
    )?;
    fs::write(&stamp, "").map_err(|e| io_err("write", &stamp, e))?;
    Ok(())
}

/// Copies the installed headers into `OUT_DIR`, as the libraries are: the
/// cache's copy is reinstalled by the next build from any checkout (another
/// series, say one with a system call more), while tests built from this
/// one still read theirs.
fn copy_headers(paths: &Paths) -> Result<()> {
    let own = paths.out.join("lkl-headers");
    let partial = paths.out.join("lkl-headers.partial");
    let _ = fs::remove_dir_all(&partial);
    run_cmd(
        Command::new("cp")
            .arg("-a")
            .arg(paths.headers())
            .arg(&partial),
    )?;
    let _ = fs::remove_dir_all(&own);
    fs::rename(&partial, &own).map_err(|e| io_err("rename", &partial, e))
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

fn newer(a: &Path, b: &Path) -> bool {
    let mtime = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    match (mtime(a), mtime(b)) {
        (Some(a), Some(b)) => a > b,
        _ => true,
    }
}

/// Rust declarations from the installed kernel headers.
fn generate_bindings(paths: &Paths) -> Result<()> {
    let include = paths.own_headers();
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
         #include <asm/signal.h>\n\
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
        .allowlist_var("SIG[A-Z0-9]+")
        .allowlist_var("SA_[A-Z]+")
        .allowlist_type("sigaction")
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
    let config_path = paths.build.join(".config");
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
    let selftest = paths
        .source
        .join("tools/testing/selftests/hello/hello_test.c");
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
            .include(paths.own_headers())
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
