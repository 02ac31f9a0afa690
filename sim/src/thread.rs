//! Host threads (`thread_create`, `thread_self`, `thread_join`).
//!
//! # Thread ids
//!
//! Every host thread — created here or not (a test's own threads, `main`)
//! — gets a unique non-zero id the first time it asks, from a global
//! counter that is never reused. Threads created by [`create`] get their id
//! before they start, so `thread_create`'s return value equals what
//! `thread_self` returns on the new thread.
//!
//! The id lives in a `thread_local!` `Cell<u64>` with a `const`
//! initializer. Such a value has no destructor, so Rust never registers it
//! for destruction and it stays readable for the whole life of the thread,
//! including while other thread-local destructors (and pthread key
//! destructors, see [`crate::tls`]) run at thread exit.
//!
//! # Joining and reaping
//!
//! [`create`] registers each thread's `JoinHandle` by id; [`join`] waits
//! for the OS thread to be gone (its body returned and its thread-local
//! and pthread-key destructors ran). Threads are never required to exit:
//! the process can exit while they block forever.
//!
//! The kernel does not join every thread it creates (a task that dies
//! while the kernel runs just returns from its thread function), and a
//! joinable thread that is never joined keeps its stack mapped. So when a
//! body returns, its thread hands its id to a background *reaper* thread
//! (named [`REAPER_THREAD_NAME`]) that joins it and remembers that it
//! exited: a later [`join`] of that id returns at once, and one that comes
//! while the reaper is joining waits for it. Only the id stays recorded
//! (a few bytes per thread ever created and never joined).
//!
//! # Spare threads
//!
//! A kernel creates its threads while it holds a CPU (kthreadd in
//! `copy_thread()`), some 28 at each boot at 2 CPUs, and a host thread
//! takes some 45 us to start: over a millisecond of every boot that no
//! other work on that CPU can use. So [`create`] hands the body to a
//! *spare* thread, started ahead of need, when there is one; a background
//! *spawner* thread ([`SPAWNER_THREAD_NAME`]) keeps [`SPARES`] of them
//! waiting (named [`SPARE_THREAD_NAME`] meanwhile). A spare takes on what
//! a thread started by the caller would have had, its id, name and
//! scheduling (the caller's, see [`crate::sched`]); it is used once, and
//! exits and is reaped like any other. Threads are never reused: whatever
//! a thread-local destructor left behind goes with its thread.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use parking_lot::{Condvar, Mutex};

use crate::error::SimError;
use crate::ffi::{guard, CallbackFn, LklThread};

/// Name given to threads started by `thread_create`.
pub const TASK_THREAD_NAME: &str = "lkl-task";

thread_local! {
    /// This thread's id; 0 until first assigned. No destructor: stays
    /// accessible during thread-local destruction.
    static CURRENT_ID: Cell<u64> = const { Cell::new(0) };
}

/// Next id to hand out; ids start at 1 and are never reused.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Name of the background thread that joins finished threads.
pub const REAPER_THREAD_NAME: &str = "lkl-reaper";

/// Join state of a thread started by [`create`].
#[derive(Debug)]
enum Slot {
    /// Not joined yet (may be running, or finished and not yet reaped).
    Joinable(JoinHandle<()>),
    /// The reaper is joining it.
    Reaping,
    /// The OS thread is gone.
    Exited,
}

/// Threads started by [`create`], by id.
static SLOTS: Mutex<BTreeMap<u64, Slot>> = Mutex::new(BTreeMap::new());
/// Signalled whenever a slot becomes [`Slot::Exited`].
static EXITED: Condvar = Condvar::new();
/// Channel to the reaper (`None` if it could not be started).
static REAPER: OnceLock<Option<Sender<u64>>> = OnceLock::new();

/// Name of the background thread that starts spare threads.
pub const SPAWNER_THREAD_NAME: &str = "lkl-spawner";

/// Name of a spare thread until it is handed a body.
pub const SPARE_THREAD_NAME: &str = "lkl-spare";

/// How many spare threads the spawner keeps waiting: a boot's worth.
pub const SPARES: usize = 32;

/// What a spare thread runs, and the scheduling it first takes on.
type Job = (Box<dyn FnOnce() + Send>, Option<crate::sched::Inherited>);

