//! Thread-local slots (`tls_alloc`, `tls_free`, `tls_set`, `tls_get`).
//!
//! The semantics are those of POSIX thread-specific data
//! (`pthread_key_create`), and one more guarantee:
//!
//! * each key has one value per thread, initially NULL;
//! * when a thread exits — a thread from [`crate::thread::create`], a
//!   timer thread or any other thread, e.g. a test's own — the key's
//!   destructor runs on that thread with its value, for every key whose
//!   value is non-NULL (the value is reset to NULL first);
//! * if destructors set values again, the pass is repeated (glibc's
//!   `PTHREAD_DESTRUCTOR_ITERATIONS`, 4 passes);
//! * freeing a key runs no destructor, and **waits for its destructors
//!   that are running on other threads**: once [`tls_free`] returns, no
//!   destructor of that key runs or starts.
//!
//! The last point is why a key is not a pthread key itself. The kernel's
//! destructor is code of a library that is unloaded once the kernel has
//! halted and freed its key, but glibc looks up a key's destructor and
//! calls it without a lock: `pthread_key_delete` can return while an
//! exiting thread is about to call it, or is in it. Instead, one pthread
//! key, made once and never deleted, holds every key's value of a thread,
//! and its destructor (code of this crate, which is never unloaded) runs
//! each key's destructor in turn, counted, so that freeing the key can
//! wait for them.
//!
//! Key destructors run after the thread's Rust thread-locals are
//! destroyed. Everything a destructor can reach through the ops table
//! stays usable then: [`crate::thread::current_id`] has no destructor,
//! `parking_lot` falls back to stack-allocated wait state, the timer
//! channel does not need thread-locals to send, and `panic` only records.
//! The `tls_exit` integration test checks this.

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::{Condvar, Mutex};

use crate::error::SimError;
use crate::ffi::{fatal, guard, write_stderr, LklTlsKey, TlsDestructor};

/// One key: its destructor, and its destructors running now.
#[derive(Debug)]
struct KeyState {
    destructor: Option<TlsDestructor>,
    /// Set once by [`TlsKey`]'s drop; also in `runs`, for the wait.
    freed: AtomicBool,
    /// Destructors of this key running now.
    running: Mutex<usize>,
    /// Signalled when `running` drops to 0.
    idle: Condvar,
}

impl KeyState {
    /// Runs the destructor with `value`, counted, unless the key was
    /// freed.
    ///
    /// # Safety
    ///
    /// The destructor's contract (see [`TlsKey::new`]) holds for `value`.
    unsafe fn run_destructor(&self, value: *mut c_void) {
        let Some(destructor) = self.destructor else {
            return;
        };
        {
            let mut running = self.running.lock();
            // Under the lock: a key freed from here on waits for this run.
            if self.freed.load(Ordering::SeqCst) {
                return;
            }
            *running += 1;
        }
        // SAFETY: forwarded from the caller.
        unsafe { destructor(value) };
        let mut running = self.running.lock();
        *running -= 1;
        if *running == 0 {
            self.idle.notify_all();
        }
    }
}

/// A thread's values, one per key it set: what the process-wide pthread
/// key holds for the thread, as a `Box`.
type Values = Vec<(Arc<KeyState>, *mut c_void)>;

/// The pthread key that holds each thread's [`Values`]. Never deleted.
fn values_key() -> libc::pthread_key_t {
    static KEY: OnceLock<libc::pthread_key_t> = OnceLock::new();
    *KEY.get_or_init(|| {
        let mut key: libc::pthread_key_t = 0;
        // SAFETY: `key` is a valid out-pointer; `run_destructors` accepts
        // every value this module stores under the key.
        let rc = unsafe { libc::pthread_key_create(&mut key, Some(run_destructors)) };
        if rc != 0 {
            fatal(&format!("pthread_key_create failed: {rc}"));
        }
        key
    })
}

/// The calling thread's values, created on first use unless `create` is
/// false (then `None`).
fn thread_values(create: bool) -> Option<&'static mut Values> {
    let key = values_key();
    // SAFETY: `key` is live (never deleted).
    let mut values = unsafe { libc::pthread_getspecific(key) }.cast::<Values>();
    if values.is_null() {
        if !create {
            return None;
        }
        values = Box::into_raw(Box::default());
        // SAFETY: `key` is live; the value is the Box just made, which
        // `run_destructors` takes back when the thread exits.
        if unsafe { libc::pthread_setspecific(key, values.cast()) } != 0 {
            // SAFETY: not stored anywhere: still ours to free.
            drop(unsafe { Box::from_raw(values) });
            return None;
        }
    }
    // SAFETY: the pointer is this thread's Box<Values>, which only this
    // thread reaches (through its own pthread value), and no other
    // reference to it is alive: every caller uses it and lets it go
    // before calling out.
    Some(unsafe { &mut *values })
}

