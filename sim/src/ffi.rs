//! The C ABI: a field-by-field mirror of `struct lkl_host_ops`
//! (`lkl/arch/lkl/include/uapi/asm/host_ops.h`) and the helpers every
//! `extern "C"` shim in this crate uses so that no Rust panic ever unwinds
//! into C.
//!
//! The layout is checked against the C header by the `c_abi` integration
//! test, which compiles the header with the system C compiler.

use std::ffi::{c_char, c_int, c_uint, c_ulong, c_ulonglong, c_void};
use std::marker::{PhantomData, PhantomPinned};
use std::panic::{catch_unwind, AssertUnwindSafe};

macro_rules! opaque {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// Opaque to C; only ever handled through a pointer.
        #[repr(C)]
        pub struct $name {
            _data: [u8; 0],
            _marker: PhantomData<(*mut u8, PhantomPinned)>,
        }
    };
}

opaque!(
    /// C `struct lkl_sem`: a [`crate::sem::Semaphore`] behind the pointer.
    LklSem
);
opaque!(
    /// C `struct lkl_mutex`: a [`crate::mutex::HostMutex`] behind the pointer.
    LklMutex
);
opaque!(
    /// C `struct lkl_tls_key`: a [`crate::tls::TlsKey`] behind the pointer.
    LklTlsKey
);
opaque!(
    /// C `struct lkl_timer`: a [`crate::timer::Timer`] behind the pointer.
    LklTimer
);

/// A host thread id as C sees it (`unsigned long`); 0 is never a valid
/// thread.
pub type LklThread = c_ulong;

/// C `void (*fn)(void *)`: a thread body or timer callback.
pub type CallbackFn = unsafe extern "C" fn(arg: *mut c_void);

/// C `void (*destructor)(void *)`: a thread-local slot's destructor.
pub type TlsDestructor = unsafe extern "C" fn(value: *mut c_void);

/// `console_write(ctx, str, len)`.
pub type ConsoleWriteFn = unsafe extern "C" fn(ctx: *mut c_void, s: *const c_char, len: c_uint);

/// `panic(ctx, msg)`: record the panic and return (the kernel never runs
/// on the calling thread again).
pub type PanicFn = unsafe extern "C" fn(ctx: *mut c_void, msg: *const c_char);

