//! Thread-local slots (`tls_alloc`, `tls_free`, `tls_set`, `tls_get`).
//!
//! Built directly on POSIX thread-specific data (`pthread_key_create`), so
//! the semantics are exactly those of pthread keys:
//!
//! * each key has one value per thread, initially NULL;
//! * when a thread exits — a thread from [`crate::thread::create`], a
//!   timer thread or any other thread, e.g. a test's own — the key's
//!   destructor runs on that thread with its value, for every key whose
//!   value is non-NULL (the value is reset to NULL first);
//! * if destructors set values again, glibc repeats the pass (up to
//!   `PTHREAD_DESTRUCTOR_ITERATIONS` = 4 times);
//! * deleting a key does not run destructors.
//!
//! glibc runs key destructors after the thread's Rust thread-locals are
//! destroyed. Everything a destructor can reach through the ops table stays
//! usable then: [`crate::thread::current_id`] has no destructor,
//! `parking_lot` falls back to stack-allocated wait state, the timer
//! channel does not need thread-locals to send, and `panic` only records. The `tls_exit` integration test checks this.

use std::ffi::{c_int, c_void};

use crate::error::SimError;
use crate::ffi::{fatal, guard, write_stderr, LklTlsKey, TlsDestructor};

/// A thread-local slot: one `*mut c_void` per thread, NULL by default.
///
/// Dropping the key deletes it (`pthread_key_delete`): values are
/// forgotten and destructors no longer run.
#[derive(Debug)]
pub struct TlsKey {
    key: libc::pthread_key_t,
}

impl TlsKey {
    /// Allocates a slot whose `destructor` runs with a thread's value when
    /// that thread exits with a non-NULL value set.
    ///
    /// # Safety
    ///
    /// `destructor` (if any) must be safe to call, on the exiting thread,
    /// with every non-NULL value that any thread stores with [`set`](Self::set).
    pub unsafe fn new(destructor: Option<TlsDestructor>) -> Result<Self, SimError> {
        let mut key: libc::pthread_key_t = 0;
        // SAFETY: `key` is a valid out-pointer; the destructor contract is
        // forwarded to our caller.
        let rc = unsafe { libc::pthread_key_create(&mut key, destructor) };
        if rc != 0 {
            return Err(SimError::Tls(std::io::Error::from_raw_os_error(rc)));
        }
        Ok(TlsKey { key })
    }

    /// Sets the calling thread's value.
    // The pointer is only stored (and later handed to the destructor,
    // whose contract `new` made the caller accept), never dereferenced.
    #[allow(clippy::not_unsafe_ptr_arg_deref)]
    pub fn set(&self, value: *mut c_void) -> Result<(), SimError> {
        // SAFETY: `self.key` is a live key (deleted only on drop).
        let rc = unsafe { libc::pthread_setspecific(self.key, value) };
        if rc != 0 {
            return Err(SimError::Tls(std::io::Error::from_raw_os_error(rc)));
        }
        Ok(())
    }

    /// The calling thread's value (NULL if never set).
    pub fn get(&self) -> *mut c_void {
        // SAFETY: `self.key` is a live key (deleted only on drop).
        unsafe { libc::pthread_getspecific(self.key) }
    }
}

impl Drop for TlsKey {
    fn drop(&mut self) {
        // SAFETY: the key is live and deleted exactly once, here.
        let rc = unsafe { libc::pthread_key_delete(self.key) };
        if rc != 0 {
            write_stderr(format!("lkl-sim: pthread_key_delete failed: {rc}\n").as_bytes());
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

/// `tls_alloc`: a new slot with an optional destructor; NULL on failure
/// (the process is out of keys).
///
/// # Safety
///
/// `destructor` must be safe to call with every non-NULL value stored in
/// the slot, on the thread that stored it, when that thread exits.
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

/// `tls_free`: deletes a slot (NULL is ignored). Destructors do not run
/// for values still stored in it.
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
