//! Failure detection: a kernel that warns, panics, hangs while booting or
//! stops answering fails the test, with the kernel log, instead of passing
//! or hanging `cargo test`.

mod common;

use std::io::Read as _;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{boot, boot_with, finish};
use lkl_harness::check::WATCHDOG_EXIT_STATUS;
use lkl_harness::{sys, BootOptions, Error, Kernel};

fn boot_options(cmdline: &str) -> BootOptions {
    BootOptions {
        cmdline: cmdline.into(),
        ..BootOptions::default()
    }
}

#[test]
fn a_clean_boot_passes_the_log_check() {
    let kernel = boot();
    assert_eq!(kernel.check_log().ok(), Some(()), "{}", kernel.dmesg());
    finish(kernel);
}

#[test]
fn a_warn_during_boot_fails_check_log_naming_the_warning_line() {
    let kernel = boot_with(boot_options("lkl_test_warn=1"));
    let Err(Error::Splat {
        lines,
        reports,
        log,
    }) = kernel.check_log()
    else {
        panic!(
            "lkl_test_warn=1 must fail the log check:\n{}",
            kernel.dmesg()
        );
    };
    assert!(
        lines.iter().any(|l| l.contains("WARNING:")),
        "the WARNING line is named: {lines:?}"
    );
    assert!(
        log.contains("lkl_test_warn was given on the command line"),
        "the whole log comes with it: {log}"
    );
    assert!(log.contains("Linux version 6.12"), "{log}");
    // The host walks the kernel's frames: the trace names the function
    // that warned and the kernel functions that called it.
    let trace = log
        .split("Call Trace (host):")
        .nth(1)
        .unwrap_or_else(|| panic!("a call trace follows the WARN: {log}"));
    for frame in [
        "warn_slowpath_fmt",
        "lkl_failure_injection",
        "do_one_initcall",
    ] {
        assert!(trace.contains(frame), "{frame} in the trace: {trace}");
    }
    // The log as text, with the trace's addresses located too.
    let located = kernel.dmesg_located();
    let trace = located
        .split("Call Trace (host):")
        .nth(1)
        .unwrap_or_else(|| panic!("{located}"));
    assert!(trace.contains("lkl_failure_injection"), "{trace}");
    let message = Error::Splat {
        lines,
        reports,
        log,
    }
    .to_string();
    assert!(message.contains("the kernel reported a bug"), "{message}");
    // The kernel carries on after a WARN: it still answers and halts.
    assert_eq!(kernel.getpid(), Ok(1));
    kernel.halt().expect("halt");
}

#[test]
#[should_panic(expected = "the kernel reported a bug")]
fn finish_fails_a_test_whose_kernel_warned() {
    finish(boot_with(boot_options("lkl_test_warn=1")));
}

/// Boots with `option`, which must panic the kernel with `message`:
/// returns the log of the `Error::Panic`, which has the boot banner and
/// the panic in it.
fn boot_panics(option: &str, message_wanted: &str) -> String {
    let err = Kernel::boot(boot_options(option))
        .err()
        .expect("a panicking boot is an error");
    let Error::Panic { message, log } = &err else {
        panic!("expected Error::Panic, got {err}");
    };
    assert!(message.contains(message_wanted), "{message}");
    assert!(log.contains("Linux version 6.12"), "{log}");
    assert!(log.contains("Kernel panic"), "{log}");
    assert!(err.to_string().contains("Kernel log:"), "{err}");
    log.clone()
}

#[test]
fn a_panic_during_boot_is_error_panic_with_the_message_and_log() {
    boot_panics(
        "lkl_test_panic=1",
        "lkl_test_panic was given on the command line",
    );
}

#[test]
fn an_early_panic_still_reaches_the_error_with_its_log() {
    // Panics while setup_arch() parses the command line: before memory
    // management and any initcall.
    let log = boot_panics(
        "lkl_test_early_panic",
        "lkl_test_early_panic was given on the command line",
    );
    assert!(!log.contains("Memory:"), "the panic came before mm: {log}");
}

