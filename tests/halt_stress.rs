//! Halting while host threads are everywhere in the kernel, hundreds of
//! times: every halt must leave no thread running the kernel's code or
//! touching its host state by the time its library is unloaded.
//!
//! Each cycle boots a private kernel (its own copy of the library, unloaded
//! when the kernel is dropped) and halts it in one of two ways:
//!
//! - [`halt_while_threads_exit`]: `Kernel::halt` the moment the calling
//!   threads have made their last call, while they exit (the exit of a
//!   thread that made calls ends its kernel task from a thread-local
//!   destructor), their last calls short sleeps whose timers fire around
//!   the halt;
//! - [`power_off_while_threads_are_inside`]: one thread powers the kernel
//!   off (`reboot`) while others sleep in `nanosleep`, make calls in a
//!   loop, or exit, and the kernel is then halted and unloaded.
//!
//! A use-after-free on the host side, or a thread still in the library's
//! code when it is unmapped, may go unnoticed in a normal run: CI also runs
//! this binary under valgrind's memcheck (`.ci/run`), with fewer cycles
//! (`LKL_HALT_CYCLES`). It is the only test in its binary, so that it
//! counts the process's threads and so that valgrind runs it alone.

mod common;

use std::ffi::CStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{boot, mount_proc};
use lkl_harness::hello::HelloArgs;
use lkl_harness::{sys, Errno, Kernel};

/// Cycles to run, unless `LKL_HALT_CYCLES` says otherwise.
const DEFAULT_CYCLES: usize = 200;

/// Threads that make calls and exit, per cycle.
const EXITERS: usize = 4;
/// Threads asleep in `nanosleep` when the kernel powers off.
const SLEEPERS: usize = 2;
/// Threads calling in a loop when the kernel powers off.
const CALLERS: usize = 2;

/// Far longer than a joined thread takes to disappear from
/// `/proc/self/task`; only a thread left running gets there.
const SETTLE_BOUND: Duration = Duration::from_secs(10);

/// The exiters' last call is a sleep this long times their index: their
/// CPUs' host timers are armed, and fire, around the halt.
const EXITER_SLEEP: Duration = Duration::from_micros(50);

fn cycles() -> usize {
    match std::env::var("LKL_HALT_CYCLES") {
        Ok(n) => n
            .parse()
            .unwrap_or_else(|_| panic!("LKL_HALT_CYCLES={n:?} is not a number")),
        Err(_) => DEFAULT_CYCLES,
    }
}

/// The threads of this process, by name, less the host library's own
/// long-lived ones, started with the first kernel thread: the reaper, the
/// spawner and the spare threads it keeps waiting.
fn threads() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|task| {
            let comm = task.ok()?.path().join("comm");
            // A thread that exits meanwhile has no comm any more.
            std::fs::read_to_string(comm).ok()
        })
        .map(|comm| comm.trim_end().to_string())
        .filter(|name| {
            ![
                lkl_sim::thread::REAPER_THREAD_NAME,
                lkl_sim::thread::SPAWNER_THREAD_NAME,
                lkl_sim::thread::SPARE_THREAD_NAME,
            ]
            .contains(&name.as_str())
        })
        .collect();
    names.sort();
    names
}

/// [`threads`] once it is `expected`, or as it still is after
/// [`SETTLE_BOUND`]. A joined thread may still be listed for a moment:
/// the host kernel wakes its joiner before it removes the thread.
fn threads_settled(expected: &[String]) -> Vec<String> {
    let since = Instant::now();
    loop {
        let now = threads();
        if now == expected || since.elapsed() > SETTLE_BOUND {
            return now;
        }
        std::thread::yield_now();
    }
}

/// The host library's live threads ([`lkl_sim::thread::live_count`]) once
/// there are none, or as many as there still are after [`SETTLE_BOUND`].
/// A kernel task that ended while the kernel ran is not joined by the
/// halt: its thread hands itself to the library's reaper as it returns,
/// and counts until the reaper has joined it, a moment later.
fn live_settled() -> usize {
    let since = Instant::now();
    loop {
        let live = lkl_sim::thread::live_count();
        if live == 0 || since.elapsed() > SETTLE_BOUND {
            return live;
        }
        std::thread::yield_now();
    }
}

/// `reboot(LINUX_REBOOT_CMD_POWER_OFF)`: the kernel powers itself off.
fn power_off(kernel: &Kernel) -> Result<i64, Errno> {
    let args = [
        i64::from(sys::LINUX_REBOOT_MAGIC1),
        i64::from(sys::LINUX_REBOOT_MAGIC2),
        i64::from(sys::LINUX_REBOOT_CMD_POWER_OFF),
        0,
    ];
    // SAFETY: reboot reads its fourth argument only for
    // LINUX_REBOOT_CMD_RESTART2: no pointer is passed.
    unsafe { kernel.syscall(sys::__NR_reboot, &args) }
}

/// `text` as a C string in a zeroed buffer of 64 bytes. The kernel reads
/// a string a word at a time, the bytes after its NUL too: in a heap
/// string's allocation those are uninitialised, which memcheck reports.
fn c_string(text: &str) -> [u8; 64] {
    let mut buf = [0u8; 64];
    assert!(text.len() < buf.len(), "{text:?} is too long");
    buf[..text.len()].copy_from_slice(text.as_bytes());
    buf
}

