//! Booting a kernel, calling into it, reading its log, halting it.

use std::ffi::{c_long, CString};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lkl_sim::{Host, Record};

use crate::errno::Errno;
use crate::ffi::Api;

/// How to boot a kernel.
#[derive(Clone, Debug)]
pub struct BootOptions {
    /// Memory for the kernel, in MiB (`mem=`), from [`MIN_MEM_MIB`] to
    /// [`MAX_MEM_MIB`].
    pub mem_mib: u32,
    /// CPUs (`nr_cpus=`), from 1 to [`MAX_CPUS`]: up to this many host
    /// threads run kernel code at the same moment. 1 is a uniprocessor.
    /// The default is [`DEFAULT_CPUS`], or `LKL_CPUS` from the
    /// environment (`LKL_CPUS=1 cargo test` runs the suite uniprocessor).
    pub cpus: u32,
    /// Extra kernel command line, appended after `mem=` and `nr_cpus=`.
    pub cmdline: String,
    /// How long the boot may take before it is declared hung.
    pub boot_timeout: Duration,
    /// Echo the kernel log to stderr as it is written. The default is on
    /// when the environment has `LKL_ECHO=1`, to watch a test's kernel.
    pub echo: bool,
    /// If a system call has been running this long and no other has
    /// returned meanwhile, the kernel is taken to be hung: the process
    /// exits with a message and the log (see [`Kernel::watchdog`] for why
    /// it must exit). `None` turns this off, for deliberately long sleeps.
    pub hang_timeout: Option<Duration>,
}

/// The CPUs a kernel boots with unless told otherwise: enough for kernel
/// code to run in parallel, so that races show up in every test run.
pub const DEFAULT_CPUS: u32 = 2;

/// The most CPUs the kernel was built for (`CONFIG_NR_CPUS`).
pub const MAX_CPUS: u32 = crate::sys::kconfig::NR_CPUS;

/// The least memory the kernel boots with, in MiB: the debug kernel's
/// too, now that its stack depot's hash table is sized for one test's
/// kernel (`CONFIG_STACKDEPOT_HASH_ORDER` in `lkl/config/debug.config`).
pub const MIN_MEM_MIB: u32 = 8;

/// The most memory a kernel may have, in MiB. The arena itself is only
/// reserved, but the kernel's map of it (`struct page`s, 1.6 % of it) is
/// real host memory, written at boot.
pub const MAX_MEM_MIB: u32 = 16 * 1024;

/// The CPUs a kernel boots with when the options do not say: `LKL_CPUS`,
/// or [`DEFAULT_CPUS`]. A value that is not a number is 0, which boot
/// refuses naming `LKL_CPUS`.
pub fn default_cpus() -> u32 {
    match std::env::var("LKL_CPUS") {
        Ok(text) => text.trim().parse().unwrap_or(0),
        Err(_) => DEFAULT_CPUS,
    }
}

impl Default for BootOptions {
    fn default() -> Self {
        BootOptions {
            mem_mib: 64,
            cpus: default_cpus(),
            cmdline: String::new(),
            boot_timeout: Duration::from_secs(20),
            echo: std::env::var_os("LKL_ECHO").is_some_and(|v| v == "1"),
            hang_timeout: Some(Duration::from_secs(120)),
        }
    }
}

impl BootOptions {
    /// The full kernel command line.
    pub fn command_line(&self) -> String {
        let mut line = format!("mem={}M nr_cpus={}", self.mem_mib, self.cpus);
        if !self.cmdline.is_empty() {
            line.push(' ');
            line.push_str(&self.cmdline);
        }
        line
    }