/// Boots a kernel that panics when it is powered off, and powers it off
/// with `reboot(2)`: returns the kernel, the host and the message of the
/// test's panic that the kernel's panic caused.
fn panic_in_a_system_call() -> (Kernel, std::sync::Weak<lkl_sim::Host>, String) {
    let kernel = boot_with(boot_options("lkl_test_power_off_panic=1"));
    let host = std::sync::Arc::downgrade(kernel.host());
    let args = [
        i64::from(sys::LINUX_REBOOT_MAGIC1),
        i64::from(sys::LINUX_REBOOT_MAGIC2),
        i64::from(sys::LINUX_REBOOT_CMD_POWER_OFF),
        0,
    ];
    // SAFETY: reboot reads no pointer for LINUX_REBOOT_CMD_POWER_OFF.
    let call = || unsafe { kernel.syscall(sys::__NR_reboot, &args) };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(call));
    let payload = outcome.expect_err("the system call panics the test");
    let message = match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(_) => panic!("a formatted panic message"),
    };
    (kernel, host, message)
}

#[test]
fn a_panic_during_a_system_call_panics_the_test_with_the_message_and_log() {
    let (_kernel, _, message) = panic_in_a_system_call();
    let nr = sys::__NR_reboot;
    assert!(
        message.starts_with(&format!(
            "the kernel panicked during system call {nr}: \
             lkl_test_power_off_panic was given on the command line\nKernel log:\n"
        )),
        "{message}"
    );
    assert!(message.contains("Linux version 6.12"), "{message}");
}

#[test]
fn a_kernel_dropped_after_a_panic_keeps_its_host() {
    let (kernel, host, _) = panic_in_a_system_call();
    drop(kernel);
    // Its threads live on, and may still call their host.
    assert!(
        host.upgrade().is_some(),
        "the panicked kernel's host was freed"
    );
}

#[test]
fn a_kernel_halted_after_a_panic_keeps_its_host() {
    let (kernel, host, _) = panic_in_a_system_call();
    let halted = kernel.halt();
    assert!(matches!(halted, Err(Error::Panic { .. })), "{halted:?}");
    assert!(
        host.upgrade().is_some(),
        "the panicked kernel's host was freed"
    );
}

#[test]
fn a_hung_boot_is_error_boot_timeout_with_the_log() {
    let timeout = Duration::from_secs(2);
    let options = BootOptions {
        boot_timeout: timeout,
        ..boot_options("lkl_test_hang=1")
    };
    let err = Kernel::boot(options.clone())
        .err()
        .expect("a boot that never finishes is an error");
    let Error::BootTimeout {
        timeout: reported,
        log,
    } = &err
    else {
        panic!("expected Error::BootTimeout, got {err}");
    };
    assert_eq!(*reported, timeout);
    let line = format!("Kernel command line: {}", options.command_line());
    assert!(line.ends_with(" lkl_test_hang=1"), "{line}");
    assert!(log.contains(&line), "{log}");
    assert!(err.to_string().contains("did not finish booting"), "{err}");
}

/// Selects the child role of the hang tests: "watchdog" or "monitor".
const HANG_CHILD: &str = "LKL_HARNESS_HANG_CHILD";

/// A system call that sleeps an hour: it never returns in time.
fn sleep_an_hour(kernel: &Kernel) -> Result<(), lkl_harness::Errno> {
    kernel.nanosleep(Duration::from_secs(3600))
}

/// Runs the test `name` again in a child process, in the child `role`,
/// and returns its exit status and stderr once it ends (the hang handling
/// ends the process it runs in).
fn run_hanging_child(name: &str, role: &str) -> (ExitStatus, String) {
    let mut child = Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(HANG_CHILD, role)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the test binary");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    // Generous: the child boots a kernel (slow in debug builds) before
    // its 1 s limit starts.
    let bound = Duration::from_secs(120);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if started.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the child still ran after {bound:?}: nothing ended it\n{}",
                reader.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, reader.join().expect("stderr reader"))
}