/// Mirror of C `struct lkl_host_ops`, field by field, same order and types.
///
/// Build one with [`HostOps::new`] (generic services from this crate plus a
/// caller-supplied console/panic pair) or, usually, with
/// [`crate::host::Host::ops`]. The kernel keeps the pointer it is given
/// until `lkl_sys_halt()` returns, so the table must live at least that
/// long ([`crate::host::Host::ops_ptr`] gives a table stored inside the
/// `Host`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct HostOps {
    /// Opaque pointer to the host instance, passed back to `console_write`
    /// and `panic`.
    pub ctx: *mut c_void,
    /// Start of the host mapping the kernel was loaded from (a shared
    /// object), or 0: user copies refuse it like the kernel's own memory.
    pub image_start: c_ulong,
    /// End of that mapping, or 0.
    pub image_end: c_ulong,

    /// Append `len` bytes of console output.
    pub console_write: Option<ConsoleWriteFn>,
    /// The kernel panicked: record the message and return.
    pub panic: Option<PanicFn>,

    /// Allocate a counting semaphore with `count` initial tokens.
    pub sem_alloc: Option<unsafe extern "C" fn(count: c_int) -> *mut LklSem>,
    /// Free a semaphore.
    pub sem_free: Option<unsafe extern "C" fn(sem: *mut LklSem)>,
    /// Release one token.
    pub sem_up: Option<unsafe extern "C" fn(sem: *mut LklSem)>,
    /// Wait for and take one token.
    pub sem_down: Option<unsafe extern "C" fn(sem: *mut LklSem)>,

    /// Allocate a non-recursive mutex.
    pub mutex_alloc: Option<unsafe extern "C" fn() -> *mut LklMutex>,
    /// Free a mutex.
    pub mutex_free: Option<unsafe extern "C" fn(mutex: *mut LklMutex)>,
    /// Lock a mutex.
    pub mutex_enter: Option<unsafe extern "C" fn(mutex: *mut LklMutex)>,
    /// Unlock a mutex.
    pub mutex_leave: Option<unsafe extern "C" fn(mutex: *mut LklMutex)>,

    /// Start a host thread running `f(arg)`; 0 on error.
    pub thread_create:
        Option<unsafe extern "C" fn(f: Option<CallbackFn>, arg: *mut c_void) -> LklThread>,
    /// The calling host thread's id.
    pub thread_self: Option<unsafe extern "C" fn() -> LklThread>,
    /// Wait for a thread created by `thread_create`; 0 or -1.
    pub thread_join: Option<unsafe extern "C" fn(tid: LklThread) -> c_int>,
    /// Let other host threads run.
    pub thread_yield: Option<unsafe extern "C" fn()>,

    /// Allocate a thread-local slot.
    pub tls_alloc:
        Option<unsafe extern "C" fn(destructor: Option<TlsDestructor>) -> *mut LklTlsKey>,
    /// Free a thread-local slot.
    pub tls_free: Option<unsafe extern "C" fn(key: *mut LklTlsKey)>,
    /// Set the calling thread's value of a slot; 0 or -1.
    pub tls_set: Option<unsafe extern "C" fn(key: *mut LklTlsKey, data: *mut c_void) -> c_int>,
    /// The calling thread's value of a slot, or NULL.
    pub tls_get: Option<unsafe extern "C" fn(key: *mut LklTlsKey) -> *mut c_void>,

    /// Host monotonic clock in nanoseconds.
    pub time_ns: Option<unsafe extern "C" fn() -> c_ulonglong>,
    /// Host real-time clock in nanoseconds since the epoch.
    pub wall_ns: Option<unsafe extern "C" fn() -> c_ulonglong>,

    /// Allocate a one-shot timer calling `f(arg)` from a host thread.
    pub timer_alloc:
        Option<unsafe extern "C" fn(f: Option<CallbackFn>, arg: *mut c_void) -> *mut LklTimer>,
    /// Arm a timer `delta_ns` from now, replacing an earlier arming; 0 or -1.
    pub timer_set_oneshot:
        Option<unsafe extern "C" fn(timer: *mut LklTimer, delta_ns: c_ulonglong) -> c_int>,
    /// Disarm a timer if it has not fired.
    pub timer_cancel: Option<unsafe extern "C" fn(timer: *mut LklTimer)>,
    /// Free a timer; it will not fire afterwards.
    pub timer_free: Option<unsafe extern "C" fn(timer: *mut LklTimer)>,

    /// Allocate page-aligned memory; NULL on failure.
    pub mem_alloc: Option<unsafe extern "C" fn(size: c_ulong) -> *mut c_void>,
    /// Free memory from `mem_alloc`.
    pub mem_free: Option<unsafe extern "C" fn(addr: *mut c_void, size: c_ulong)>,

    /// Copy from a possibly invalid host address; returns bytes NOT copied.
    pub copy_from_user:
        Option<unsafe extern "C" fn(dst: *mut c_void, src: *const c_void, len: c_ulong) -> c_ulong>,
    /// Copy to a possibly invalid host address; returns bytes NOT copied.
    pub copy_to_user:
        Option<unsafe extern "C" fn(dst: *mut c_void, src: *const c_void, len: c_ulong) -> c_ulong>,

    /// Compare-and-exchange a 32-bit word at a possibly invalid host
    /// address; 0, or -1 if it faulted.
    pub user_cmpxchg32:
        Option<unsafe extern "C" fn(uaddr: *mut u32, expected: *mut u32, desired: u32) -> c_int>,

    /// Write the calling thread's call stack, a frame a line, into `buf`.
    pub backtrace:
        Option<unsafe extern "C" fn(ctx: *mut c_void, buf: *mut c_char, len: c_ulong) -> c_ulong>,
    /// The calling thread's return addresses, innermost first.
    pub stack_walk: Option<unsafe extern "C" fn(pcs: *mut c_ulong, max: c_ulong) -> c_ulong>,

    /// Map KASAN's shadow at `addr` (once per process); 0 or -1.
    pub shadow_map: Option<unsafe extern "C" fn(addr: c_ulong, len: c_ulong) -> c_int>,
    /// Return part of the shadow to zeroes.
    pub shadow_clear: Option<unsafe extern "C" fn(addr: c_ulong, len: c_ulong)>,

    /// A basic block at this offset from `_stext` ran on the calling
    /// thread (kernels built with `CONFIG_LKL_COVERAGE`).
    pub coverage: Option<unsafe extern "C" fn(offset: c_ulong)>,
}

// SAFETY: the table is plain immutable data (function pointers and an opaque
// pointer). The kernel calls every op from arbitrary host threads anyway, so
// whoever fills `ctx` must already make the pointee usable from any thread
// (`crate::host::Host` is `Sync`). Sharing or moving the table itself adds
// nothing to that requirement.
unsafe impl Send for HostOps {}
// SAFETY: see the `Send` impl above; `&HostOps` only allows reading.
unsafe impl Sync for HostOps {}