/// A thread started ahead of need, waiting for its [`Job`].
struct Spare {
    id: u64,
    handle: JoinHandle<()>,
    job: Sender<Job>,
}

/// The spare threads, and the process that started them: a child forked
/// from a process with spares has none of their threads.
struct Spares {
    pid: u32,
    waiting: Vec<Spare>,
}

static SPARE_THREADS: Mutex<Spares> = Mutex::new(Spares {
    pid: 0,
    waiting: Vec::new(),
});

/// Wakes the spawner (`None` if it could not be started).
static SPAWNER: OnceLock<Option<Sender<()>>> = OnceLock::new();

/// The nice value spare threads start with, the spawner's, once it runs.
/// A spare can take on a creator's nice value only if it is no lower
/// (lowering it needs a privilege): other creators start a thread.
static SPARE_NICE: AtomicI32 = AtomicI32::new(i32::MAX);

fn reaper() -> Option<&'static Sender<u64>> {
    REAPER
        .get_or_init(|| {
            let (tx, rx) = crossbeam_channel::unbounded::<u64>();
            let spawned = std::thread::Builder::new()
                .name(REAPER_THREAD_NAME.to_owned())
                .spawn(move || {
                    for id in rx {
                        reap(id);
                    }
                });
            spawned.ok().map(|_| tx)
        })
        .as_ref()
}

/// Asks the spawner to top the spare threads up, starting it first if
/// need be.
fn wake_spawner() {
    let spawner = SPAWNER.get_or_init(|| {
        SPARE_THREADS.lock().pid = std::process::id();
        let (tx, rx) = crossbeam_channel::bounded::<()>(1);
        let spawned = std::thread::Builder::new()
            .name(SPAWNER_THREAD_NAME.to_owned())
            .spawn(move || {
                if let Some(sched) = crate::sched::inheritable() {
                    SPARE_NICE.store(sched.nice(), Ordering::SeqCst);
                }
                for () in rx {
                    top_up_spares();
                }
            });
        spawned.ok().map(|_| tx)
    });
    if let Some(spawner) = spawner {
        // Full: a wake-up is pending already.
        let _ = spawner.try_send(());
    }
}

/// Starts spare threads until [`SPARES`] wait (the spawner's work).
fn top_up_spares() {
    while SPARE_THREADS.lock().waiting.len() < SPARES {
        let (tx, rx) = crossbeam_channel::bounded::<Job>(1);
        let Ok((id, handle)) = spawn_with_id(SPARE_THREAD_NAME, move || {
            // Dropped unused (the process is exiting): nothing to run.
            let Ok((body, sched)) = rx.recv() else {
                return;
            };
            if let Some(sched) = sched {
                crate::sched::take_on(&sched);
            }
            crate::sched::on_thread_start();
            set_host_name(TASK_THREAD_NAME);
            body();
        }) else {
            return;
        };
        SPARE_THREADS.lock().waiting.push(Spare {
            id,
            handle,
            job: tx,
        });
    }
}

/// A spare thread for [`create`], if one waits in this process.
fn take_spare() -> Option<Spare> {
    let mut spares = SPARE_THREADS.lock();
    if spares.pid != std::process::id() {
        return None;
    }
    spares.waiting.pop()
}

/// Sets the calling thread's name as the host shows it (`comm`).
fn set_host_name(name: &str) {
    let Ok(name) = std::ffi::CString::new(name) else {
        return;
    };
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16
    // bytes, which `name` is.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
}

/// Joins thread `id` if nobody else has taken its handle.
fn reap(id: u64) {
    let handle = {
        let mut slots = SLOTS.lock();
        match slots.remove(&id) {
            Some(Slot::Joinable(h)) => {
                slots.insert(id, Slot::Reaping);
                h
            }
            // Already joined (gone), or cannot happen (Reaping/Exited):
            // leave it as it was.
            Some(other) => {
                slots.insert(id, other);
                return;
            }
            None => return,
        }
    };
    // The body already returned; this waits only for the thread's exit
    // (its thread-local destructors).
    let _ = handle.join();
    let mut slots = SLOTS.lock();
    if let Some(slot) = slots.get_mut(&id) {
        *slot = Slot::Exited;
    }
    drop(slots);
    EXITED.notify_all();
}