/// The destructor of the pthread key: runs every key's destructor with
/// the exiting thread's value.
///
/// # Safety
///
/// `values` is the exiting thread's `Box<Values>`, handed over by glibc,
/// which has reset the thread's value to NULL.
unsafe extern "C" fn run_destructors(values: *mut c_void) {
    guard("tls destructor", || {
        // SAFETY: per the contract, the thread's own Box, now ours.
        let values = unsafe { Box::from_raw(values.cast::<Values>()) };
        for (key, value) in values.iter() {
            if !value.is_null() {
                // SAFETY: the value was stored with `set` for this key,
                // whose destructor's contract covers it.
                unsafe { key.run_destructor(*value) };
            }
        }
    })
}

/// A thread-local slot: one `*mut c_void` per thread, NULL by default.
///
/// Dropping the key frees it: values are forgotten, destructors no longer
/// start, and the drop waits for those running on other threads.
#[derive(Debug)]
pub struct TlsKey {
    state: Arc<KeyState>,
}

impl TlsKey {
    /// Allocates a slot whose `destructor` runs with a thread's value when
    /// that thread exits with a non-NULL value set.
    ///
    /// # Safety
    ///
    /// `destructor` (if any) must be safe to call, on the exiting thread,
    /// with every non-NULL value that any thread stores with [`set`](Self::set),
    /// and must not free the key.
    pub unsafe fn new(destructor: Option<TlsDestructor>) -> Result<Self, SimError> {
        // Made now, so that a failure shows here rather than in `set`.
        values_key();
        Ok(TlsKey {
            state: Arc::new(KeyState {
                destructor,
                freed: AtomicBool::new(false),
                running: Mutex::new(0),
                idle: Condvar::new(),
            }),
        })
    }

    /// Sets the calling thread's value.
    // The pointer is only stored (and later handed to the destructor,
    // whose contract `new` made the caller accept), never dereferenced.
    #[allow(clippy::not_unsafe_ptr_arg_deref)]
    pub fn set(&self, value: *mut c_void) -> Result<(), SimError> {
        let Some(values) = thread_values(!value.is_null()) else {
            if value.is_null() {
                return Ok(());
            }
            return Err(SimError::Tls(std::io::Error::other(
                "cannot store the thread's values",
            )));
        };
        // Forget the values of keys freed since.
        values.retain(|(key, _)| !key.freed.load(Ordering::Relaxed));
        match values
            .iter_mut()
            .find(|(key, _)| Arc::ptr_eq(key, &self.state))
        {
            Some(entry) => entry.1 = value,
            None if value.is_null() => {}
            None => values.push((self.state.clone(), value)),
        }
        Ok(())
    }

    /// The calling thread's value (NULL if never set).
    pub fn get(&self) -> *mut c_void {
        thread_values(false)
            .and_then(|values| {
                values
                    .iter()
                    .find(|(key, _)| Arc::ptr_eq(key, &self.state))
                    .map(|&(_, value)| value)
            })
            .unwrap_or(std::ptr::null_mut())
    }
}

impl Drop for TlsKey {
    fn drop(&mut self) {
        let mut running = self.state.running.lock();
        self.state.freed.store(true, Ordering::SeqCst);
        while *running > 0 {
            self.state.idle.wait(&mut running);
        }
    }
}

/// Turns a C handle back into a reference, aborting on NULL.
///
/// # Safety
///
/// `key` must be NULL or a live handle from [`tls_alloc`].
unsafe fn key_ref<'a>(key: *mut LklTlsKey, op: &str) -> &'a TlsKey {
    if key.is_null() {
        fatal(&format!("{op}: NULL tls key"));
    }
    // SAFETY: non-NULL and, per the caller's contract, a live `Box<TlsKey>`.
    unsafe { &*key.cast::<TlsKey>() }
}

/// `tls_alloc`: a new slot with an optional destructor; NULL on failure.
///
/// # Safety
///
/// `destructor` must be safe to call with every non-NULL value stored in
/// the slot, on the thread that stored it, when that thread exits, and
/// must not free the slot.
pub unsafe extern "C" fn tls_alloc(destructor: Option<TlsDestructor>) -> *mut LklTlsKey {
    guard("tls_alloc", || {
        // SAFETY: destructor contract forwarded from our caller.
        match unsafe { TlsKey::new(destructor) } {
            Ok(k) => Box::into_raw(Box::new(k)).cast(),
            Err(e) => {
                write_stderr(format!("lkl-sim: tls_alloc: {e}\n").as_bytes());
                std::ptr::null_mut()
            }
        }
    })
}

