//! Counting semaphores (`sem_alloc`, `sem_free`, `sem_up`, `sem_down`).
//!
//! A [`Semaphore`] is a token count behind a `parking_lot` mutex plus a
//! condition variable. The C handle (`struct lkl_sem *`) is a
//! `Box<Semaphore>` turned into a raw pointer.

use std::ffi::c_int;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::ffi::{fatal, guard, LklSem};

/// A counting semaphore.
#[derive(Debug, Default)]
pub struct Semaphore {
    count: Mutex<u64>,
    cond: Condvar,
}

impl Semaphore {
    /// A semaphore holding `count` tokens.
    pub const fn new(count: u32) -> Self {
        Semaphore {
            count: Mutex::new(count as u64),
            cond: Condvar::new(),
        }
    }

    /// Releases one token, waking one waiter if there is one.
    pub fn up(&self) {
        let mut count = self.count.lock();
        *count += 1;
        self.cond.notify_one();
    }

    /// Waits until a token is available and takes it.
    pub fn down(&self) {
        let mut count = self.count.lock();
        while *count == 0 {
            self.cond.wait(&mut count);
        }
        *count -= 1;
    }

    /// Takes a token if one is available right now.
    pub fn try_down(&self) -> bool {
        let mut count = self.count.lock();
        if *count == 0 {
            return false;
        }
        *count -= 1;
        true
    }

    /// Waits at most `timeout` for a token; `true` if one was taken.
    pub fn down_timeout(&self, timeout: Duration) -> bool {
        let Some(deadline) = Instant::now().checked_add(timeout) else {
            self.down();
            return true;
        };
        let mut count = self.count.lock();
        while *count == 0 {
            if self.cond.wait_until(&mut count, deadline).timed_out() && *count == 0 {
                return false;
            }
        }
        *count -= 1;
        true
    }

    /// The number of tokens available right now (a snapshot).
    pub fn value(&self) -> u64 {
        *self.count.lock()
    }
}

/// Turns a C handle back into a reference, aborting on NULL.
///
/// # Safety
///
/// `sem` must be NULL or a live handle from [`sem_alloc`].
unsafe fn sem_ref<'a>(sem: *mut LklSem, op: &str) -> &'a Semaphore {
    if sem.is_null() {
        fatal(&format!("{op}: NULL semaphore"));
    }
    // SAFETY: non-NULL, and per the caller's contract a live
    // `Box<Semaphore>` from `sem_alloc`, not yet freed.
    unsafe { &*sem.cast::<Semaphore>() }
}

/// `sem_alloc`: a semaphore with `count` tokens; NULL if `count` is negative.
///
/// # Safety
///
/// Always safe to call; `unsafe` only to match the ops table type.
pub unsafe extern "C" fn sem_alloc(count: c_int) -> *mut LklSem {
    guard("sem_alloc", || match u32::try_from(count) {
        Ok(n) => Box::into_raw(Box::new(Semaphore::new(n))).cast(),
        Err(_) => std::ptr::null_mut(),
    })
}

/// `sem_free`: frees a semaphore (NULL is ignored).
///
/// # Safety
///
/// `sem` must be NULL or a handle from [`sem_alloc`] that is not used
/// afterwards (no thread may still be waiting on it).
pub unsafe extern "C" fn sem_free(sem: *mut LklSem) {
    guard("sem_free", || {
        if !sem.is_null() {
            // SAFETY: per the contract `sem` came from `Box::into_raw` in
            // `sem_alloc` and is freed exactly once.
            drop(unsafe { Box::from_raw(sem.cast::<Semaphore>()) });
        }
    })
}

/// `sem_up`: releases one token.
///
/// # Safety
///
/// `sem` must be a live handle from [`sem_alloc`].
pub unsafe extern "C" fn sem_up(sem: *mut LklSem) {
    guard("sem_up", || {
        // SAFETY: forwarded caller contract.
        let s = unsafe { sem_ref(sem, "sem_up") };
        s.up()
    })
}