fn fresh_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// The calling thread's unique, non-zero id (assigned on first use).
///
/// Works on any thread, at any time, including inside thread-local and
/// pthread-key destructors.
pub fn current_id() -> u64 {
    // `Cell<u64>` with a const initializer has no destructor, so `with`
    // cannot fail (it is never in the "destroyed" state).
    CURRENT_ID.with(|id| match id.get() {
        0 => {
            let new = fresh_id();
            id.set(new);
            new
        }
        v => v,
    })
}

/// Spawns a named thread running `body` whose [`current_id`] is fixed
/// before `body` runs, in the short slices of [`crate::sched`]. Returns
/// that id and the join handle.
pub(crate) fn spawn_with_id(
    name: &str,
    body: impl FnOnce() + Send + 'static,
) -> Result<(u64, JoinHandle<()>), SimError> {
    let id = fresh_id();
    let handle = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            CURRENT_ID.with(|c| c.set(id));
            crate::sched::on_thread_start();
            body();
        })
        .map_err(SimError::Spawn)?;
    Ok((id, handle))
}

/// Starts a joinable host thread named [`TASK_THREAD_NAME`] running `body`;
/// returns its id (what [`current_id`] returns on it). A spare thread
/// runs it if one waits (see "Spare threads" above).
pub fn create(body: impl FnOnce() + Send + 'static) -> Result<u64, SimError> {
    let reaper = reaper();
    let body = move || {
        body();
        if let Some(reaper) = reaper {
            let _ = reaper.send(current_id());
        }
    };
    let sched = crate::sched::inheritable();
    let spare = sched
        .filter(|s| s.nice() >= SPARE_NICE.load(Ordering::SeqCst))
        .and_then(|_| take_spare());
    wake_spawner();
    // Hold the map lock across the hand-over or spawn so that neither a
    // racing `join` nor the reaper can miss the entry.
    let mut slots = SLOTS.lock();
    let (id, handle) = match spare {
        Some(spare) => {
            match spare.job.send((Box::new(body), sched)) {
                Ok(()) => (spare.id, spare.handle),
                // The spare is gone (cannot happen: it waits until sent
                // to): start a thread after all.
                Err(crossbeam_channel::SendError((body, _))) => {
                    spawn_with_id(TASK_THREAD_NAME, body)?
                }
            }
        }
        None => spawn_with_id(TASK_THREAD_NAME, body)?,
    };
    slots.insert(id, Slot::Joinable(handle));
    drop(slots);
    let delay = CREATOR_DELAY_US.load(Ordering::Relaxed);
    if delay > 0 {
        std::thread::sleep(std::time::Duration::from_micros(delay));
    }
    Ok(id)
}

/// How long [`create`] sleeps after starting a thread, in microseconds.
static CREATOR_DELAY_US: AtomicU64 = AtomicU64::new(0);

/// Makes every thread that [`create`]s a thread sleep for `delay` after
/// starting it, before it returns the new thread's id: as a busy host may
/// leave the creator waiting while the new thread runs. A test of the
/// kernel's port uses it to show races between a new thread and its
/// creator, which a fast host hides. Process-wide; `Duration::ZERO` (the
/// default) turns it off.
pub fn set_creator_delay(delay: std::time::Duration) {
    let us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
    CREATOR_DELAY_US.store(us, Ordering::Relaxed);
}

/// Waits for the thread `id` started by [`create`] to be gone (its body
/// returned and its thread-local and pthread-key destructors ran).
///
/// Each id can be joined once; a thread cannot join itself.
pub fn join(id: u64) -> Result<(), SimError> {
    if id == current_id() {
        return Err(SimError::JoinSelf(id));
    }
    let mut slots = SLOTS.lock();
    loop {
        match slots.remove(&id) {
            None => return Err(SimError::NoSuchThread(id)),
            Some(Slot::Exited) => return Ok(()),
            Some(Slot::Joinable(handle)) => {
                drop(slots);
                return handle.join().map_err(|_| SimError::ThreadPanicked(id));
            }
            Some(Slot::Reaping) => {
                slots.insert(id, Slot::Reaping);
                EXITED.wait(&mut slots);
            }
        }
    }
}

