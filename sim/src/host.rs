//! One kernel instance's host state: its console and its panic state, and
//! the ops table that points the kernel at them.
//!
//! ```no_run
//! use std::time::Duration;
//! use lkl_sim::Host;
//!
//! let host = Host::new();
//! let ops = host.ops_ptr(); // give this to lkl_start_kernel()
//! # let _ = ops;
//! // ... run the kernel; keep `host` alive until lkl_sys_halt() returns ...
//! if let Some(msg) = host.wait_panic(Duration::from_millis(10)) {
//!     eprintln!("kernel panicked: {msg}\n{}", host.console().dmesg());
//! }
//! ```

use std::ffi::{c_char, c_uint, c_void};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::console::{Console, Origin, Record};
use crate::ffi::{c_str_lossy, guard, write_stderr, HostOps};

/// Host state of one kernel instance. Create with [`Host::new`].
///
/// **Lifetime:** the ops tables from [`ops`](Self::ops) and
/// [`ops_ptr`](Self::ops_ptr) carry a raw pointer to this `Host` as `ctx`;
/// the caller must keep an `Arc<Host>` alive for as long as the kernel may
/// call them (until `lkl_sys_halt()` returns — and forever if the kernel
/// panicked or was never halted, since its threads live on and may still
/// write to the console).
#[derive(Debug)]
pub struct Host {
    console: Console,
    panic: Mutex<Option<String>>,
    panic_cond: Condvar,
    ops: OnceLock<HostOps>,
    image: (usize, usize),
}

impl Host {
    /// A new host instance with an empty console and no panic.
    pub fn new() -> Arc<Host> {
        Self::with_image(0, 0)
    }

    /// A host for a kernel loaded from a shared object mapped at
    /// `start..end`: the kernel refuses user copies from or to that range
    /// like its own memory.
    pub fn with_image(start: usize, end: usize) -> Arc<Host> {
        Arc::new(Host {
            console: Console::new(),
            panic: Mutex::new(None),
            panic_cond: Condvar::new(),
            ops: OnceLock::new(),
            image: (start, end),
        })
    }

    /// This instance's kernel log.
    pub fn console(&self) -> &Console {
        &self.console
    }

    /// A complete ops table for this instance: `ctx` is
    /// `Arc::as_ptr(self)`, console output goes to [`console`](Self::console)
    /// and `panic` records into this `Host`. See the lifetime note on
    /// [`Host`].
    pub fn ops(self: &Arc<Self>) -> HostOps {
        let mut ops = HostOps::new(
            Arc::as_ptr(self).cast_mut().cast(),
            host_console_write,
            host_panic,
        );
        ops.image_start = self.image.0 as _;
        ops.image_end = self.image.1 as _;
        ops
    }

    /// A pointer to a table like [`ops`](Self::ops) stored inside this
    /// `Host`, valid as long as the `Host` is: suitable for
    /// `lkl_start_kernel()`, which keeps the pointer.
    pub fn ops_ptr(self: &Arc<Self>) -> *const HostOps {
        self.ops.get_or_init(|| self.ops())
    }

    /// The message of the first kernel panic, if the kernel panicked.
    pub fn panic_message(&self) -> Option<String> {
        self.panic.lock().clone()
    }

    /// Whether the kernel panicked.
    pub fn has_panicked(&self) -> bool {
        self.panic.lock().is_some()
    }

    /// Waits at most `timeout` for a kernel panic; returns its message.
    pub fn wait_panic(&self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now().checked_add(timeout);
        let mut p = self.panic.lock();
        while p.is_none() {
            match deadline {
                Some(d) => {
                    if self.panic_cond.wait_until(&mut p, d).timed_out() {
                        break;
                    }
                }
                None => self.panic_cond.wait(&mut p),
            }
        }
        p.clone()
    }

    /// Records a panic: flushes the console's partial line, appends a host
    /// record `Kernel panic (host): <msg>` at level 0, keeps the first
    /// message, wakes [`wait_panic`](Self::wait_panic) waiters and copies
    /// the notice to stderr. This is all the `panic` op does before
    /// returning to the kernel (which then never runs on that thread
    /// again).
    pub fn record_panic(&self, msg: &str) {
        let notice = format!("Kernel panic (host): {msg}");
        write_stderr(format!("lkl-sim: {notice}\n").as_bytes());
        self.console.flush();
        self.console.push_record(Record {
            level: 0,
            text: notice,
            origin: Origin::Host,
            ..Record::default()
        });
        let mut p = self.panic.lock();
        if p.is_none() {
            *p = Some(msg.to_owned());
        }
        drop(p);
        self.panic_cond.notify_all();
    }
}

/// Turns `ctx` back into the `Host`.
///
/// # Safety
///
/// `ctx` must be NULL or `Arc::as_ptr` of a live `Host`.
unsafe fn host_ref<'a>(ctx: *mut c_void) -> Option<&'a Host> {
    // SAFETY: per the caller's contract, NULL or a live Host (kept alive by
    // an Arc the embedder holds, as documented on `Host`).
    unsafe { ctx.cast_const().cast::<Host>().as_ref() }
}

