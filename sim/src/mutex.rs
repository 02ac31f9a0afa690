//! Host mutexes (`mutex_alloc`, `mutex_free`, `mutex_enter`, `mutex_leave`).
//!
//! C locks and unlocks in separate calls, so no Rust guard can be held
//! across the FFI boundary: a [`HostMutex`] is an explicit "owner" word
//! protected by a `parking_lot` mutex, with a condition variable for
//! waiters. The owner is the [`crate::thread::current_id`] of the locking
//! thread (0 = unlocked); it is used for diagnostics only:
//!
//! * locking a mutex the calling thread already holds deadlocks, as a
//!   non-recursive pthread mutex would, but first prints a diagnostic to
//!   stderr;
//! * unlocking from a thread other than the owner is allowed;
//! * unlocking an unlocked mutex is an error ([`SimError::NotLocked`]); the
//!   C shim prints a diagnostic and otherwise ignores it.

use parking_lot::{Condvar, Mutex};

use crate::error::SimError;
use crate::ffi::{fatal, guard, write_stderr, LklMutex};
use crate::thread::current_id;

#[derive(Debug, Default)]
struct State {
    /// `current_id()` of the holder, 0 when unlocked.
    owner: u64,
    /// Threads blocked in `lock`.
    waiters: usize,
}

/// A non-recursive mutex that is locked and unlocked by explicit calls.
#[derive(Debug, Default)]
pub struct HostMutex {
    state: Mutex<State>,
    cond: Condvar,
}

impl HostMutex {
    /// An unlocked mutex.
    pub const fn new() -> Self {
        HostMutex {
            state: Mutex::new(State {
                owner: 0,
                waiters: 0,
            }),
            cond: Condvar::new(),
        }
    }

    /// Blocks until the mutex is free, then takes it for the calling thread.
    pub fn lock(&self) {
        let me = current_id();
        let mut st = self.state.lock();
        if st.owner == me {
            write_stderr(
                format!(
                    "lkl-sim: mutex {self:p} locked again by its owner (thread {me}): \
                     non-recursive mutex, this thread deadlocks\n"
                )
                .as_bytes(),
            );
        }
        while st.owner != 0 {
            st.waiters += 1;
            self.cond.wait(&mut st);
            st.waiters -= 1;
        }
        st.owner = me;
    }

    /// Takes the mutex if it is free; `true` on success.
    pub fn try_lock(&self) -> bool {
        let mut st = self.state.lock();
        if st.owner != 0 {
            return false;
        }
        st.owner = current_id();
        true
    }

    /// Releases the mutex (from any thread), waking one waiter.
    pub fn unlock(&self) -> Result<(), SimError> {
        let mut st = self.state.lock();
        if st.owner == 0 {
            return Err(SimError::NotLocked);
        }
        st.owner = 0;
        if st.waiters > 0 {
            self.cond.notify_one();
        }
        Ok(())
    }

    /// The id of the holding thread, or `None` when unlocked (a snapshot).
    pub fn owner(&self) -> Option<u64> {
        match self.state.lock().owner {
            0 => None,
            id => Some(id),
        }
    }
}

/// Turns a C handle back into a reference, aborting on NULL.
///
/// # Safety
///
/// `m` must be NULL or a live handle from [`mutex_alloc`].
unsafe fn mutex_ref<'a>(m: *mut LklMutex, op: &str) -> &'a HostMutex {
    if m.is_null() {
        fatal(&format!("{op}: NULL mutex"));
    }
    // SAFETY: non-NULL, and per the caller's contract a live
    // `Box<HostMutex>` from `mutex_alloc`.
    unsafe { &*m.cast::<HostMutex>() }
}

/// `mutex_alloc`: a new unlocked mutex.
///
/// # Safety
///
/// Always safe to call; `unsafe` only to match the ops table type.
pub unsafe extern "C" fn mutex_alloc() -> *mut LklMutex {
    guard("mutex_alloc", || {
        Box::into_raw(Box::new(HostMutex::new())).cast()
    })
}

