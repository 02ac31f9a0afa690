//! One-shot timers (`timer_alloc`, `timer_set_oneshot`, `timer_cancel`,
//! `timer_free`).
//!
//! Each [`Timer`] owns a host thread (named [`TIMER_THREAD_NAME`]) that
//! sleeps until the armed deadline and then calls the callback on that
//! thread. The arming lives in a small shared state (deadline, stopped,
//! firing) behind a `parking_lot` mutex, with a condition variable to wake
//! the thread when it changes. Whether a deadline fires is decided under
//! that lock, which gives the guarantees the kernel relies on:
//!
//! * [`Timer::set_oneshot`] replaces any earlier arming: once it returns,
//!   the earlier arming will not fire;
//! * once [`Timer::cancel`] returns, no callback from an earlier arming
//!   starts (one already running is not interrupted);
//! * once the timer is freed, no callback runs: freeing waits for one
//!   that is running on another thread to return.
//!
//! The callback may block for a long time (it enters the kernel); arming
//! and cancelling meanwhile never wait for it, and an arming made
//! meanwhile fires after it returns. Freeing does wait, since the
//! callback is code of a kernel library that is unloaded after its timers
//! are freed: the kernel frees its timers only once it has halted, when
//! no callback can block any more. Freeing from inside the callback is
//! allowed and does not self-join.
//!
//! Why not a channel: every op here may be called from a thread-local
//! destructor (a host thread exiting calls into the kernel, which re-arms
//! the timer). `crossbeam-channel`'s `send` calls `std::thread::current()`
//! when a receiver is parked, and that panics once the thread's
//! thread-locals are destroyed; `parking_lot` falls back to stack state
//! instead, so mutex + condvar works there.

use std::ffi::{c_int, c_ulonglong, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::SimError;
use crate::ffi::{fatal, guard, write_stderr, CallbackFn, LklTimer};
use crate::thread::{current_id, spawn_with_id, SendPtr};

/// Name of every timer thread.
pub const TIMER_THREAD_NAME: &str = "lkl-timer";

#[derive(Debug, Default)]
struct State {
    /// When to fire next; `None` when disarmed.
    deadline: Option<Instant>,
    /// Set once by `stop`; the thread exits when it sees it.
    stopped: bool,
    /// The callback is running right now.
    firing: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the timer thread when `state` changes.
    changed: Condvar,
}

/// A one-shot timer with its own host thread.
///
/// Dropping it stops the timer (see the module docs for what is
/// guaranteed) and joins its thread unless the callback is running.
pub struct Timer {
    shared: Arc<Shared>,
    handle: Mutex<Option<JoinHandle<()>>>,
    thread_id: u64,
}

impl std::fmt::Debug for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timer")
            .field("thread_id", &self.thread_id)
            .field("state", &*self.shared.state.lock())
            .finish()
    }
}

impl Timer {
    /// Creates a disarmed timer that runs `callback` on its own thread
    /// each time an arming expires.
    ///
    /// A panic in `callback` is reported on stderr and the timer keeps
    /// working.
    pub fn new(callback: impl FnMut() + Send + 'static) -> Result<Timer, SimError> {
        let shared = Arc::new(Shared::default());
        let thread_shared = shared.clone();
        let (thread_id, handle) =
            spawn_with_id(TIMER_THREAD_NAME, move || run(&thread_shared, callback))?;
        Ok(Timer {
            shared,
            handle: Mutex::new(Some(handle)),
            thread_id,
        })
    }

    /// Arms the timer to fire once, `delay` from now, replacing any earlier
    /// arming. Fails only if the timer is stopped. A delay too large to
    /// represent means "never" (the timer is then effectively disarmed).
    pub fn set_oneshot(&self, delay: Duration) -> Result<(), SimError> {
        let deadline = Instant::now().checked_add(delay);
        let mut st = self.shared.state.lock();
        if st.stopped {
            return Err(SimError::TimerStopped);
        }
        st.deadline = deadline;
        drop(st);
        self.shared.changed.notify_one();
        Ok(())
    }

    /// Disarms the timer if it has not fired yet.
    pub fn cancel(&self) {
        let mut st = self.shared.state.lock();
        st.deadline = None;
        drop(st);
        self.shared.changed.notify_one();
    }