/// `console_write` of a [`Host`] table. With a NULL `ctx` the bytes go to
/// stderr.
///
/// # Safety
///
/// `ctx` must be NULL or point to a live [`Host`]; `s` must be NULL or
/// point to `len` readable bytes.
unsafe extern "C" fn host_console_write(ctx: *mut c_void, s: *const c_char, len: c_uint) {
    guard("console_write", || {
        if s.is_null() || len == 0 {
            return;
        }
        // SAFETY: `s` points to `len` readable bytes per the contract.
        let bytes = unsafe { std::slice::from_raw_parts(s.cast::<u8>(), len as usize) };
        // SAFETY: forwarded caller contract on `ctx`.
        match unsafe { host_ref(ctx) } {
            Some(host) => host.console.push_bytes(bytes),
            None => write_stderr(bytes),
        }
    })
}

/// `panic` of a [`Host`] table: records the message (see
/// [`Host::record_panic`]) and returns. Per the contract the kernel then
/// never runs on the calling thread again (it leaves kernel code or blocks
/// itself).
///
/// # Safety
///
/// `ctx` must be NULL or point to a live [`Host`]; `msg` must be NULL or a
/// NUL-terminated string.
unsafe extern "C" fn host_panic(ctx: *mut c_void, msg: *const c_char) {
    guard("panic", || {
        // SAFETY: `msg` is NULL or NUL-terminated per the contract.
        let text = unsafe { c_str_lossy(msg) };
        // SAFETY: forwarded caller contract on `ctx`.
        match unsafe { host_ref(ctx) } {
            Some(host) => host.record_panic(&text),
            None => write_stderr(format!("lkl-sim: kernel panic: {text}\n").as_bytes()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_are_complete_and_point_at_host() {
        let host = Host::new();
        let ops = host.ops();
        assert!(ops.missing().is_empty());
        assert_eq!(ops.ctx.cast_const(), Arc::as_ptr(&host).cast());
        let p = host.ops_ptr();
        assert_eq!(p, host.ops_ptr(), "stable pointer");
        // SAFETY: `p` points into `host`, which is alive.
        assert_eq!(unsafe { (*p).ctx }, ops.ctx);
    }

    #[test]
    fn console_write_goes_to_this_instance() {
        let a = Host::new();
        let b = Host::new();
        let (oa, ob) = (a.ops(), b.ops());
        let msg = b"6,1,10,-,caller=T1;to a\n";
        // SAFETY: ctx values are live Hosts; buffers are valid.
        unsafe {
            oa.console_write.unwrap()(oa.ctx, msg.as_ptr().cast(), msg.len() as c_uint);
            ob.console_write.unwrap()(ob.ctx, c"6,1,10,-;to ".as_ptr(), 12);
            ob.console_write.unwrap()(ob.ctx, c"b\n".as_ptr(), 2);
            ob.console_write.unwrap()(ob.ctx, std::ptr::null(), 5);
        }
        assert_eq!(a.console().records()[0].text, "to a");
        assert_eq!(b.console().records()[0].text, "to b");
        assert_eq!((a.console().len(), b.console().len()), (1, 1));
    }

    #[test]
    fn panic_records_notifies_and_returns() {
        let host = Host::new();
        assert_eq!(host.panic_message(), None);
        assert_eq!(host.wait_panic(Duration::from_millis(10)), None);
        host.console().push_bytes(b"6,1,1,-;before\npartial line");
        let ops = host.ops();
        let ctx = ops.ctx as usize;
        let panic_fn = ops.panic.unwrap();
        let waiter = {
            let host = host.clone();
            std::thread::spawn(move || host.wait_panic(Duration::from_secs(10)))
        };
        std::thread::sleep(Duration::from_millis(20));
        // SAFETY: ctx is the live `host`; the message is NUL-terminated.
        unsafe { panic_fn(ctx as *mut c_void, c"Attempted to kill init!".as_ptr()) };
        assert_eq!(
            waiter.join().unwrap().as_deref(),
            Some("Attempted to kill init!")
        );
        assert!(host.has_panicked());
        let rs = host.console().records();
        let texts: Vec<_> = rs.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "before",
                "partial line",
                "Kernel panic (host): Attempted to kill init!"
            ]
        );
        assert_eq!(rs[2].level, 0);
        assert_eq!(rs[2].origin, Origin::Host);
        // NULL message and NULL ctx are tolerated.
        // SAFETY: NULL is allowed for both.
        unsafe {
            panic_fn(ctx as *mut c_void, std::ptr::null());
            panic_fn(std::ptr::null_mut(), c"to stderr".as_ptr());
        }
        assert_eq!(
            host.panic_message().as_deref(),
            Some("Attempted to kill init!")
        );
        assert!(host.console().records()[3].text.ends_with("(null)"));
    }

    #[test]
    fn second_panic_keeps_first_message() {
        let host = Host::new();
        host.record_panic("first");
        host.record_panic("second");
        assert_eq!(host.panic_message().as_deref(), Some("first"));
        assert_eq!(host.console().len(), 2);
    }

    #[test]
    fn null_ctx_console_write_goes_to_stderr() {
        // SAFETY: NULL ctx is allowed; the buffer is valid.
        unsafe { host_console_write(std::ptr::null_mut(), c"(stderr test)\n".as_ptr(), 14) };
    }
}