/// Number of threads started by [`create`] whose exit has not been seen
/// yet (running, blocked, or finishing), excluding joined ones.
pub fn live_count() -> usize {
    SLOTS
        .lock()
        .values()
        .filter(|s| !matches!(s, Slot::Exited))
        .count()
}

/// A raw pointer that may be moved to another thread.
pub(crate) struct SendPtr(pub(crate) *mut c_void);

// SAFETY: the pointer is only handed back to the C callback it came with;
// the C caller of `thread_create`/`timer_alloc` promises that the callback
// may run with it on another host thread.
unsafe impl Send for SendPtr {}

impl SendPtr {
    /// Consumes the wrapper (forces closures to capture the whole wrapper,
    /// not just its non-`Send` field).
    pub(crate) fn get(self) -> *mut c_void {
        self.0
    }
}

/// `thread_create`: starts a host thread running `f(arg)`; 0 on error
/// (including a NULL `f`).
///
/// # Safety
///
/// `f` must be safe to call once with `arg` on a new thread.
pub unsafe extern "C" fn thread_create(f: Option<CallbackFn>, arg: *mut c_void) -> LklThread {
    guard("thread_create", || {
        let Some(f) = f else { return 0 };
        let arg = SendPtr(arg);
        let body = move || {
            let arg = arg.get();
            // SAFETY: the caller promised `f(arg)` may run on a new thread.
            unsafe { f(arg) }
        };
        match create(body) {
            Ok(id) => id as LklThread,
            Err(e) => {
                crate::ffi::write_stderr(format!("lkl-sim: thread_create: {e}\n").as_bytes());
                0
            }
        }
    })
}

/// `thread_self`: the calling thread's non-zero id.
///
/// # Safety
///
/// Always safe to call; `unsafe` only to match the ops table type.
pub unsafe extern "C" fn thread_self() -> LklThread {
    guard("thread_self", || current_id() as LklThread)
}

/// Widens a C thread id (`unsigned long`, 32 bits on some targets).
#[allow(clippy::useless_conversion)]
fn tid_to_u64(tid: LklThread) -> u64 {
    u64::from(tid)
}

/// `thread_join`: waits for a thread from [`thread_create`]; 0 on success,
/// -1 for an unknown or already-joined id, or the caller's own id.
///
/// # Safety
///
/// Always safe to call; `unsafe` only to match the ops table type.
pub unsafe extern "C" fn thread_join(tid: LklThread) -> c_int {
    guard("thread_join", || match join(tid_to_u64(tid)) {
        Ok(()) => 0,
        Err(_) => -1,
    })
}