/// `sem_down`: waits for and takes one token.
///
/// # Safety
///
/// `sem` must be a live handle from [`sem_alloc`].
pub unsafe extern "C" fn sem_down(sem: *mut LklSem) {
    guard("sem_down", || {
        // SAFETY: forwarded caller contract.
        let s = unsafe { sem_ref(sem, "sem_down") };
        s.down()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    #[test]
    fn initial_tokens_are_available() {
        let s = Semaphore::new(2);
        assert!(s.try_down());
        assert!(s.try_down());
        assert!(!s.try_down());
        s.up();
        assert_eq!(s.value(), 1);
    }

    #[test]
    fn down_timeout_times_out_and_succeeds() {
        let s = Semaphore::new(0);
        let t = Instant::now();
        assert!(!s.down_timeout(Duration::from_millis(30)));
        assert!(t.elapsed() >= Duration::from_millis(30));
        s.up();
        assert!(s.down_timeout(Duration::from_millis(30)));
        s.up();
        assert!(s.down_timeout(Duration::MAX));
    }

    #[test]
    fn down_blocks_until_up() {
        let s = Arc::new(Semaphore::new(0));
        let s2 = s.clone();
        let h = std::thread::spawn(move || {
            s2.down();
            Instant::now()
        });
        std::thread::sleep(Duration::from_millis(50));
        let upped = Instant::now();
        s.up();
        let woke = h.join().unwrap();
        assert!(woke >= upped);
    }

    #[test]
    fn negative_count_is_rejected() {
        // SAFETY: sem_alloc is always safe to call.
        assert!(unsafe { sem_alloc(-1) }.is_null());
    }

    #[test]
    fn shims_round_trip() {
        // SAFETY: the handle is used only while live and freed once.
        unsafe {
            let s = sem_alloc(1);
            assert!(!s.is_null());
            sem_down(s);
            sem_up(s);
            sem_down(s);
            sem_up(s);
            sem_free(s);
            sem_free(std::ptr::null_mut());
        }
    }

    struct Handle(*mut LklSem);
    // SAFETY: the semaphore behind the handle is Sync; the test frees it
    // only after all threads are joined.
    unsafe impl Send for Handle {}
    // SAFETY: as above.
    unsafe impl Sync for Handle {}

    /// 16 threads: 8 producers and 8 consumers through the C shims, plus
    /// the semaphore used as a lock protecting a non-atomic counter.
    #[test]
    fn sixteen_threads_hammer() {
        const PER: u64 = 5_000;
        // SAFETY: freed after all users are joined.
        let items = Arc::new(Handle(unsafe { sem_alloc(0) }));
        // SAFETY: as above.
        let lock = Arc::new(Handle(unsafe { sem_alloc(1) }));
        let guarded = Arc::new(AtomicU64::new(0));
        let consumed = Arc::new(AtomicU64::new(0));
        let mut hs = Vec::new();
        for i in 0..16 {
            let (items, lock, guarded, consumed) = (
                items.clone(),
                lock.clone(),
                guarded.clone(),
                consumed.clone(),
            );
            hs.push(std::thread::spawn(move || {
                for _ in 0..PER {
                    // SAFETY: handles are live until the joins below.
                    unsafe {
                        if i % 2 == 0 {
                            sem_up(items.0);
                        } else {
                            sem_down(items.0);
                            consumed.fetch_add(1, Ordering::Relaxed);
                        }
                        sem_down(lock.0);
                        // Non-atomic read-modify-write: only correct if the
                        // semaphore provides mutual exclusion.
                        let v = guarded.load(Ordering::Relaxed);
                        guarded.store(v + 1, Ordering::Relaxed);
                        sem_up(lock.0);
                    }
                }
            }));
        }
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(consumed.load(Ordering::Relaxed), 8 * PER);
        assert_eq!(guarded.load(Ordering::Relaxed), 16 * PER);
        // SAFETY: handles are live and no thread uses them anymore.
        unsafe {
            assert_eq!(sem_ref(items.0, "t").value(), 0);
            assert_eq!(sem_ref(lock.0, "t").value(), 1);
            sem_free(items.0);
            sem_free(lock.0);
        }
    }
}