/// `tls_free`: frees a slot (NULL is ignored). Destructors do not run for
/// values still stored in it; one running on another thread is waited
/// for.
///
/// # Safety
///
/// `key` must be NULL or a handle from [`tls_alloc`] not used afterwards.
pub unsafe extern "C" fn tls_free(key: *mut LklTlsKey) {
    guard("tls_free", || {
        if !key.is_null() {
            // SAFETY: per the contract `key` came from `Box::into_raw` in
            // `tls_alloc` and is freed exactly once.
            drop(unsafe { Box::from_raw(key.cast::<TlsKey>()) });
        }
    })
}

/// `tls_set`: sets the calling thread's value; 0 or -1.
///
/// # Safety
///
/// `key` must be a live handle from [`tls_alloc`].
pub unsafe extern "C" fn tls_set(key: *mut LklTlsKey, data: *mut c_void) -> c_int {
    guard("tls_set", || {
        // SAFETY: forwarded caller contract.
        match unsafe { key_ref(key, "tls_set") }.set(data) {
            Ok(()) => 0,
            Err(_) => -1,
        }
    })
}

/// `tls_get`: the calling thread's value, or NULL.
///
/// # Safety
///
/// `key` must be a live handle from [`tls_alloc`].
pub unsafe extern "C" fn tls_get(key: *mut LklTlsKey) -> *mut c_void {
    guard("tls_get", || {
        // SAFETY: forwarded caller contract.
        let k = unsafe { key_ref(key, "tls_get") };
        k.get()
    })
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn values_are_per_thread() {
        // SAFETY: no destructor.
        let k = std::sync::Arc::new(unsafe { TlsKey::new(None) }.unwrap());
        assert!(k.get().is_null());
        k.set(0x10 as *mut c_void).unwrap();
        let k2 = k.clone();
        let other = std::thread::spawn(move || {
            let before = k2.get() as usize;
            k2.set(0x20 as *mut c_void).unwrap();
            (before, k2.get() as usize)
        })
        .join()
        .unwrap();
        assert_eq!(other, (0, 0x20));
        assert_eq!(k.get() as usize, 0x10);
    }

    static DTOR_CALLS: AtomicUsize = AtomicUsize::new(0);
    static DTOR_SUM: AtomicUsize = AtomicUsize::new(0);

    unsafe extern "C" fn count_dtor(v: *mut c_void) {
        DTOR_CALLS.fetch_add(1, Ordering::SeqCst);
        DTOR_SUM.fetch_add(v as usize, Ordering::SeqCst);
    }

    struct KeyHandle(*mut LklTlsKey);
    // SAFETY: pthread keys are process-wide; the handle is freed after the
    // threads using it are joined.
    unsafe impl Send for KeyHandle {}
    // SAFETY: as above.
    unsafe impl Sync for KeyHandle {}

    #[test]
    fn shims_set_get_and_destructor_on_exit() {
        // SAFETY: count_dtor accepts any value.
        let key = std::sync::Arc::new(KeyHandle(unsafe { tls_alloc(Some(count_dtor)) }));
        assert!(!key.0.is_null());
        let hs: Vec<_> = (1..=4usize)
            .map(|i| {
                let key = key.clone();
                std::thread::spawn(move || {
                    // SAFETY: the key is live until after the joins.
                    unsafe {
                        assert!(tls_get(key.0).is_null());
                        assert_eq!(tls_set(key.0, (i * 1000) as *mut c_void), 0);
                        assert_eq!(tls_get(key.0) as usize, i * 1000);
                    }
                })
            })
            .collect();
        // One thread sets and clears: no destructor call.
        let k2 = key.clone();
        let h = std::thread::spawn(move || {
            // SAFETY: as above.
            unsafe {
                assert_eq!(tls_set(k2.0, 7 as *mut c_void), 0);
                assert_eq!(tls_set(k2.0, std::ptr::null_mut()), 0);
            }
        });
        for h in hs {
            h.join().unwrap();
        }
        h.join().unwrap();
        assert_eq!(DTOR_CALLS.load(Ordering::SeqCst), 4);
        assert_eq!(DTOR_SUM.load(Ordering::SeqCst), 10_000);
        // SAFETY: no other user; freed once.
        unsafe {
            tls_free(key.0);
            tls_free(std::ptr::null_mut());
        }
    }
}