    /// Stops the timer for good: no callback starts after this returns.
    /// Returns `true` if the callback is running right now.
    fn stop(&self) -> bool {
        let mut st = self.shared.state.lock();
        st.stopped = true;
        st.deadline = None;
        let firing = st.firing;
        drop(st);
        self.shared.changed.notify_one();
        firing
    }

    /// The [`crate::thread::current_id`] of this timer's thread.
    pub fn thread_id(&self) -> u64 {
        self.thread_id
    }

    /// Whether the callback is running right now (a snapshot).
    pub fn is_firing(&self) -> bool {
        self.shared.state.lock().firing
    }

    /// Whether the timer is armed (a snapshot).
    pub fn is_armed(&self) -> bool {
        self.shared.state.lock().deadline.is_some()
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.stop();
        let handle = self.handle.lock().take();
        if let Some(handle) = handle {
            if current_id() == self.thread_id {
                // Freed by its own callback: the thread exits by itself
                // once the callback returns.
                drop(handle);
            } else if handle.join().is_err() {
                write_stderr(b"lkl-sim: timer thread panicked\n");
            }
        }
    }
}

/// The timer thread's loop.
fn run(shared: &Shared, mut callback: impl FnMut()) {
    let mut st = shared.state.lock();
    loop {
        if st.stopped {
            return;
        }
        match st.deadline {
            None => shared.changed.wait(&mut st),
            Some(deadline) if Instant::now() < deadline => {
                shared.changed.wait_until(&mut st, deadline);
            }
            Some(_) => {
                st.deadline = None;
                st.firing = true;
                drop(st);
                if catch_unwind(AssertUnwindSafe(&mut callback)).is_err() {
                    write_stderr(b"lkl-sim: timer callback panicked\n");
                }
                st = shared.state.lock();
                st.firing = false;
            }
        }
    }
}

/// Turns a C handle back into a reference, aborting on NULL.
///
/// # Safety
///
/// `t` must be NULL or a live handle from [`timer_alloc`].
unsafe fn timer_ref<'a>(t: *mut LklTimer, op: &str) -> &'a Timer {
    if t.is_null() {
        fatal(&format!("{op}: NULL timer"));
    }
    // SAFETY: non-NULL and, per the caller's contract, a live `Box<Timer>`.
    unsafe { &*t.cast::<Timer>() }
}

/// `timer_alloc`: a disarmed timer calling `f(arg)` on its own thread;
/// NULL if `f` is NULL or the thread cannot be started.
///
/// # Safety
///
/// `f` must be safe to call with `arg`, any number of times, from the
/// timer's thread, for as long as the timer is armed.
pub unsafe extern "C" fn timer_alloc(f: Option<CallbackFn>, arg: *mut c_void) -> *mut LklTimer {
    guard("timer_alloc", || {
        let Some(f) = f else {
            return std::ptr::null_mut();
        };
        let arg = SendPtr(arg);
        let callback = move || {
            let arg = &arg;
            // SAFETY: the caller promised `f(arg)` may run on this thread.
            unsafe { f(arg.0) }
        };
        match Timer::new(callback) {
            Ok(t) => Box::into_raw(Box::new(t)).cast(),
            Err(e) => {
                write_stderr(format!("lkl-sim: timer_alloc: {e}\n").as_bytes());
                std::ptr::null_mut()
            }
        }
    })
}

/// `timer_set_oneshot`: arms `timer` to fire once `delta_ns` from now,
/// replacing any earlier arming; 0, or -1 if the timer is stopped.
///
/// # Safety
///
/// `timer` must be a live handle from [`timer_alloc`].
pub unsafe extern "C" fn timer_set_oneshot(timer: *mut LklTimer, delta_ns: c_ulonglong) -> c_int {
    guard("timer_set_oneshot", || {
        // SAFETY: forwarded caller contract.
        let t = unsafe { timer_ref(timer, "timer_set_oneshot") };
        match t.set_oneshot(Duration::from_nanos(delta_ns)) {
            Ok(()) => 0,
            Err(_) => -1,
        }
    })
}

/// `timer_cancel`: disarms `timer` if it has not fired.
///
/// # Safety
///
/// `timer` must be a live handle from [`timer_alloc`].
pub unsafe extern "C" fn timer_cancel(timer: *mut LklTimer) {
    guard("timer_cancel", || {
        // SAFETY: forwarded caller contract.
        let t = unsafe { timer_ref(timer, "timer_cancel") };
        t.cancel()
    })
}