/// The names of the fields of [`HostOps`], in order, excluding `ctx`.
pub const OP_NAMES: [&str; 34] = [
    "console_write",
    "panic",
    "sem_alloc",
    "sem_free",
    "sem_up",
    "sem_down",
    "mutex_alloc",
    "mutex_free",
    "mutex_enter",
    "mutex_leave",
    "thread_create",
    "thread_self",
    "thread_join",
    "thread_yield",
    "tls_alloc",
    "tls_free",
    "tls_set",
    "tls_get",
    "time_ns",
    "wall_ns",
    "timer_alloc",
    "timer_set_oneshot",
    "timer_cancel",
    "timer_free",
    "mem_alloc",
    "mem_free",
    "copy_from_user",
    "copy_to_user",
    "user_cmpxchg32",
    "backtrace",
    "stack_walk",
    "shadow_map",
    "shadow_clear",
    "coverage",
];

impl HostOps {
    /// A table with every generic service of this crate filled in, and the
    /// per-instance pair (`console_write`, `panic`) and `ctx` supplied by the
    /// caller. [`crate::host::Host::ops`] uses this with its own shims.
    pub const fn new(ctx: *mut c_void, console_write: ConsoleWriteFn, panic: PanicFn) -> Self {
        use crate::{clock, mem, mutex, sem, thread, timer, tls, uaccess};
        HostOps {
            ctx,
            image_start: 0,
            image_end: 0,
            console_write: Some(console_write),
            panic: Some(panic),
            sem_alloc: Some(sem::sem_alloc),
            sem_free: Some(sem::sem_free),
            sem_up: Some(sem::sem_up),
            sem_down: Some(sem::sem_down),
            mutex_alloc: Some(mutex::mutex_alloc),
            mutex_free: Some(mutex::mutex_free),
            mutex_enter: Some(mutex::mutex_enter),
            mutex_leave: Some(mutex::mutex_leave),
            thread_create: Some(thread::thread_create),
            thread_self: Some(thread::thread_self),
            thread_join: Some(thread::thread_join),
            thread_yield: Some(thread::thread_yield),
            tls_alloc: Some(tls::tls_alloc),
            tls_free: Some(tls::tls_free),
            tls_set: Some(tls::tls_set),
            tls_get: Some(tls::tls_get),
            time_ns: Some(clock::time_ns),
            wall_ns: Some(clock::wall_ns),
            timer_alloc: Some(timer::timer_alloc),
            timer_set_oneshot: Some(timer::timer_set_oneshot),
            timer_cancel: Some(timer::timer_cancel),
            timer_free: Some(timer::timer_free),
            mem_alloc: Some(mem::mem_alloc),
            mem_free: Some(mem::mem_free),
            copy_from_user: Some(uaccess::copy_from_user),
            copy_to_user: Some(uaccess::copy_to_user),
            user_cmpxchg32: Some(uaccess::user_cmpxchg32),
            backtrace: Some(crate::backtrace::backtrace),
            stack_walk: Some(crate::backtrace::stack_walk),
            shadow_map: Some(mem::shadow_map),
            shadow_clear: Some(mem::shadow_clear),
            coverage: Some(crate::coverage::coverage),
        }
    }

    /// A table not tied to any [`crate::host::Host`]: `ctx` is NULL, console
    /// output goes to the process's stderr and `panic` prints the message to
    /// stderr and returns.
    pub const fn standalone() -> Self {
        Self::new(std::ptr::null_mut(), stderr_console_write, stderr_panic)
    }

    /// The names of the ops left NULL (empty for a complete table).
    pub fn missing(&self) -> Vec<&'static str> {
        let present = [
            self.console_write.is_some(),
            self.panic.is_some(),
            self.sem_alloc.is_some(),
            self.sem_free.is_some(),
            self.sem_up.is_some(),
            self.sem_down.is_some(),
            self.mutex_alloc.is_some(),
            self.mutex_free.is_some(),
            self.mutex_enter.is_some(),
            self.mutex_leave.is_some(),
            self.thread_create.is_some(),
            self.thread_self.is_some(),
            self.thread_join.is_some(),
            self.thread_yield.is_some(),
            self.tls_alloc.is_some(),
            self.tls_free.is_some(),
            self.tls_set.is_some(),
            self.tls_get.is_some(),
            self.time_ns.is_some(),
            self.wall_ns.is_some(),
            self.timer_alloc.is_some(),
            self.timer_set_oneshot.is_some(),
            self.timer_cancel.is_some(),
            self.timer_free.is_some(),
            self.mem_alloc.is_some(),
            self.mem_free.is_some(),
            self.copy_from_user.is_some(),
            self.copy_to_user.is_some(),
            self.user_cmpxchg32.is_some(),
            self.backtrace.is_some(),
            self.stack_walk.is_some(),
            self.shadow_map.is_some(),
            self.shadow_clear.is_some(),
            self.coverage.is_some(),
        ];
        OP_NAMES
            .iter()
            .zip(present)
            .filter(|(_, p)| !p)
            .map(|(n, _)| *n)
            .collect()
    }
}

