//! The patch's own C selftest
//! (`tools/testing/selftests/hello/hello_test.c`), run in this process
//! against a booted kernel.
//!
//! `build.rs` compiles the selftest with its `main()` renamed and its
//! `syscall()` routed into the C glue (`harness/glue/syscall_shim.c`),
//! which calls a function pointer we hand it. That pointer is a
//! trampoline here: it forwards each system call to the kernel that
//! [`run_hello_selftest`] was given, through [`Kernel::syscall_raw`], so
//! the selftest runs against that kernel and no other.
//!
//! ```
//! use lkl_harness::{selftest::run_hello_selftest, BootOptions, Kernel};
//!
//! let kernel = Kernel::boot(BootOptions::default()).unwrap();
//! let outcome = run_hello_selftest(&kernel);
//! assert_eq!(outcome.status, 0, "{}", outcome.output);
//! ```

pub mod program;

pub use program::{
    compile, parse_tap, programs_in, run, run_program, runner, CaseResult, Exit, Program,
    SelftestError, SelftestOptions, SelftestReport, TapCase, Verdict,
};

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_int, c_long};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Mutex, PoisonError};

use crate::errno::Errno;
use crate::kernel::Kernel;

/// How a selftest run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelftestOutcome {
    /// The selftest's exit status: what its `main()` returned (0 for
    /// `KSFT_PASS`), or -1 if an `assert()` failed.
    pub status: i32,
    /// What it printed through the glue's `printf()`.
    pub output: String,
}

#[cfg(lkl_hello_selftest)]
extern "C" {
    /// `lkl_glue_run_selftest()` of `harness/glue/syscall_shim.c`.
    fn lkl_glue_run_selftest(
        syscall_fn: unsafe extern "C" fn(c_long, *mut c_long) -> c_long,
        output: *mut *const c_char,
        output_len: *mut usize,
    ) -> c_int;
}

/// The glue keeps its syscall pointer and output buffer in C globals: one
/// run at a time in the whole process.
static RUN: Mutex<()> = Mutex::new(());

thread_local! {
    /// The kernel the current run on this thread calls into, or null.
    static TARGET: Cell<*const Kernel> = const { Cell::new(std::ptr::null()) };
    /// A panic raised by a system call of the current run, re-raised when
    /// the C code has returned (a panic must not unwind through C).
    static PANIC: RefCell<Option<Box<dyn Any + Send>>> = const { RefCell::new(None) };
}

/// Points [`TARGET`] at a kernel until dropped.
struct Target;

impl Target {
    fn set(kernel: &Kernel) -> Target {
        TARGET.with(|t| t.set(kernel));
        Target
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        TARGET.with(|t| t.set(std::ptr::null()));
    }
}

/// `-errno`, as `lkl_syscall()` returns errors.
fn neg(errno: Errno) -> c_long {
    -c_long::from(errno.0)
}

/// The `lkl_syscall()`-shaped function the glue calls: forwards to the
/// kernel of the current run on this thread.
///
/// # Safety
///
/// `params` must point at six readable `long`s (the glue's array).
unsafe extern "C" fn route_syscall(nr: c_long, params: *mut c_long) -> c_long {
    let kernel = TARGET.with(Cell::get);
    if kernel.is_null() || params.is_null() {
        // Not inside run_hello_selftest() on this thread.
        return neg(Errno::ENOSYS);
    }
    let Ok(nr) = u32::try_from(nr) else {
        return neg(Errno::ENOSYS);
    };
    // SAFETY: the glue passes its array of six longs (our contract).
    let args: [c_long; 6] = unsafe { params.cast::<[c_long; 6]>().read() };
    // SAFETY: TARGET is only non-null while run_hello_selftest() runs on
    // this thread, which borrows the kernel for that whole time.
    let kernel = unsafe { &*kernel };
    // SAFETY: the arguments are the C selftest's own, made by its libc
    // wrappers from its own buffers: the program, not Rust, owns whatever
    // memory they point at, as with a real system call.
    let call = || unsafe { kernel.syscall_raw(nr, &args) };
    match panic::catch_unwind(AssertUnwindSafe(call)) {
        Ok(ret) => ret,
        Err(payload) => {
            PANIC.with(|p| {
                p.borrow_mut().get_or_insert(payload);
            });
            neg(Errno::ESHUTDOWN)
        }
    }
}

/// Runs the hello selftest against `kernel`: its system calls go to this
/// kernel, its output is returned. Runs are serialised process-wide (the
/// glue is single-instance C); the selftest runs on the calling thread.
///
/// A system call that panics (the kernel panicked or was halted) makes
/// the selftest see `ESHUTDOWN`; the panic is re-raised here once the
/// selftest has returned.
pub fn run_hello_selftest(kernel: &Kernel) -> SelftestOutcome {
    let serial = RUN.lock().unwrap_or_else(PoisonError::into_inner);
    let outcome = {
        let _target = Target::set(kernel);
        run_glue()
    };
    let panicked = PANIC.with(|p| p.borrow_mut().take());
    drop(serial);
    if let Some(payload) = panicked {
        panic::resume_unwind(payload);
    }
    outcome
}

#[cfg(lkl_hello_selftest)]
fn run_glue() -> SelftestOutcome {
    let mut output: *const c_char = std::ptr::null();
    let mut len = 0usize;
    // SAFETY: the glue and the selftest are linked in (cfg); both out
    // pointers are valid for writes; `route_syscall` reads the six longs
    // the glue passes. RUN is held, so no other run uses the glue's
    // globals.
    let status = unsafe { lkl_glue_run_selftest(route_syscall, &mut output, &mut len) };
    let output = if output.is_null() {
        String::new()
    } else {
        // SAFETY: the glue returns its static output buffer and the number
        // of bytes written to it; it is not written again while RUN is
        // held.
        let bytes = unsafe { std::slice::from_raw_parts(output.cast::<u8>(), len) };
        String::from_utf8_lossy(bytes).into_owned()
    };
    SelftestOutcome { status, output }
}

#[cfg(not(lkl_hello_selftest))]
fn run_glue() -> SelftestOutcome {
    // Never a silent pass: without the selftest the run fails.
    let _ = route_syscall;
    SelftestOutcome {
        status: -1,
        output: "the hello selftest (tools/testing/selftests/hello/hello_test.c) \
                 is not in the kernel source; build.rs did not compile it"
            .into(),
    }
}