/// `mutex_free`: frees a mutex (NULL is ignored).
///
/// # Safety
///
/// `m` must be NULL or a handle from [`mutex_alloc`] that no thread uses
/// afterwards.
pub unsafe extern "C" fn mutex_free(m: *mut LklMutex) {
    guard("mutex_free", || {
        if !m.is_null() {
            // SAFETY: per the contract `m` came from `Box::into_raw` in
            // `mutex_alloc` and is freed exactly once.
            drop(unsafe { Box::from_raw(m.cast::<HostMutex>()) });
        }
    })
}

/// `mutex_enter`.
///
/// # Safety
///
/// `m` must be a live handle from [`mutex_alloc`].
pub unsafe extern "C" fn mutex_enter(m: *mut LklMutex) {
    guard("mutex_enter", || {
        // SAFETY: forwarded caller contract.
        let mutex = unsafe { mutex_ref(m, "mutex_enter") };
        mutex.lock()
    })
}

/// `mutex_leave`. Unlocking an unlocked mutex prints a diagnostic and is
/// otherwise ignored.
///
/// # Safety
///
/// `m` must be a live handle from [`mutex_alloc`].
pub unsafe extern "C" fn mutex_leave(m: *mut LklMutex) {
    guard("mutex_leave", || {
        // SAFETY: forwarded caller contract.
        let mutex = unsafe { mutex_ref(m, "mutex_leave") };
        if mutex.unlock().is_err() {
            write_stderr(
                format!("lkl-sim: mutex_leave of unlocked mutex {m:p} ignored\n").as_bytes(),
            );
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn lock_unlock_and_owner() {
        let m = HostMutex::new();
        assert_eq!(m.owner(), None);
        m.lock();
        assert_eq!(m.owner(), Some(current_id()));
        assert!(!m.try_lock());
        m.unlock().unwrap();
        assert!(matches!(m.unlock(), Err(SimError::NotLocked)));
        assert!(m.try_lock());
        m.unlock().unwrap();
    }

    #[test]
    fn unlock_from_another_thread_is_allowed() {
        let m = Arc::new(HostMutex::new());
        m.lock();
        let m2 = m.clone();
        std::thread::spawn(move || m2.unlock().unwrap())
            .join()
            .unwrap();
        assert!(m.try_lock());
    }

    #[test]
    fn lock_waits_for_unlock() {
        let m = Arc::new(HostMutex::new());
        m.lock();
        let m2 = m.clone();
        let h = std::thread::spawn(move || {
            m2.lock();
            m2.unlock().unwrap();
        });
        std::thread::sleep(Duration::from_millis(30));
        assert!(!h.is_finished());
        m.unlock().unwrap();
        h.join().unwrap();
    }

    struct Handle(*mut LklMutex);
    // SAFETY: HostMutex is Sync; the handle is freed after all threads join.
    unsafe impl Send for Handle {}
    // SAFETY: as above.
    unsafe impl Sync for Handle {}

    #[test]
    fn shims_provide_mutual_exclusion() {
        const PER: u64 = 10_000;
        // SAFETY: freed after all users are joined.
        let m = Arc::new(Handle(unsafe { mutex_alloc() }));
        let counter = Arc::new(AtomicU64::new(0));
        let hs: Vec<_> = (0..8)
            .map(|_| {
                let (m, counter) = (m.clone(), counter.clone());
                std::thread::spawn(move || {
                    for _ in 0..PER {
                        // SAFETY: the handle is live until the joins below;
                        // lock and unlock are separate calls, as from C.
                        unsafe { mutex_enter(m.0) };
                        let v = counter.load(Ordering::Relaxed);
                        counter.store(v + 1, Ordering::Relaxed);
                        // SAFETY: as above.
                        unsafe { mutex_leave(m.0) };
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(counter.load(Ordering::Relaxed), 8 * PER);
        // SAFETY: no thread uses the handle anymore; freed once. The
        // spurious unlock only prints a diagnostic.
        unsafe {
            mutex_leave(m.0);
            mutex_free(m.0);
            mutex_free(std::ptr::null_mut());
        }
    }
}