    /// Checks every option before anything is booted: `Err` names the
    /// option, what it may be and how to fix it.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |option: &'static str, value: String, accepted: String, fix: String| {
            Err(Error::BadOption {
                option,
                value,
                accepted,
                fix,
            })
        };
        if !(MIN_MEM_MIB..=MAX_MEM_MIB).contains(&self.mem_mib) {
            return bad(
                "mem_mib",
                self.mem_mib.to_string(),
                format!("{MIN_MEM_MIB} to {MAX_MEM_MIB} MiB"),
                "the default, 64, suits system call tests; use more only for \
                 tests that allocate a lot"
                    .into(),
            );
        }
        if !(1..=MAX_CPUS).contains(&self.cpus) {
            return bad(
                "cpus",
                self.cpus.to_string(),
                format!("1 to {MAX_CPUS} (CONFIG_NR_CPUS)"),
                format!(
                    "use 1 for a uniprocessor, {DEFAULT_CPUS} (the default) or more for SMP{}",
                    match std::env::var("LKL_CPUS") {
                        Ok(v) => format!("; the default comes from LKL_CPUS={v:?} here"),
                        Err(_) => String::new(),
                    }
                ),
            );
        }
        if self.cmdline.contains('\0') {
            return bad(
                "cmdline",
                format!("{:?}", self.cmdline),
                "text without NUL bytes".into(),
                "remove the NUL byte".into(),
            );
        }
        for word in self.cmdline.split_whitespace() {
            let key = word.split('=').next().unwrap_or(word);
            let field = match key {
                "mem" => "mem_mib",
                "nr_cpus" | "maxcpus" | "nosmp" => "cpus",
                _ => continue,
            };
            return bad(
                "cmdline",
                format!("{:?}", self.cmdline),
                format!("a command line without `{key}`"),
                format!(
                    "set BootOptions::{field} (--{} on the command line) instead",
                    &field[..field.find('_').unwrap_or(field.len())]
                ),
            );
        }
        if self.boot_timeout.is_zero() {
            return bad(
                "boot_timeout",
                format!("{:?}", self.boot_timeout),
                "more than zero".into(),
                "leave the default, 20 s".into(),
            );
        }
        Ok(())
    }
}

/// What went wrong with a kernel. Every variant that booted one carries
/// its log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A boot option is out of range; nothing was booted.
    #[error("bad boot option {option} = {value}: it must be {accepted}; {fix}")]
    BadOption {
        /// The option (a field of [`BootOptions`]).
        option: &'static str,
        /// The value given.
        value: String,
        /// What it may be.
        accepted: String,
        /// How to fix it.
        fix: String,
    },
    /// The kernel library could not be loaded.
    #[error("cannot load the kernel library: {0}")]
    Load(String),
    /// The kernel did not finish booting in time.
    #[error(
        "the kernel did not finish booting within {timeout:?}; it is left running \
         (its host threads cannot be stopped). Kernel log:\n{log}"
    )]
    BootTimeout {
        /// The boot timeout that ran out.
        timeout: Duration,
        /// The kernel log so far.
        log: String,
    },
    /// lkl_start_kernel() returned an error.
    #[error("lkl_start_kernel failed with {errno}. Kernel log:\n{log}")]
    Start {
        /// Its error.
        errno: Errno,
        /// The kernel log.
        log: String,
    },
    /// The kernel panicked.
    #[error("the kernel panicked: {message}\nKernel log:\n{log}")]
    Panic {
        /// The panic message.
        message: String,
        /// The kernel log.
        log: String,
    },
    /// Halting failed.
    #[error("halting the kernel failed with {errno}. Kernel log:\n{log}")]
    Halt {
        /// The reboot system call's error.
        errno: Errno,
        /// The kernel log.
        log: String,
    },
    /// The leak scan of [`Kernel::finish`] could not run.
    #[error(
        "the kernel's leak scan (kmemleak, through sysfs and debugfs) failed with {errno}; \
         is /sys or /sys/kernel/debug taken by the test? Kernel log:\n{log}"
    )]
    Scan {
        /// The failing system call's error.
        errno: Errno,
        /// The kernel log.
        log: String,
    },
    /// The kernel logged a warning, a BUG, an oops, a lockdep report or a
    /// hung task (see [`crate::check`]).
    #[error(
        "the kernel reported a bug: the log has {} warning line(s):\n  {}\n\
         Each is a kernel bug even if every system call succeeded; the \
         reports follow, with the source line of each kernel frame where \
         the kernel's debug information has it, then the whole log.\n\
         {}Kernel log:\n{log}",
        lines.len(),
        lines.join("\n  "),
        reports.iter().fold(String::new(), |mut text, r| {
            text.push_str(r);
            text.push('\n');
            text
        })
    )]
    Splat {
        /// The offending lines, as `dmesg` prints them, each report's
        /// racing or faulting accesses named with their source lines.
        lines: Vec<String>,
        /// Each report in full: from its first line to its end marker.
        reports: Vec<String>,
        /// The kernel log.
        log: String,
    },
}