/// The scheduler state of task `tid` (`R`, `S`, `P`, ...), from
/// `/proc/<tid>/stat`.
fn task_state(kernel: &Kernel, tid: i64) -> char {
    let path = c_string(&format!("/proc/{tid}/stat"));
    let path = CStr::from_bytes_until_nul(&path).expect("a C string");
    let fd = kernel.open(path, sys::O_RDONLY, 0).expect("open stat");
    let mut buf = [0u8; 512];
    let len = kernel.read(fd, &mut buf).expect("read stat");
    kernel.close(fd).expect("close stat");
    let stat = String::from_utf8_lossy(&buf[..len]);
    // "tid (comm) S ...": the state follows the command's closing paren.
    let after = &stat[stat.rfind(')').expect("(comm) in stat") + 1..];
    after.trim_start().chars().next().expect("a state")
}

/// Waits until the caller holds `kernel` alone, every other thread having
/// dropped its reference (after its last call, before its exit).
fn sole(mut kernel: Arc<Kernel>) -> Kernel {
    loop {
        match Arc::try_unwrap(kernel) {
            Ok(kernel) => return kernel,
            Err(shared) => {
                kernel = shared;
                std::thread::yield_now();
            }
        }
    }
}

/// Halts while threads that made calls are exiting, with timers firing.
fn halt_while_threads_exit(cycle: usize) {
    let kernel = Arc::new(boot());
    let exiters: Vec<_> = (0..EXITERS)
        .map(|i| {
            let kernel = kernel.clone();
            std::thread::spawn(move || {
                assert_eq!(kernel.getpid(), Ok(1), "cycle {cycle}");
                let name = c_string(&format!("exiter{i}"));
                let name = CStr::from_bytes_until_nul(&name).expect("a C string");
                assert_eq!(kernel.hello(&HelloArgs::new(name, 0)), Ok(()));
                let nap = EXITER_SLEEP * i as u32;
                assert_eq!(kernel.nanosleep(nap), Ok(()), "cycle {cycle}");
                // The reference goes here; the kernel task with the exit.
            })
        })
        .collect();
    let kernel = sole(kernel);
    kernel
        .check_log()
        .unwrap_or_else(|err| panic!("cycle {cycle}: {err}"));
    kernel
        .halt()
        .unwrap_or_else(|err| panic!("cycle {cycle}: {err}"));
    // Joined only now: their exits raced the halt and the unload.
    for exiter in exiters {
        exiter.join().expect("an exiting thread");
    }
}

/// Powers off from inside while threads sleep, call and exit in the
/// kernel; then halts and unloads it.
fn power_off_while_threads_are_inside(cycle: usize) {
    let kernel = Arc::new(boot());
    mount_proc(&kernel);
    let (tids_tx, tids_rx) = std::sync::mpsc::channel();
    let sleepers: Vec<_> = (0..SLEEPERS)
        .map(|_| {
            let (kernel, tids_tx) = (kernel.clone(), tids_tx.clone());
            std::thread::spawn(move || {
                tids_tx.send(kernel.gettid().expect("gettid")).unwrap();
                // Never woken but by the power-off.
                let slept = kernel.nanosleep(Duration::from_secs(3600));
                assert_eq!(slept, Err(Errno::ESHUTDOWN), "cycle {cycle}: nanosleep");
            })
        })
        .collect();
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let kernel = kernel.clone();
            std::thread::spawn(move || loop {
                match kernel.getpid() {
                    Ok(pid) => assert_eq!(pid, 1),
                    Err(errno) => {
                        assert_eq!(errno, Errno::ESHUTDOWN, "cycle {cycle}: getpid");
                        break;
                    }
                }
            })
        })
        .collect();
    let exiters: Vec<_> = (0..EXITERS)
        .map(|_| {
            let kernel = kernel.clone();
            std::thread::spawn(move || {
                let pid = kernel.getpid();
                assert!(
                    pid == Ok(1) || pid == Err(Errno::ESHUTDOWN),
                    "cycle {cycle}: getpid {pid:?}"
                );
            })
        })
        .collect();
    // Power off only once every sleeper sleeps in the kernel.
    for tid in tids_rx.iter().take(SLEEPERS) {
        while task_state(&kernel, tid) != 'S' {
            std::thread::yield_now();
        }
    }
    assert_eq!(power_off(&kernel), Ok(0), "cycle {cycle}: the power-off");
    for thread in sleepers.into_iter().chain(callers) {
        thread.join().expect("a thread inside the kernel");
    }
    let kernel = sole(kernel);
    let log = kernel.dmesg();
    assert!(log.contains("reboot: Power down"), "cycle {cycle}: {log}");
    kernel
        .check_log()
        .unwrap_or_else(|err| panic!("cycle {cycle}: {err}"));
    kernel
        .halt()
        .unwrap_or_else(|err| panic!("cycle {cycle}: {err}"));
    for exiter in exiters {
        exiter.join().expect("an exiting thread");
    }
}

#[test]
fn hundreds_of_halts_amid_calls_sleeps_and_exits_leave_no_thread_behind() {
    // Each halted kernel's arena is unmapped with the halt, not kept for
    // the next kernel: a thread that touched it after the halt would then
    // touch unmapped memory, which the host and memcheck see.
    lkl_sim::mem::keep_arenas(false);
    let before = threads();
    let cycles = cycles();
    for cycle in 0..cycles {
        if cycle % 2 == 0 {
            halt_while_threads_exit(cycle);
        } else {
            power_off_while_threads_are_inside(cycle);
        }
        // Every thread of the kernel was joined: the calling threads
        // above, its kernel threads, timers and hang monitor by the halt
        // and the drop. The host library knows its own threads exactly.
        assert_eq!(live_settled(), 0, "kernel threads after cycle {cycle}");
        assert_eq!(threads_settled(&before), before, "after cycle {cycle}");
    }
}