/// What a child that hung must have left: the status, the message and the
/// log, and no sign that the system call returned.
fn assert_hang_reported(status: ExitStatus, stderr: &str) {
    assert_eq!(
        status.code(),
        Some(WATCHDOG_EXIT_STATUS),
        "the child exits with the watchdog's status; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("lkl-harness watchdog: the kernel did not answer within 1s"),
        "the message: {stderr}"
    );
    assert!(
        stderr.contains("Kernel log:") && stderr.contains("Linux version 6.12"),
        "the log: {stderr}"
    );
    assert!(
        !stderr.contains("returned Ok") && !stderr.contains("returned Err"),
        "the system call never returned: {stderr}"
    );
    // The kernel's own account of every CPU, read while it hangs: the
    // sleeper is off its CPU, and no other host task calls, so each CPU
    // idles, free, or runs a kernel thread's background work (a kworker
    // caught mid-item, as on the race kernel at one CPU), never a host
    // task ("host<pid>").
    let cpus = lkl_harness::kernel::default_cpus();
    assert!(stderr.contains("CPUs:\ncpu0: current "), "{stderr}");
    for cpu in 0..cpus {
        let prefix = format!("cpu{cpu}: current ");
        let line = stderr
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("a line for cpu{cpu}: {stderr}"));
        let current = &line[prefix.len()..];
        assert!(
            line.contains(" (idle), free, ") || !current.starts_with("host"),
            "{line}"
        );
    }
    assert!(!stderr.contains(&format!("cpu{cpus}: ")), "{stderr}");
}

#[test]
fn a_system_call_that_never_returns_trips_the_watchdog() {
    const NAME: &str = "a_system_call_that_never_returns_trips_the_watchdog";
    if std::env::var(HANG_CHILD).as_deref() == Ok("watchdog") {
        // Only the explicit watchdog: the hang monitor is off.
        let kernel = boot_with(BootOptions {
            hang_timeout: None,
            ..BootOptions::default()
        });
        let _watchdog = kernel.watchdog(Duration::from_secs(1));
        panic!("nanosleep of an hour returned {:?}", sleep_an_hour(&kernel));
    }
    let (status, stderr) = run_hanging_child(NAME, "watchdog");
    assert_hang_reported(status, &stderr);
}

#[test]
fn a_hung_kernel_is_reported_without_arming_anything() {
    const NAME: &str = "a_hung_kernel_is_reported_without_arming_anything";
    if std::env::var(HANG_CHILD).as_deref() == Ok("monitor") {
        // No watchdog: the kernel's hang monitor, with a short limit.
        let kernel = boot_with(BootOptions {
            hang_timeout: Some(Duration::from_secs(1)),
            ..BootOptions::default()
        });
        panic!("nanosleep of an hour returned {:?}", sleep_an_hour(&kernel));
    }
    let (status, stderr) = run_hanging_child(NAME, "monitor");
    assert_hang_reported(status, &stderr);
}

#[test]
fn a_watchdog_that_outlives_its_kernel_still_reports() {
    const NAME: &str = "a_watchdog_that_outlives_its_kernel_still_reports";
    if std::env::var(HANG_CHILD).as_deref() == Ok("outlived") {
        let kernel = boot();
        let _watchdog = kernel.watchdog(Duration::from_secs(1));
        finish(kernel);
        // What hangs now is host code; the watchdog reads the halted
        // kernel's CPUs from its library, which it keeps loaded.
        std::thread::sleep(Duration::from_secs(60));
        panic!("the watchdog did not fire");
    }
    let (status, stderr) = run_hanging_child(NAME, "outlived");
    assert_eq!(
        status.code(),
        Some(WATCHDOG_EXIT_STATUS),
        "the child exits with the watchdog's status; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("lkl-harness watchdog: the kernel did not answer within 1s"),
        "the message: {stderr}"
    );
    // A halted kernel has no CPU left to describe; its log is still there.
    assert!(stderr.contains("CPUs:\nKernel log:\n"), "{stderr}");
    assert!(stderr.contains("Linux version 6.12"), "the log: {stderr}");
}

#[test]
fn a_disarmed_watchdog_does_not_fire() {
    let kernel = boot();
    let watchdog = kernel.watchdog(Duration::from_millis(50));
    drop(watchdog);
    // Sleep in the kernel past the timeout: had the watchdog fired, this
    // process would have exited.
    assert_eq!(kernel.nanosleep(Duration::from_millis(200)), Ok(()));
    finish(kernel);
}