/// A booted kernel.
///
/// System calls may be made from any number of threads at once; each host
/// thread gets its own kernel task the first time it calls. Up to
/// [`BootOptions::cpus`] of them run kernel code at the same moment.
pub struct Kernel {
    host: Arc<Host>,
    cpus: u32,
    /// The kernel's code, for symbolizing reports; loaded when needed.
    image: parking_lot::Mutex<Option<Option<crate::symbolize::Image>>>,
    api: Api,
    /// A halt was attempted: no call may be made any more.
    halted: AtomicBool,
    /// The halt succeeded: no thread runs the kernel's code any more.
    stopped: AtomicBool,
    boot_time: Duration,
    progress: Arc<Progress>,
    /// The first lines of the leak reports written to the log so far
    /// ([`Kernel::scan_for_leaks`]).
    pub(crate) leaks_logged: parking_lot::Mutex<std::collections::BTreeSet<String>>,
    /// Stopped and joined when the kernel is dropped.
    monitor: Option<Monitor>,
}

/// The hang monitor's thread. It calls into the kernel's library (its
/// CPUs' state, for a report), so it is stopped and joined before the
/// library is unloaded.
struct Monitor {
    stop: Option<crossbeam_channel::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Monitor {
    fn drop(&mut self) {
        // Disconnecting wakes the monitor at once.
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// System calls that entered and that returned, for the hang monitor:
/// counters in slots a cache line apart, a thread's calls always in the
/// same slot, so that threads calling at once on different CPUs do not
/// fight over one line at every entry and return.
#[derive(Default)]
struct Progress {
    slots: [ProgressSlot; PROGRESS_SLOTS],
}

const PROGRESS_SLOTS: usize = 16;

#[derive(Default)]
#[repr(align(128))]
struct ProgressSlot {
    entered: AtomicU64,
    returned: AtomicU64,
}

impl Progress {
    /// The calling thread's slot.
    fn slot(&self) -> &ProgressSlot {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        thread_local! {
            static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed) % PROGRESS_SLOTS;
        }
        // After its destruction (a call from a TLS destructor), slot 0.
        &self.slots[SLOT.try_with(|s| *s).unwrap_or(0)]
    }

    fn enter(&self) {
        self.slot().entered.fetch_add(1, Ordering::Relaxed);
    }

    /// Release: whoever sees this return sees its entry too.
    fn leave(&self) {
        self.slot().returned.fetch_add(1, Ordering::Release);
    }

    /// (returned, whether a call is inside the kernel). The returns are
    /// read first: every call counted there has its entry counted too.
    fn snapshot(&self) -> (u64, bool) {
        let returned: u64 = self
            .slots
            .iter()
            .map(|s| s.returned.load(Ordering::Acquire))
            .sum();
        let entered: u64 = self
            .slots
            .iter()
            .map(|s| s.entered.load(Ordering::Relaxed))
            .sum();
        (returned, entered != returned)
    }
}

/// Watches `progress`: if a system call is inside the kernel and none has
/// returned for `timeout`, the kernel is hung and the process exits.
fn monitor_hangs(
    host: Arc<Host>,
    state: crate::ffi::CpusState,
    progress: Arc<Progress>,
    timeout: Duration,
    stop: crossbeam_channel::Receiver<()>,
) {
    let tick = Duration::from_millis(250).min(timeout);
    let mut last_returned = progress.snapshot().0;
    let mut stalled_since = Instant::now();
    while let Err(crossbeam_channel::RecvTimeoutError::Timeout) = stop.recv_timeout(tick) {
        let (returned, inside) = progress.snapshot();
        if returned != last_returned || !inside {
            last_returned = returned;
            stalled_since = Instant::now();
        } else if stalled_since.elapsed() >= timeout && !host.has_panicked() {
            crate::check::report_hang_and_exit(&host, &state, timeout);
        }
    }
}

impl Kernel {
    /// Boots a private kernel: a fresh instance of the kernel library,
    /// loaded for this kernel alone (in a link-map namespace of its own, or
    /// as a copy of its own when glibc's 15 namespaces are in use), so any
    /// number of them can live in one process (one per test).
    pub fn boot(options: BootOptions) -> Result<Kernel, Error> {
        options.validate()?;
        let api = Api::private().map_err(Error::Load)?;
        Self::boot_with(api, options)
    }

    /// Boots a private instance of the kernel library at `library`: a kernel
    /// other than the one this crate was built with, such as a seeded one
    /// ([`crate::seeded`]).
    pub fn boot_library(library: &std::path::Path, options: BootOptions) -> Result<Kernel, Error> {
        options.validate()?;
        let api = Api::private_from(library).map_err(Error::Load)?;
        Self::boot_with(api, options)
    }

    /// Boots a seeded kernel (another variant, or mutants applied),
    /// building it first if need be ([`crate::seeded::build`]).
    pub fn boot_seeded(spec: &crate::kbuild::Spec, options: BootOptions) -> Result<Kernel, Error> {
        let library = crate::seeded::build(spec).map_err(|e| {
            Error::Load(format!(
                "cannot build the seeded kernel {}: {e}",
                spec.name()
            ))
        })?;
        Self::boot_library(&library, options)
    }

    /// Boots the kernel statically linked into this executable. It can be
    /// booted once per process; use [`Kernel::boot`] for more.
    pub fn boot_linked(options: BootOptions) -> Result<Kernel, Error> {
        options.validate()?;
        static BOOTED: AtomicBool = AtomicBool::new(false);
        if BOOTED.swap(true, Ordering::SeqCst) {
            return Err(Error::Load(
                "the linked kernel was already booted in this process; \
                 use Kernel::boot() for a private instance"
                    .into(),
            ));
        }
        Self::boot_with(Api::linked(), options)
    }

    fn boot_with(api: Api, options: BootOptions) -> Result<Kernel, Error> {
        options.validate()?;
        let host = Host::with_image(api.image.0, api.image.1);
        host.console().set_echo(options.echo);
        let cmdline = CString::new(options.command_line())
            .map_err(|_| Error::Load("the command line contains a NUL byte".into()))?;
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        let ops = host.ops_ptr() as usize;
        let start = api.start;
        let started = Instant::now();
        // lkl_start_kernel blocks until the kernel is up; a hung or
        // panicking boot must not hang the caller, so it runs on a thread
        // of its own and the caller waits with a timeout.
        std::thread::Builder::new()
            .name("lkl-boot".into())
            .spawn(move || {
                // SAFETY: `ops` points into a Host that this Kernel (or,
                // after a failed boot, a leaked Arc) keeps alive; the
                // command line is a valid C string for the whole call.
                let ret = unsafe { start(ops as *const _, cmdline.as_ptr()) };
                let _ = done_tx.send(ret);
            })
            .map_err(|e| Error::Load(format!("cannot spawn the boot thread: {e}")))?;

        let deadline = started + options.boot_timeout;
        let outcome = loop {
            match done_rx.recv_timeout(Duration::from_millis(20)) {
                Ok(ret) => break Some(ret),
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break None,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    if host.has_panicked() || Instant::now() >= deadline {
                        break None;
                    }
                }
            }
        };
        let boot_time = started.elapsed();
        match outcome {
            Some(0) => {
                let progress = Arc::new(Progress::default());
                let monitor = options.hang_timeout.map(|timeout| {
                    let (stop_tx, stop_rx) = crossbeam_channel::bounded(0);
                    let (host, progress) = (host.clone(), progress.clone());
                    let state = crate::ffi::CpusState::new(api.cpus_state, api.library.clone());
                    if testing::FAIL_HANG_MONITOR_SPAWN.swap(false, Ordering::SeqCst) {
                        return Err(std::io::Error::other("failure injected by a test"));
                    }
                    std::thread::Builder::new()
                        .name("lkl-hang-monitor".into())
                        .spawn(move || monitor_hangs(host, state, progress, timeout, stop_rx))
                        .map(|thread| Monitor {
                            stop: Some(stop_tx),
                            thread: Some(thread),
                        })
                });
                let monitor = match monitor {
                    Some(Ok(monitor)) => Some(monitor),
                    Some(Err(e)) => {
                        // The kernel runs: its threads run its code, so
                        // it is never unloaded.
                        drop(leak_instance(host, api));
                        return Err(Error::Load(format!(
                            "cannot spawn the hang monitor thread: {e}"
                        )));
                    }
                    None => None,
                };
                Ok(Kernel {
                    host,
                    cpus: options.cpus,
                    image: parking_lot::Mutex::new(None),
                    api,
                    halted: AtomicBool::new(false),
                    stopped: AtomicBool::new(false),
                    boot_time,
                    progress,
                    leaks_logged: parking_lot::Mutex::default(),
                    monitor,
                })
            }
            Some(ret) => Err(Error::Start {
                errno: Errno(-ret),
                log: leak_instance(host, api),
            }),
            None => {
                let message = host.panic_message();
                let log = leak_instance(host, api);
                Err(match message {
                    Some(message) => Error::Panic { message, log },
                    None => Error::BootTimeout {
                        timeout: options.boot_timeout,
                        log,
                    },
                })
            }
        }
    }

    /// How long the boot took (from load to the first system call being
    /// possible).
    pub fn boot_time(&self) -> Duration {
        self.boot_time
    }

    /// Makes a system call; returns the raw result (negative errno on
    /// failure). `args` may hold up to six arguments.
    ///
    /// Prefer the typed, safe calls of [`crate::calls`] (`getpid`, `open`,
    /// `read`, ...) and [`Kernel::hello`]; this is for calls they lack and
    /// for deliberately bad arguments.
    ///
    /// # Safety
    ///
    /// The kernel may write through any argument that the system call
    /// `nr` takes as a pointer, as far as its ABI says. Each such argument
    /// must be either an address no valid Rust object occupies (NULL, an
    /// unmapped or protected page, the kernel's own memory: the call then
    /// fails with `EFAULT`) or point to memory the caller may overwrite
    /// for the length the call writes, with no live reference to it, and
    /// that no other thread accesses during the call.
    ///
    /// So safe code cannot call it:
    ///
    /// ```compile_fail,E0133
    /// fn getpid(kernel: &lkl_harness::Kernel) -> i64 {
    ///     kernel.syscall_raw(lkl_harness::sys::__NR_getpid, &[])
    /// }
    /// ```
    pub unsafe fn syscall_raw(&self, nr: u32, args: &[i64]) -> i64 {
        assert!(args.len() <= 6, "a system call takes at most six arguments");
        assert!(
            !self.halted.load(Ordering::SeqCst),
            "system call after the kernel was halted"
        );
        let mut params: [c_long; 6] = [0; 6];
        params[..args.len()].copy_from_slice(args);
        self.progress.enter();
        // SAFETY: the kernel is booted and not halted; `params` is six
        // longs as lkl_syscall() reads. Pointers inside the arguments are
        // checked by the kernel's uaccess, which never faults.
        let ret = unsafe { (self.api.syscall)(nr as c_long, params.as_mut_ptr()) };
        self.progress.leave();
        if ret == -(Errno::ESHUTDOWN.0 as i64) {
            if let Some(message) = self.host.panic_message() {
                // A panicked kernel is never entered again: fail loudly,
                // with everything it said.
                panic!(
                    "the kernel panicked during system call {nr}: {message}\nKernel log:\n{}",
                    self.dmesg()
                );
            }
        }
        ret
    }

    /// Makes a system call; a negative result becomes an [`Errno`].
    ///
    /// # Safety
    ///
    /// As for [`syscall_raw`](Self::syscall_raw): every pointer argument
    /// is invalid or points to memory the caller may let the kernel
    /// overwrite.
    ///
    /// So safe code cannot call it:
    ///
    /// ```compile_fail,E0133
    /// fn getpid(kernel: &lkl_harness::Kernel) -> Result<i64, lkl_harness::Errno> {
    ///     kernel.syscall(lkl_harness::sys::__NR_getpid, &[])
    /// }
    /// ```
    pub unsafe fn syscall(&self, nr: u32, args: &[i64]) -> Result<i64, Errno> {
        // SAFETY: forwarded to our caller.
        Errno::result(unsafe { self.syscall_raw(nr, args) })
    }

    /// Waits until every record the kernel logged before this call has
    /// reached [`log`](Self::log). A record is usually there by the time
    /// the system call that logged it returns, but with several CPUs
    /// another CPU's console may print it a moment later.
    ///
    /// Returns `Err(ETIMEDOUT)` if the console stalled for a second.
    pub fn flush_log(&self) -> Result<(), Errno> {
        assert!(
            !self.halted.load(Ordering::SeqCst),
            "flush_log after the kernel was halted"
        );
        // SAFETY: the kernel is booted and not halted; the call takes no
        // arguments and runs as the calling thread's task.
        Errno::result(unsafe { (self.api.flush_console)() }).map(|_| ())
    }

    /// Every log record so far.
    pub fn log(&self) -> Vec<Record> {
        self.host.console().records()
    }

    /// Drains the log: the records since the last call.
    pub fn take_log(&self) -> Vec<Record> {
        self.host.console().take()
    }

    /// The log as `dmesg` prints it.
    pub fn dmesg(&self) -> String {
        self.host.console().dmesg()
    }

    /// Pins the calling thread's kernel task to `cpu` with
    /// `sched_setaffinity`: its system calls run on that CPU from now on,
    /// so that a test can put two calls on two different CPUs. `EINVAL`
    /// for a CPU the kernel does not have.
    pub fn pin_current_thread(&self, cpu: u32) -> Result<(), Errno> {
        let cpus = self.cpus();
        if cpu >= cpus {
            return Err(Errno::EINVAL);
        }
        self.set_affinity(&[cpu])
    }

    /// Lets the calling thread's kernel task run on every CPU again.
    pub fn unpin_current_thread(&self) -> Result<(), Errno> {
        let all: Vec<u32> = (0..self.cpus()).collect();
        self.set_affinity(&all)
    }

    fn set_affinity(&self, cpus: &[u32]) -> Result<(), Errno> {
        self.sched_setaffinity(cpus)
    }

    /// The CPU the calling thread's kernel task runs on (`getcpu`).
    pub fn current_cpu(&self) -> u32 {
        self.getcpu()
            .expect("getcpu cannot fail with a valid pointer")
    }

    /// Runs `f` with the kernel's code and debug information, to turn the
    /// addresses in its reports into functions and source lines (`None`
    /// if the file cannot be read). Loaded on first use.
    pub fn with_image<R>(&self, f: impl FnOnce(Option<&crate::symbolize::Image>) -> R) -> R {
        let mut image = self.image.lock();
        let image = image.get_or_insert_with(|| {
            let (path, bias) = &self.api.object;
            crate::symbolize::Image::load(path, *bias).ok()
        });
        f(image.as_ref())
    }

    /// How many CPUs this kernel has ([`BootOptions::cpus`]).
    pub fn cpus(&self) -> u32 {
        self.cpus
    }

    /// The host state of this kernel (console, panic state).
    pub fn host(&self) -> &Arc<Host> {
        &self.host
    }

    /// Powers the kernel off and stops all its threads.
    pub fn halt(self) -> Result<(), Error> {
        self.halt_inner()
    }

    /// Where this kernel's library is mapped (`(0, 0)` for the linked
    /// kernel): memory the kernel refuses as user memory.
    pub fn image_range(&self) -> (usize, usize) {
        self.api.image
    }

    /// `lkl_cpus_state` of this kernel, for the watchdogs.
    pub(crate) fn cpus_state(&self) -> crate::ffi::CpusState {
        crate::ffi::CpusState::new(self.api.cpus_state, self.api.library.clone())
    }

    fn halt_inner(&self) -> Result<(), Error> {
        // A coverage run keeps the kernel's gcov counters, read with
        // system calls while it still runs.
        if let Some(dir) = std::env::var_os(crate::coverage::COVERAGE_ENV) {
            if !self.halted.load(Ordering::SeqCst) && self.host.panic_message().is_none() {
                crate::coverage::gcov::save(self, std::path::Path::new(&dir));
            }
        }
        if self.halted.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        if let Some(message) = self.host.panic_message() {
            return Err(Error::Panic {
                message,
                log: self.dmesg(),
            });
        }
        // SAFETY: the kernel is booted; after this no other call is made
        // (`halted` is set).
        let ret = unsafe { (self.api.halt)() };
        if ret < 0 {
            return Err(Error::Halt {
                errno: Errno(-ret as i32),
                log: self.dmesg(),
            });
        }
        self.stopped.store(true, Ordering::SeqCst);
        Ok(())
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        let _ = self.halt_inner();
        drop(self.monitor.take());
        // Not just this halt's outcome: an earlier one may have failed.
        if !self.stopped.load(Ordering::SeqCst) {
            // Its threads may still run its code and call its host: never
            // unload the one or free the other.
            std::mem::forget(self.api.library.take());
            std::mem::forget(self.host.clone());
        }
    }
}

/// Failures that tests inject into paths nothing else can reach.
#[doc(hidden)]
pub mod testing {
    use std::sync::atomic::AtomicBool;

    /// The next boot that spawns a hang monitor fails to, after the
    /// kernel is up (`Kernel::boot` must then leave the running kernel
    /// loaded).
    pub static FAIL_HANG_MONITOR_SPAWN: AtomicBool = AtomicBool::new(false);
}

/// A kernel that could not be brought up may still have threads running
/// its code: keep its library and host alive forever, and return its log.
fn leak_instance(host: Arc<Host>, api: Api) -> String {
    let log = host.console().dmesg();
    std::mem::forget(api);
    std::mem::forget(host);
    log
}