/// `thread_yield`: lets other host threads run (`sched_yield`), for a
/// kernel busy-wait whose lock holder may not be on a host CPU.
///
/// # Safety
///
/// Always safe to call; `unsafe` only to match the ops table type.
pub unsafe extern "C" fn thread_yield() {
    std::thread::yield_now();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    #[test]
    fn ids_are_unique_nonzero_and_stable() {
        let me = current_id();
        assert_ne!(me, 0);
        assert_eq!(me, current_id());
        // SAFETY: thread_self is always safe.
        assert_eq!(unsafe { thread_self() } as u64, me);
        let others: Vec<u64> = (0..8)
            .map(|_| std::thread::spawn(current_id).join().unwrap())
            .collect();
        let set: HashSet<u64> = others.iter().copied().chain([me]).collect();
        assert_eq!(set.len(), 9);
        assert!(!set.contains(&0));
    }

    #[test]
    fn created_thread_sees_its_own_id() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let id = create(move || tx.send(current_id()).unwrap()).unwrap();
        assert_eq!(rx.recv().unwrap(), id);
        join(id).unwrap();
        assert!(matches!(join(id), Err(SimError::NoSuchThread(_))));
    }

    #[test]
    fn live_count_tracks_blocked_threads() {
        let (tx, rx) = crossbeam_channel::bounded::<()>(0);
        let id = create(move || {
            let _ = rx.recv();
        })
        .unwrap();
        assert!(live_count() >= 1);
        assert!(matches!(SLOTS.lock().get(&id), Some(Slot::Joinable(_))));
        drop(tx);
        join(id).unwrap();
    }

    /// Serialises the tests that use up spare threads, so that
    /// `a_waiting_spare_runs_the_next_body` finds one.
    static SPARE_TESTS: Mutex<()> = Mutex::new(());

    /// Once the spawner has topped them up, the next body runs on a
    /// waiting spare, with the id it got when it started.
    #[test]
    fn a_waiting_spare_runs_the_next_body() {
        let _serial = SPARE_TESTS.lock();
        wake_spawner();
        let since = std::time::Instant::now();
        while SPARE_THREADS.lock().waiting.len() < SPARES {
            assert!(
                since.elapsed() < std::time::Duration::from_secs(10),
                "the spawner started {} of {SPARES} spares",
                SPARE_THREADS.lock().waiting.len()
            );
            std::thread::yield_now();
        }
        let spares: HashSet<u64> = SPARE_THREADS.lock().waiting.iter().map(|s| s.id).collect();
        let (tx, rx) = crossbeam_channel::bounded(1);
        let id = create(move || tx.send(current_id()).unwrap()).unwrap();
        assert!(spares.contains(&id), "{id} is not a spare's id: {spares:?}");
        assert_eq!(rx.recv().unwrap(), id);
        join(id).unwrap();
    }

    /// The name the host shows (`ps`, `perf`, a debugger), spare or not.
    #[test]
    fn thread_name_is_lkl_task() {
        let _serial = SPARE_TESTS.lock();
        for _ in 0..2 * SPARES {
            let (tx, rx) = crossbeam_channel::bounded(1);
            let id = create(move || {
                tx.send(std::fs::read_to_string("/proc/thread-self/comm").unwrap())
                    .unwrap()
            })
            .unwrap();
            assert_eq!(rx.recv().unwrap().trim_end(), TASK_THREAD_NAME);
            join(id).unwrap();
        }
    }

    /// A thread run by a spare has the scheduling of the thread that
    /// created it, as a thread it started would have, slice included.
    #[test]
    fn a_created_thread_takes_on_its_creators_nice_value() {
        let _serial = SPARE_TESTS.lock();
        // Started from here if no test did before: at this thread's nice
        // value, below the scratch thread's.
        wake_spawner();
        let nices: Vec<(i32, i32)> = std::thread::spawn(|| {
            (0..2 * SPARES as i32)
                .map(|i| {
                    let nice = (1 + i / 4).min(19);
                    // SAFETY: plain system calls on this scratch thread;
                    // raising one's own nice value needs no privilege.
                    unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as _, nice) };
                    let (tx, rx) = crossbeam_channel::bounded(1);
                    let id = create(move || {
                        // SAFETY: reads the calling thread's nice value.
                        let got = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
                        tx.send(got).unwrap()
                    })
                    .unwrap();
                    let got = rx.recv().unwrap();
                    join(id).unwrap();
                    (nice, got)
                })
                .collect()
        })
        .join()
        .unwrap();
        for (nice, got) in nices {
            assert_eq!(got, nice);
        }
    }

    #[test]
    fn join_self_is_an_error() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let id = create(move || tx.send(join(current_id())).unwrap()).unwrap();
        assert!(matches!(rx.recv().unwrap(), Err(SimError::JoinSelf(_))));
        join(id).unwrap();
    }

    static RAN: AtomicBool = AtomicBool::new(false);
    static SEEN_ID: AtomicU64 = AtomicU64::new(0);

    unsafe extern "C" fn body(arg: *mut c_void) {
        // SAFETY: the test passes a pointer to a live u64.
        let v = unsafe { *arg.cast::<u64>() };
        assert_eq!(v, 0xfeed);
        // SAFETY: thread_self is always safe.
        SEEN_ID.store(unsafe { thread_self() } as u64, Ordering::SeqCst);
        RAN.store(true, Ordering::SeqCst);
    }

    #[test]
    fn shims_create_and_join() {
        let mut value = 0xfeed_u64;
        // SAFETY: `body` reads the u64, which outlives the join below.
        let tid = unsafe { thread_create(Some(body), (&raw mut value).cast()) };
        assert_ne!(tid, 0);
        // SAFETY: always safe.
        assert_eq!(unsafe { thread_join(tid) }, 0);
        assert!(RAN.load(Ordering::SeqCst));
        assert_eq!(SEEN_ID.load(Ordering::SeqCst), tid as u64);
        // SAFETY: always safe.
        unsafe {
            assert_eq!(thread_join(tid), -1, "double join");
            assert_eq!(thread_join(0), -1);
            assert_eq!(thread_join(u64::MAX as LklThread), -1);
            assert_eq!(thread_join(thread_self()), -1);
            assert_eq!(thread_create(None, std::ptr::null_mut()), 0);
        }
    }

    #[test]
    fn join_waits_for_a_slow_thread() {
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        let id = create(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            d.store(true, Ordering::SeqCst);
        })
        .unwrap();
        join(id).unwrap();
        assert!(done.load(Ordering::SeqCst));
    }

    fn wait_reaped(id: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !matches!(SLOTS.lock().get(&id), Some(Slot::Exited)) {
            assert!(std::time::Instant::now() < deadline, "never reaped");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    #[test]
    fn finished_threads_are_reaped_and_still_joinable_once() {
        // A burst of SPARES threads uses every spare up.
        let _serial = SPARE_TESTS.lock();
        let ids: Vec<u64> = (0..SPARES).map(|_| create(|| {}).unwrap()).collect();
        for &id in &ids {
            wait_reaped(id);
        }
        for &id in &ids {
            join(id).unwrap();
            assert!(matches!(join(id), Err(SimError::NoSuchThread(_))));
        }
    }

    #[test]
    fn join_during_reaping_waits_for_exit() {
        // A thread whose exit is slow (a thread-local destructor sleeps):
        // the reaper is joining it while we join.
        struct SlowExit(Arc<AtomicBool>);
        impl Drop for SlowExit {
            fn drop(&mut self) {
                std::thread::sleep(std::time::Duration::from_millis(100));
                self.0.store(true, Ordering::SeqCst);
            }
        }
        thread_local! {
            static SLOW: std::cell::RefCell<Option<SlowExit>> =
                const { std::cell::RefCell::new(None) };
        }
        let exited = Arc::new(AtomicBool::new(false));
        let e = exited.clone();
        let id = create(move || SLOW.with(|s| *s.borrow_mut() = Some(SlowExit(e)))).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !matches!(
            SLOTS.lock().get(&id),
            Some(Slot::Reaping) | Some(Slot::Exited)
        ) {
            assert!(std::time::Instant::now() < deadline);
            std::thread::yield_now();
        }
        join(id).unwrap();
        assert!(exited.load(Ordering::SeqCst), "join returned before exit");
    }

    #[test]
    fn blocked_threads_do_not_need_to_exit() {
        // A thread that blocks forever is simply never joined; the test
        // process exits regardless.
        let id = create(|| loop {
            std::thread::park();
        })
        .unwrap();
        assert_ne!(id, 0);
    }

    /// `current_id` from inside another thread-local's destructor.
    #[test]
    fn current_id_works_in_tls_destructors() {
        struct Probe(crossbeam_channel::Sender<(u64, u64)>, u64);
        impl Drop for Probe {
            fn drop(&mut self) {
                let _ = self.0.send((self.1, current_id()));
            }
        }
        thread_local! {
            static PROBE: std::cell::RefCell<Option<Probe>> =
                const { std::cell::RefCell::new(None) };
        }
        let (tx, rx) = crossbeam_channel::unbounded();
        let h = std::thread::spawn(move || {
            PROBE.with(|p| *p.borrow_mut() = Some(Probe(tx, current_id())));
        });
        h.join().unwrap();
        let (before, during) = rx.recv().unwrap();
        assert_ne!(before, 0);
        assert_eq!(before, during);

        // Same when the id is first assigned during destruction.
        let (tx, rx) = crossbeam_channel::unbounded();
        std::thread::spawn(move || {
            PROBE.with(|p| *p.borrow_mut() = Some(Probe(tx, 0)));
        })
        .join()
        .unwrap();
        let (_, during) = rx.recv().unwrap();
        assert_ne!(during, 0);
    }
}
