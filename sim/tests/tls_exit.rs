//! Thread-exit behaviour: thread-local destructors that call back into the
//! host (as the kernel does when a host thread with a kernel task exits)
//! must find every op working, even though the thread's Rust
//! thread-locals are already destroyed by then.

use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use lkl_sim::ffi::{LklMutex, LklSem, LklTimer, LklTlsKey};
use lkl_sim::{Host, HostOps};

/// Everything the destructor touches, reached only through the ops table.
struct World {
    host: Arc<Host>,
    ops: HostOps,
    done: *mut LklSem,
    mutex: *mut LklMutex,
    key: *mut LklTlsKey,
    again_key: *mut LklTlsKey,
    timer: *mut LklTimer,
    timer_fired: *mut LklSem,
}

// SAFETY: all handles are thread-safe host objects that live for the whole
// test process (never freed).
unsafe impl Send for World {}
// SAFETY: as above.
unsafe impl Sync for World {}

static WORLD: OnceLock<World> = OnceLock::new();
static DTOR_RUNS: AtomicUsize = AtomicUsize::new(0);
static AGAIN_RUNS: AtomicUsize = AtomicUsize::new(0);
static CHILD_RAN: AtomicUsize = AtomicUsize::new(0);
/// Thread id recorded by the destructor, keyed by the value's "tag".
static SEEN: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

unsafe extern "C" fn timer_cb(_arg: *mut c_void) {
    let w = world();
    // SAFETY: live semaphore.
    unsafe { w.ops.sem_up.unwrap()(w.timer_fired) };
}

unsafe extern "C" fn child(_arg: *mut c_void) {
    CHILD_RAN.fetch_add(1, Ordering::SeqCst);
}

/// The value stored in `key`: which slot of `SEEN` to fill, and the id the
/// thread had before exiting.
struct Tag {
    slot: usize,
    id_before: u64,
}

/// Destructor of `key`: exercises the ops table from thread exit.
unsafe extern "C" fn dtor(value: *mut c_void) {
    let w = world();
    let o = &w.ops;
    // SAFETY: `value` is a leaked Box<Tag> from `set_tag`; each is
    // destroyed exactly once.
    let tag = unsafe { Box::from_raw(value.cast::<Tag>()) };
    // SAFETY: every handle is live for the whole process; strings and
    // buffers are valid.
    unsafe {
        let me = o.thread_self.unwrap()();
        assert_eq!(me, tag.id_before, "thread id changed during exit");
        assert!(
            o.tls_get.unwrap()(w.key).is_null(),
            "value not cleared before dtor"
        );
        let t0 = o.time_ns.unwrap()();
        assert!(o.wall_ns.unwrap()() > 0 && t0 > 0);
        // Set another key: glibc runs another destructor pass for it.
        assert_eq!(
            o.tls_set.unwrap()(w.again_key, std::ptr::without_provenance_mut(1)),
            0
        );
        // Arm the (shared) timer and wait for it from the dying thread,
        // under the mutex so concurrent exits do not merge their armings.
        o.mutex_enter.unwrap()(w.mutex);
        assert_eq!(o.timer_set_oneshot.unwrap()(w.timer, 1_000_000), 0);
        o.sem_down.unwrap()(w.timer_fired);
        o.mutex_leave.unwrap()(w.mutex);
        // Start (and join) a thread from the dying thread.
        let tid = o.thread_create.unwrap()(Some(child), std::ptr::null_mut());
        assert_ne!(tid, 0);
        assert_eq!(o.thread_join.unwrap()(tid), 0);
        // Log something.
        let line = format!("6,{},0,-,caller=T{me};exiting thread {me}\n", tag.slot);
        o.console_write.unwrap()(o.ctx, line.as_ptr().cast(), line.len() as _);
        let buf = o.mem_alloc.unwrap()(4096);
        assert!(!buf.is_null());
        assert_eq!(o.copy_to_user.unwrap()(buf, line.as_ptr().cast(), 8), 0);
        assert_eq!(o.copy_from_user.unwrap()(buf, std::ptr::null(), 8), 8);
        o.mem_free.unwrap()(buf, 4096);

        SEEN[tag.slot].store(me, Ordering::SeqCst);
        DTOR_RUNS.fetch_add(1, Ordering::SeqCst);
        o.sem_up.unwrap()(w.done);
    }
}

unsafe extern "C" fn again_dtor(_value: *mut c_void) {
    AGAIN_RUNS.fetch_add(1, Ordering::SeqCst);
}

