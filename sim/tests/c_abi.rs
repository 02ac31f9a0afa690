//! The contract seen from C: compiles `tests/c_abi/checks.c` against the
//! real `host_ops.h` with the system C compiler, loads it with `dlopen`,
//! compares `offsetof` of every field with [`HostOps`], and runs C code
//! that drives every op (except `panic`) through the table.
//!
//! Skipped (with a message) when the header or a C compiler is missing.

use std::ffi::{c_int, CString};
use std::mem::offset_of;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use lkl_sim::{Host, HostOps, Origin};

const HEADER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../lkl/arch/lkl/include/uapi/asm/host_ops.h"
);
const SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/c_abi/checks.c");

fn rust_offsets() -> Vec<usize> {
    vec![
        offset_of!(HostOps, ctx),
        offset_of!(HostOps, image_start),
        offset_of!(HostOps, image_end),
        offset_of!(HostOps, console_write),
        offset_of!(HostOps, panic),
        offset_of!(HostOps, sem_alloc),
        offset_of!(HostOps, sem_free),
        offset_of!(HostOps, sem_up),
        offset_of!(HostOps, sem_down),
        offset_of!(HostOps, mutex_alloc),
        offset_of!(HostOps, mutex_free),
        offset_of!(HostOps, mutex_enter),
        offset_of!(HostOps, mutex_leave),
        offset_of!(HostOps, thread_create),
        offset_of!(HostOps, thread_self),
        offset_of!(HostOps, thread_join),
        offset_of!(HostOps, thread_yield),
        offset_of!(HostOps, tls_alloc),
        offset_of!(HostOps, tls_free),
        offset_of!(HostOps, tls_set),
        offset_of!(HostOps, tls_get),
        offset_of!(HostOps, time_ns),
        offset_of!(HostOps, wall_ns),
        offset_of!(HostOps, timer_alloc),
        offset_of!(HostOps, timer_set_oneshot),
        offset_of!(HostOps, timer_cancel),
        offset_of!(HostOps, timer_free),
        offset_of!(HostOps, mem_alloc),
        offset_of!(HostOps, mem_free),
        offset_of!(HostOps, copy_from_user),
        offset_of!(HostOps, copy_to_user),
        offset_of!(HostOps, user_cmpxchg32),
        offset_of!(HostOps, backtrace),
        offset_of!(HostOps, stack_walk),
        offset_of!(HostOps, shadow_map),
        offset_of!(HostOps, shadow_clear),
    ]
}

/// The loaded checks library; building it is part of the test.
struct Lib(*mut std::ffi::c_void);
// SAFETY: a dlopen handle may be used from any thread.
unsafe impl Send for Lib {}
// SAFETY: as above.
unsafe impl Sync for Lib {}

fn library() -> &'static Lib {
    static LIB: OnceLock<Lib> = OnceLock::new();
    LIB.get_or_init(build_and_load)
}

fn build_and_load() -> Lib {
    assert!(
        Path::new(HEADER).exists(),
        "{HEADER} not found: the C ABI checks need the kernel's host_ops.h"
    );
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    // One file per process: concurrent test runs must not overwrite a
    // library another process is loading.
    let out: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("lkl_sim_c_abi_checks.{}.so", std::process::id()));
    let status = Command::new(&cc)
        .args(["-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-Werror"])
        .arg(format!("-DHOST_OPS_H=\"{HEADER}\""))
        .arg("-o")
        .arg(&out)
        .arg(SOURCE)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{cc} failed to compile {SOURCE} against {HEADER}: {s}"),
        Err(e) => panic!("cannot run {cc} to build the C ABI checks: {e} (install gcc)"),
    }
    let path = CString::new(out.to_str().expect("UTF-8 temp path")).expect("no NUL in path");
    // SAFETY: loading a library we just built; it has no constructors.
    let h = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!h.is_null(), "dlopen failed");
    // The mapping stays valid after the file is gone.
    let _ = std::fs::remove_file(&out);
    Lib(h)
}

fn sym(lib: &Lib, name: &std::ffi::CStr) -> *mut std::ffi::c_void {
    // SAFETY: valid handle and C string.
    let p = unsafe { libc::dlsym(lib.0, name.as_ptr()) };
    assert!(!p.is_null(), "missing symbol {name:?}");
    p
}

#[test]
fn layout_matches_c_header() {
    let lib = library();
    type LayoutFn = unsafe extern "C" fn(*mut usize) -> usize;
    // SAFETY: the symbol has this signature in checks.c.
    let layout: LayoutFn = unsafe { std::mem::transmute(sym(lib, c"lkl_test_layout")) };
    let mut offsets = [0usize; 36];
    // SAFETY: the C function writes exactly 36 entries.
    let size = unsafe { layout(offsets.as_mut_ptr()) };
    assert_eq!(size, std::mem::size_of::<HostOps>(), "sizeof differs");
    assert_eq!(offsets.to_vec(), rust_offsets(), "field offsets differ");
}

#[test]
fn c_code_drives_every_op() {
    let lib = library();
    type RunFn = unsafe extern "C" fn(*const HostOps) -> c_int;
    // SAFETY: the symbol has this signature in checks.c.
    let run: RunFn = unsafe { std::mem::transmute(sym(lib, c"lkl_test_run")) };
    let host = Host::new();
    // SAFETY: the table points at `host`, alive for the whole call.
    let failed_line = unsafe { run(host.ops_ptr()) };
    assert_eq!(failed_line, 0, "check at checks.c:{failed_line} failed");
    let recs = host.console().records();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].text, "hello from C");
    assert_eq!(recs[0].origin, Origin::Kmsg);
}