/// `timer_free`: stops and frees `timer` (NULL is ignored); no callback
/// starts afterwards. May be called from the timer's own callback.
///
/// # Safety
///
/// `timer` must be NULL or a handle from [`timer_alloc`] not used
/// afterwards.
pub unsafe extern "C" fn timer_free(timer: *mut LklTimer) {
    guard("timer_free", || {
        if !timer.is_null() {
            // SAFETY: per the contract `timer` came from `Box::into_raw` in
            // `timer_alloc` and is freed exactly once.
            drop(unsafe { Box::from_raw(timer.cast::<Timer>()) });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::unbounded;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn fires_once_not_before_delay() {
        let (tx, rx) = unbounded();
        let t = Timer::new(move || tx.send(Instant::now()).unwrap()).unwrap();
        let start = Instant::now();
        t.set_oneshot(50 * MS).unwrap();
        let fired = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(fired - start >= 50 * MS, "{:?}", fired - start);
        assert!(rx.recv_timeout(100 * MS).is_err(), "fired twice");
    }

    #[test]
    fn zero_delay_fires() {
        let (tx, rx) = unbounded();
        let t = Timer::new(move || tx.send(()).unwrap()).unwrap();
        t.set_oneshot(Duration::ZERO).unwrap();
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
    }

    #[test]
    fn rearm_replaces_earlier_arming() {
        let (tx, rx) = unbounded();
        let t = Timer::new(move || tx.send(Instant::now()).unwrap()).unwrap();
        let start = Instant::now();
        t.set_oneshot(20 * MS).unwrap();
        t.set_oneshot(150 * MS).unwrap();
        let fired = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(fired - start >= 150 * MS, "{:?}", fired - start);
        assert!(rx.recv_timeout(100 * MS).is_err(), "fired twice");
        // Earlier re-arm to a shorter delay also works.
        let start = Instant::now();
        t.set_oneshot(Duration::from_secs(10)).unwrap();
        t.set_oneshot(10 * MS).unwrap();
        let fired = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(fired - start >= 10 * MS);
    }

    #[test]
    fn cancel_disarms() {
        let (tx, rx) = unbounded();
        let t = Timer::new(move || tx.send(()).unwrap()).unwrap();
        t.set_oneshot(30 * MS).unwrap();
        t.cancel();
        assert!(rx.recv_timeout(150 * MS).is_err());
        // Re-armable after cancel.
        t.set_oneshot(MS).unwrap();
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
    }

    #[test]
    fn cancel_at_expiry_never_fires_afterwards() {
        // Race cancel against the deadline many times: after `cancel`
        // returns, the count may not change any more.
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        let t = Timer::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        for i in 0..200u64 {
            t.set_oneshot(Duration::from_micros(i % 50)).unwrap();
            std::thread::sleep(Duration::from_micros(25));
            t.cancel();
            // Wait until no callback is in flight, then snapshot.
            while t.is_firing() {
                std::thread::yield_now();
            }
            let snap = count.load(Ordering::SeqCst);
            std::thread::sleep(Duration::from_micros(200));
            assert_eq!(count.load(Ordering::SeqCst), snap, "fired after cancel");
        }
    }

    #[test]
    fn drop_stops_and_joins() {
        let (tx, rx) = unbounded();
        let t = Timer::new(move || tx.send(()).unwrap()).unwrap();
        t.set_oneshot(30 * MS).unwrap();
        drop(t);
        // The thread has exited and dropped the callback (and sender).
        assert_eq!(
            rx.recv_timeout(200 * MS),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected)
        );
    }

    #[test]
    fn set_after_stop_fails() {
        let t = Timer::new(|| {}).unwrap();
        t.stop();
        assert!(matches!(t.set_oneshot(MS), Err(SimError::TimerStopped)));
        t.cancel();
    }

    #[test]
    fn callback_runs_on_timer_thread() {
        let (tx, rx) = unbounded();
        let t = Timer::new(move || {
            tx.send((
                current_id(),
                std::thread::current().name().map(str::to_owned),
            ))
            .unwrap()
        })
        .unwrap();
        t.set_oneshot(MS).unwrap();
        let (id, name) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(id, t.thread_id());
        assert_ne!(id, current_id());
        assert_eq!(name.as_deref(), Some(TIMER_THREAD_NAME));
    }

    #[test]
    fn a_blocking_callback_blocks_neither_arming_nor_cancelling() {
        let (gate_tx, gate_rx) = unbounded::<()>();
        let (fired_tx, fired_rx) = unbounded();
        let t = Timer::new(move || {
            fired_tx.send(()).unwrap();
            // Block "in the kernel" until released.
            let _ = gate_rx.recv();
        })
        .unwrap();
        t.set_oneshot(MS).unwrap();
        fired_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(t.is_firing());
        // These return while the callback blocks: were they to wait for
        // it, this thread would never get to release it.
        t.set_oneshot(MS).unwrap();
        t.cancel();
        t.set_oneshot(MS).unwrap();
        assert!(t.is_firing());
        gate_tx.send(()).unwrap();
        drop(t);
    }

    #[test]
    fn freeing_waits_for_a_running_callback_and_fires_nothing_after() {
        let (gate_tx, gate_rx) = unbounded::<()>();
        let (fired_tx, fired_rx) = unbounded();
        let returned = Arc::new(AtomicUsize::new(0));
        let r = returned.clone();
        let t = Timer::new(move || {
            fired_tx.send(()).unwrap();
            let _ = gate_rx.recv();
            r.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        t.set_oneshot(MS).unwrap();
        fired_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        // An arming made while it runs, which the free must cancel.
        t.set_oneshot(MS).unwrap();
        let shared = t.shared.clone();
        std::thread::scope(|s| {
            let freeing = s.spawn(move || drop(t));
            // Let the callback return only once the free has begun: were
            // it to return first, the pending arming would rightly fire
            // (and block on the gate, with the free waiting for it).
            while !shared.state.lock().stopped {
                std::thread::yield_now();
            }
            gate_tx.send(()).unwrap();
            freeing.join().unwrap();
        });
        // The callback had returned when the free did (the library it
        // belongs to may be unloaded next) ...
        assert_eq!(returned.load(Ordering::SeqCst), 1);
        // ... and the pending arming never fired.
        assert!(fired_rx.try_recv().is_err());
    }

    #[test]
    fn rearm_from_callback_is_periodic() {
        let count = Arc::new(AtomicUsize::new(0));
        let slot: Arc<Mutex<Option<Arc<Timer>>>> = Arc::new(Mutex::new(None));
        let (c, s) = (count.clone(), slot.clone());
        let t = Arc::new(
            Timer::new(move || {
                if c.fetch_add(1, Ordering::SeqCst) < 4 {
                    if let Some(t) = s.lock().as_ref() {
                        t.set_oneshot(5 * MS).unwrap();
                    }
                }
            })
            .unwrap(),
        );
        *slot.lock() = Some(t.clone());
        t.set_oneshot(5 * MS).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while count.load(Ordering::SeqCst) < 5 && Instant::now() < deadline {
            std::thread::sleep(5 * MS);
        }
        std::thread::sleep(50 * MS);
        assert_eq!(count.load(Ordering::SeqCst), 5);
        slot.lock().take(); // break the cycle
    }

    #[test]
    fn callback_panic_is_contained() {
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        let t = Timer::new(move || {
            if c.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("first fire panics (expected in this test)");
            }
        })
        .unwrap();
        let wait_count = |n| {
            let deadline = Instant::now() + Duration::from_secs(10);
            while (count.load(Ordering::SeqCst) < n || t.is_firing()) && Instant::now() < deadline {
                std::thread::sleep(MS);
            }
            assert_eq!(count.load(Ordering::SeqCst), n);
        };
        t.set_oneshot(MS).unwrap();
        wait_count(1);
        t.set_oneshot(MS).unwrap();
        wait_count(2);
    }

    /// Arming from a pthread-key destructor (after the thread's Rust
    /// thread-locals are gone) while the timer thread is parked: the case
    /// a channel-based timer gets wrong.
    #[test]
    fn ops_work_from_thread_exit() {
        use crate::sem::Semaphore;
        use crate::tls::TlsKey;
        use std::sync::OnceLock;

        static FIRED: Semaphore = Semaphore::new(0);
        static TIMER: OnceLock<Timer> = OnceLock::new();
        static DONE: AtomicUsize = AtomicUsize::new(0);

        unsafe extern "C" fn dtor(_: *mut c_void) {
            let t = TIMER.get().unwrap();
            t.set_oneshot(Duration::from_secs(60)).unwrap();
            t.cancel();
            t.set_oneshot(MS).unwrap();
            FIRED.down();
            DONE.fetch_add(1, Ordering::SeqCst);
        }

        TIMER.get_or_init(|| Timer::new(|| FIRED.up()).unwrap());
        // SAFETY: `dtor` ignores its value.
        let key = Arc::new(unsafe { TlsKey::new(Some(dtor)) }.unwrap());
        for _ in 0..20 {
            // Let the timer thread park first.
            std::thread::sleep(2 * MS);
            let k = key.clone();
            std::thread::spawn(move || k.set(std::ptr::without_provenance_mut(1)).unwrap())
                .join()
                .unwrap();
        }
        assert_eq!(DONE.load(Ordering::SeqCst), 20);
    }

    // ---- C shims -------------------------------------------------------

    struct Probe {
        fired: crossbeam_channel::Sender<u64>,
        timer: AtomicUsize, // *mut LklTimer to free from the callback
    }

    unsafe extern "C" fn probe_cb(arg: *mut c_void) {
        // SAFETY: tests pass a pointer to a Probe that outlives the timer.
        let p = unsafe { &*arg.cast::<Probe>() };
        let _ = p.fired.send(current_id());
        let t = p.timer.swap(0, Ordering::SeqCst) as *mut LklTimer;
        if !t.is_null() {
            // SAFETY: the test stored a live handle it no longer uses.
            unsafe { timer_free(t) };
        }
    }

    #[test]
    fn shims_arm_cancel_free() {
        let (tx, rx) = unbounded();
        let probe = Box::new(Probe {
            fired: tx,
            timer: AtomicUsize::new(0),
        });
        let arg = (&*probe as *const Probe).cast_mut().cast();
        // SAFETY: probe_cb is fine with `arg`, which outlives the timer.
        unsafe {
            assert!(timer_alloc(None, arg).is_null());
            let t = timer_alloc(Some(probe_cb), arg);
            assert!(!t.is_null());
            let start = Instant::now();
            assert_eq!(timer_set_oneshot(t, 20_000_000), 0);
            rx.recv_timeout(Duration::from_secs(5)).unwrap();
            assert!(start.elapsed() >= 20 * MS);
            assert_eq!(timer_set_oneshot(t, 20_000_000), 0);
            timer_cancel(t);
            assert!(rx.recv_timeout(100 * MS).is_err());
            assert_eq!(timer_set_oneshot(t, u64::MAX), 0);
            timer_free(t);
            timer_free(std::ptr::null_mut());
        }
        drop(probe);
    }

    #[test]
    fn shim_free_from_own_callback() {
        let (tx, rx) = unbounded();
        let probe = Box::new(Probe {
            fired: tx,
            timer: AtomicUsize::new(0),
        });
        let arg = (&*probe as *const Probe).cast_mut().cast();
        // SAFETY: `arg` outlives the timer; the callback frees the handle,
        // and the test does not touch it afterwards.
        unsafe {
            let t = timer_alloc(Some(probe_cb), arg);
            probe.timer.store(t as usize, Ordering::SeqCst);
            assert_eq!(timer_set_oneshot(t, 1_000_000), 0);
        }
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(rx.recv_timeout(50 * MS).is_err());
        // Give the thread time to exit before `probe` (its arg) is freed.
        std::thread::sleep(50 * MS);
        drop(probe);
    }

    #[test]
    fn many_timers() {
        let (tx, rx) = unbounded();
        let timers: Vec<Timer> = (0..64u64)
            .map(|i| {
                let tx = tx.clone();
                let t = Timer::new(move || tx.send(i).unwrap()).unwrap();
                t.set_oneshot(Duration::from_millis(i % 8)).unwrap();
                t
            })
            .collect();
        let mut got: Vec<u64> = (0..64)
            .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap())
            .collect();
        got.sort_unstable();
        assert_eq!(got, (0..64).collect::<Vec<_>>());
        drop(timers);
    }
}