/// `console_write` for [`HostOps::standalone`]: copies the bytes to stderr.
///
/// # Safety
///
/// `s` must be NULL or point to `len` readable bytes.
unsafe extern "C" fn stderr_console_write(_ctx: *mut c_void, s: *const c_char, len: c_uint) {
    guard("console_write", || {
        if s.is_null() || len == 0 {
            return;
        }
        // SAFETY: the caller guarantees `s` points to `len` readable bytes.
        let bytes = unsafe { std::slice::from_raw_parts(s.cast::<u8>(), len as usize) };
        write_stderr(bytes);
    })
}

/// `panic` for [`HostOps::standalone`]: prints the message and returns.
///
/// # Safety
///
/// `msg` must be NULL or a NUL-terminated string.
unsafe extern "C" fn stderr_panic(_ctx: *mut c_void, msg: *const c_char) {
    guard("panic", || {
        // SAFETY: the caller guarantees `msg` is NULL or NUL-terminated.
        let text = unsafe { c_str_lossy(msg) };
        write_stderr(format!("lkl-sim: kernel panic: {text}\n").as_bytes());
    })
}

/// Reads a C string into an owned `String`, replacing invalid UTF-8;
/// NULL becomes `"(null)"`.
///
/// # Safety
///
/// `p` must be NULL or point to a NUL-terminated string.
pub(crate) unsafe fn c_str_lossy(p: *const c_char) -> String {
    if p.is_null() {
        return "(null)".to_owned();
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_string_lossy()
        .into_owned()
}

/// Writes straight to fd 2 with `write(2)`: usable anywhere (no locks, no
/// thread-locals, cannot panic), including inside thread-local destructors.
pub(crate) fn write_stderr(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid readable buffer of `bytes.len()` bytes.
        let n = unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

/// Prints `lkl-sim: fatal: <what>` to stderr and aborts the process.
///
/// Used on states that can only come from a broken caller (e.g. a NULL
/// handle) or from a bug in this crate, where unwinding into C would be
/// undefined behaviour.
pub(crate) fn fatal(what: &str) -> ! {
    write_stderr(format!("lkl-sim: fatal: {what}; aborting\n").as_bytes());
    std::process::abort()
}

/// Runs the body of an `extern "C"` shim, aborting with a clear message if
/// it panics (unwinding into C is undefined behaviour).
pub(crate) fn guard<R>(op: &'static str, body: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".to_owned());
            // Do not drop `payload`: its destructor could panic again.
            std::mem::forget(payload);
            fatal(&format!("Rust panic in host op `{op}`: {msg}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{align_of, size_of};

    #[test]
    fn layout_is_37_words() {
        // ctx, image_start, image_end and 34 function pointers.
        assert_eq!(size_of::<HostOps>(), 37 * size_of::<*const ()>());
        assert_eq!(align_of::<HostOps>(), align_of::<*const ()>());
        assert_eq!(size_of::<Option<CallbackFn>>(), size_of::<*const ()>());
    }

    #[test]
    fn standalone_table_is_complete() {
        let ops = HostOps::standalone();
        assert!(ops.missing().is_empty(), "{:?}", ops.missing());
        assert!(ops.ctx.is_null());
    }

    #[test]
    fn missing_reports_holes() {
        let mut ops = HostOps::standalone();
        ops.tls_get = None;
        ops.copy_to_user = None;
        assert_eq!(ops.missing(), vec!["tls_get", "copy_to_user"]);
    }

    #[test]
    fn guard_passes_values_through() {
        assert_eq!(guard("test", || 41 + 1), 42);
    }

    #[test]
    fn c_str_lossy_handles_null_and_bad_utf8() {
        // SAFETY: NULL is allowed.
        assert_eq!(unsafe { c_str_lossy(std::ptr::null()) }, "(null)");
        let bytes = b"ok\xff\0";
        // SAFETY: NUL-terminated buffer.
        let s = unsafe { c_str_lossy(bytes.as_ptr().cast()) };
        assert_eq!(s, "ok\u{fffd}");
    }

    #[test]
    fn standalone_console_write_accepts_null() {
        let ops = HostOps::standalone();
        let w = ops.console_write.unwrap();
        // SAFETY: NULL with len 0 and a valid buffer are both allowed.
        unsafe {
            w(std::ptr::null_mut(), std::ptr::null(), 5);
            w(std::ptr::null_mut(), c"".as_ptr(), 0);
        }
    }
}