fn world() -> &'static World {
    WORLD.get_or_init(|| {
        let host = Host::new();
        let ops = host.ops();
        // SAFETY: allocation ops are always safe; destructors accept the
        // values the tests store.
        unsafe {
            World {
                done: ops.sem_alloc.unwrap()(0),
                mutex: ops.mutex_alloc.unwrap()(),
                key: ops.tls_alloc.unwrap()(Some(dtor)),
                again_key: ops.tls_alloc.unwrap()(Some(again_dtor)),
                timer: ops.timer_alloc.unwrap()(Some(timer_cb), std::ptr::null_mut()),
                timer_fired: ops.sem_alloc.unwrap()(0),
                host,
                ops,
            }
        }
    })
}

fn set_tag(slot: usize) -> u64 {
    let w = world();
    // SAFETY: thread_self is always safe; the key is live; `dtor` takes
    // ownership of the leaked Tag.
    unsafe {
        let id = w.ops.thread_self.unwrap()();
        let tag = Box::into_raw(Box::new(Tag {
            slot,
            id_before: id,
        }));
        assert_eq!(w.ops.tls_set.unwrap()(w.key, tag.cast()), 0);
        assert_eq!(w.ops.tls_get.unwrap()(w.key), tag.cast());
        id
    }
}

/// Thread-locals with destructors that are destroyed before the pthread
/// key destructors run, to make sure the key destructors really run in a
/// torn-down thread.
struct Noisy;
impl Drop for Noisy {
    fn drop(&mut self) {}
}
thread_local! {
    static NOISY: std::cell::RefCell<Vec<Noisy>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn wait_done() {
    // Wait on a helper thread so that a hang fails the test instead of
    // hanging it.
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let w = world();
        // SAFETY: live semaphore.
        unsafe { w.ops.sem_down.unwrap()(w.done) };
        let _ = tx.send(());
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("destructor did not finish");
}

// All scenarios run in one test to keep the shared counters simple.
#[test]
fn destructors_can_use_every_op_during_thread_exit() {
    let w = world();

    // 1. A thread from thread_create (the kernel's own threads).
    unsafe extern "C" fn body(_: *mut c_void) {
        NOISY.with(|n| n.borrow_mut().push(Noisy));
        let id = set_tag(0);
        SEEN[1].store(id, Ordering::SeqCst);
    }
    // SAFETY: `body` needs no argument.
    let tid = unsafe { w.ops.thread_create.unwrap()(Some(body), std::ptr::null_mut()) };
    assert_ne!(tid, 0);
    // join waits for the destructors too.
    // SAFETY: always safe.
    assert_eq!(unsafe { w.ops.thread_join.unwrap()(tid) }, 0);
    assert_eq!(DTOR_RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(SEEN[0].load(Ordering::SeqCst), tid as u64);
    assert_eq!(SEEN[1].load(Ordering::SeqCst), tid as u64);
    wait_done();

    // 2. A thread the host library did not create (e.g. a test's own
    //    thread making system calls).
    let h = std::thread::spawn(|| {
        NOISY.with(|n| n.borrow_mut().push(Noisy));
        set_tag(2)
    });
    let id = h.join().unwrap();
    wait_done();
    assert_eq!(SEEN[2].load(Ordering::SeqCst), id);
    assert_eq!(DTOR_RUNS.load(Ordering::SeqCst), 2);

    // 3. Several threads exiting at once.
    let hs: Vec<_> = (3..8)
        .map(|slot| std::thread::spawn(move || set_tag(slot)))
        .collect();
    let ids: Vec<u64> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    for _ in 3..8 {
        wait_done();
    }
    for (slot, id) in (3..8).zip(ids) {
        assert_eq!(SEEN[slot].load(Ordering::SeqCst), id);
    }
    assert_eq!(DTOR_RUNS.load(Ordering::SeqCst), 7);
    assert_eq!(
        AGAIN_RUNS.load(Ordering::SeqCst),
        7,
        "second destructor pass"
    );
    assert_eq!(CHILD_RAN.load(Ordering::SeqCst), 7);

    // Every destructor's console line arrived intact.
    let logs = w.host.console().records();
    let exiting = logs
        .iter()
        .filter(|r| r.text.starts_with("exiting thread "))
        .count();
    assert_eq!(exiting, 7);
}

/// `panic` called from a pthread-key destructor records the message and
/// returns; the thread then finishes exiting.
#[test]
fn panic_from_thread_exit_is_recorded() {
    static HOST: OnceLock<Arc<Host>> = OnceLock::new();
    let host = HOST.get_or_init(Host::new).clone();
    let ops = host.ops();

    unsafe extern "C" fn panicking_dtor(_value: *mut c_void) {
        let ops = HOST.get().unwrap().ops();
        // SAFETY: ctx is the live static Host; the message is a C string.
        unsafe { ops.panic.unwrap()(ops.ctx, c"panic during thread exit".as_ptr()) };
    }

    // SAFETY: the destructor ignores its value.
    let key = unsafe { ops.tls_alloc.unwrap()(Some(panicking_dtor)) };
    let key_addr = key as usize;
    let tls_set = ops.tls_set.unwrap();
    let h = std::thread::spawn(move || {
        // SAFETY: live key.
        unsafe {
            tls_set(
                key_addr as *mut LklTlsKey,
                std::ptr::without_provenance_mut(1),
            )
        };
    });
    let msg = host.wait_panic(Duration::from_secs(10));
    assert_eq!(msg.as_deref(), Some("panic during thread exit"));
    h.join().unwrap();
    assert!(host
        .console()
        .records()
        .iter()
        .any(|r| r.text.contains("panic during thread exit")));
}

/// Freeing a key waits for its destructor running on another thread, and
/// no destructor of the key starts afterwards: the kernel's destructor is
/// code of a library that is unloaded once the kernel has freed its key.
#[test]
fn freeing_a_key_waits_for_its_running_destructor() {
    static STARTED: AtomicUsize = AtomicUsize::new(0);
    static RELEASED: AtomicUsize = AtomicUsize::new(0);
    static FINISHED: AtomicUsize = AtomicUsize::new(0);
    static FREEING: AtomicUsize = AtomicUsize::new(0);
    static LATE_RUNS: AtomicUsize = AtomicUsize::new(0);
    /// The value of a thread that exits only after the key is freed.
    const LATE: usize = 2;

    unsafe extern "C" fn slow_dtor(value: *mut c_void) {
        if value.addr() == LATE {
            LATE_RUNS.fetch_add(1, Ordering::SeqCst);
            return;
        }
        STARTED.store(1, Ordering::SeqCst);
        while RELEASED.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        FINISHED.store(1, Ordering::SeqCst);
    }

    let ops = world().ops;
    // SAFETY: the destructor accepts any value.
    let key = unsafe { ops.tls_alloc.unwrap()(Some(slow_dtor)) } as usize;
    let set = move |value: usize| {
        // SAFETY: the key is live until tls_free below, which comes after
        // every set.
        let rc = unsafe {
            ops.tls_set.unwrap()(
                key as *mut LklTlsKey,
                std::ptr::without_provenance_mut(value),
            )
        };
        assert_eq!(rc, 0);
    };
    let (late_set_tx, late_set_rx) = crossbeam_channel::bounded(0);
    let (late_exit_tx, late_exit_rx) = crossbeam_channel::bounded::<()>(0);
    let late = std::thread::spawn(move || {
        set(LATE);
        late_set_tx.send(()).unwrap();
        let _ = late_exit_rx.recv();
    });
    late_set_rx.recv().unwrap();
    let exiting = std::thread::spawn(move || set(1));
    while STARTED.load(Ordering::SeqCst) == 0 {
        std::thread::yield_now();
    }
    let freeing = std::thread::spawn(move || {
        FREEING.store(1, Ordering::SeqCst);
        // SAFETY: the key was allocated above and is not used afterwards.
        unsafe { ops.tls_free.unwrap()(key as *mut LklTlsKey) };
        FINISHED.load(Ordering::SeqCst)
    });
    while FREEING.load(Ordering::SeqCst) == 0 {
        std::thread::yield_now();
    }
    // Time for the free to reach the running destructor. Were it not to
    // wait for it, it would return before the release below.
    std::thread::sleep(Duration::from_millis(100));
    RELEASED.store(1, Ordering::SeqCst);
    assert_eq!(
        freeing.join().unwrap(),
        1,
        "tls_free returned while the key's destructor ran"
    );
    exiting.join().unwrap();
    drop(late_exit_tx);
    late.join().unwrap();
    assert_eq!(
        LATE_RUNS.load(Ordering::SeqCst),
        0,
        "a destructor ran after its key was freed"
    );
}
