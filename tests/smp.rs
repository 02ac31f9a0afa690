//! Several CPUs: kernel code runs in parallel, the scheduler and
//! `sched_setaffinity` decide where a thread's task runs, and a race in a
//! system call shows up in a stress run.

mod common;

use std::sync::Barrier;
use std::time::Duration;

use common::{boot_with, finish, mount_proc, read_file};
use lkl_harness::hello::HelloArgs;
use lkl_harness::stress::{self, Loudness};
use lkl_harness::{seeded, BootOptions, Errno, Kernel, StressOptions};

fn with_cpus(cpus: u32) -> BootOptions {
    BootOptions {
        cpus,
        ..BootOptions::default()
    }
}

/// The CPUs the calling thread's task may run on (`sched_getaffinity`).
fn affinity(kernel: &Kernel) -> Vec<u32> {
    kernel.sched_getaffinity().expect("sched_getaffinity")
}

/// The kernel's own count of the CPUs it brought up, from its log.
fn cpus_brought_up(kernel: &Kernel) -> u32 {
    let log = kernel.dmesg();
    let count = log
        .lines()
        .find_map(|l| l.split("smp: Brought up 1 node, ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no `smp: Brought up` line:\n{log}"));
    count.parse().expect("a number of CPUs")
}

#[test]
fn a_default_kernel_has_two_cpus_unless_lkl_cpus_says_otherwise() {
    let expected: u32 = std::env::var("LKL_CPUS").map_or(2, |v| v.parse().expect("LKL_CPUS"));
    let kernel = boot_with(BootOptions::default());
    // The kernel's view: CPUs up, and a task may run on each of them.
    assert_eq!(cpus_brought_up(&kernel), expected);
    let all: Vec<u32> = (0..expected).collect();
    assert_eq!(affinity(&kernel), all);
    finish(kernel);
}

#[test]
fn a_kernel_booted_with_four_cpus_has_four() {
    let kernel = boot_with(with_cpus(4));
    assert_eq!(affinity(&kernel), [0, 1, 2, 3]);
    assert_eq!(cpus_brought_up(&kernel), 4);
    finish(kernel);
}

#[test]
fn a_thread_pinned_to_a_cpu_runs_its_calls_there() {
    let kernel = boot_with(with_cpus(4));
    for cpu in [3, 0, 2, 1, 3] {
        kernel.pin_current_thread(cpu).expect("pin");
        assert_eq!(affinity(&kernel), [cpu]);
        for _ in 0..20 {
            assert_eq!(kernel.current_cpu(), cpu, "pinned to {cpu}");
        }
    }
    kernel.unpin_current_thread().expect("unpin");
    assert_eq!(affinity(&kernel), [0, 1, 2, 3]);
    finish(kernel);
}

/// The interrupt lines of `/proc/interrupts`: (number, count on each
/// CPU, the rest of the line).
fn interrupts(kernel: &Kernel) -> Vec<(String, Vec<u64>, String)> {
    let text = read_file(kernel, "/proc/interrupts");
    let cpus = text
        .lines()
        .next()
        .map_or(0, |h| h.split_whitespace().count());
    text.lines()
        .skip(1)
        .map(|line| {
            let mut words = line.split_whitespace();
            let irq = words.next().unwrap_or_default().trim_end_matches(':');
            let counts = words
                .by_ref()
                .take(cpus)
                .map(|c| c.parse().unwrap_or_else(|_| panic!("a count in {line:?}")))
                .collect();
            (irq.to_string(), counts, words.collect::<Vec<_>>().join(" "))
        })
        .collect()
}

#[test]
fn the_timer_is_the_only_interrupt_and_each_cpu_counts_its_own() {
    let kernel = boot_with(with_cpus(2));
    mount_proc(&kernel);
    let lines = interrupts(&kernel);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0].0, "0");
    assert!(lines[0].2.ends_with("timer"), "{lines:?}");
    assert_eq!(
        common::dir_entries(&kernel, "/proc/irq"),
        ["0", "default_smp_affinity"]
    );
    for cpu in [0, 1] {
        kernel.pin_current_thread(cpu).expect("pin");
        let before = interrupts(&kernel)[0].1.clone();
        // The sleeper's hrtimer is on its CPU, which goes idle: only the
        // timer interrupt of that CPU wakes it.
        kernel
            .nanosleep(Duration::from_millis(2))
            .expect("nanosleep");
        let after = interrupts(&kernel)[0].1.clone();
        assert!(
            after[cpu as usize] > before[cpu as usize],
            "no timer interrupt counted on CPU {cpu}: {before:?} -> {after:?}"
        );
    }
    finish(kernel);
}

#[test]
fn pinning_to_a_cpu_the_kernel_does_not_have_is_einval() {
    let kernel = boot_with(with_cpus(2));
    assert_eq!(kernel.pin_current_thread(2), Err(Errno::EINVAL));
    assert_eq!(affinity(&kernel), [0, 1], "nothing changed");
    finish(kernel);
}

#[test]
fn threads_pinned_to_different_cpus_each_stay_on_their_own() {
    let kernel = boot_with(with_cpus(4));
    // Joined before finish(): a join waits for the thread's exit, its TLS
    // destructors (which leave the kernel) included.
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..4)
            .map(|cpu| {
                let kernel = &kernel;
                s.spawn(move || {
                    kernel.pin_current_thread(cpu).expect("pin");
                    for _ in 0..500 {
                        assert_eq!(kernel.current_cpu(), cpu);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("a pinned thread");
        }
    });
    finish(kernel);
}

/// Two threads on two CPUs greet "rendezvous" at once with the test-only
/// patch of `lkl/test-patches/smp-rendezvous.patch`: each call spins until
/// the other has arrived, or gives up after five seconds.
fn rendezvous(cpus: u32) -> Vec<Result<(), Errno>> {
    let spec = seeded::with_test_patch("smp-rendezvous");
    let kernel = Kernel::boot_seeded(&spec, with_cpus(cpus))
        .unwrap_or_else(|e| panic!("the rendezvous kernel did not boot: {e}"));
    let ready = Barrier::new(2);
    let results = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|i| {
                let (kernel, ready) = (&kernel, &ready);
                s.spawn(move || {
                    if cpus > 1 {
                        kernel.pin_current_thread(i).expect("pin");
                    }
                    ready.wait();
                    kernel.hello(&HelloArgs::new(c"rendezvous", 0))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    finish(kernel);
    results
}

#[test]
fn two_system_calls_are_inside_the_kernel_at_the_same_time() {
    // Each call returns only once the other one is inside the kernel too.
    assert_eq!(rendezvous(2), [Ok(()), Ok(())]);
}

#[test]
fn a_uniprocessor_kernel_cannot_hold_the_rendezvous() {
    // The proof above depends on SMP: with one CPU the first caller waits
    // in vain while the second waits for the CPU.
    let mut results = rendezvous(1);
    results.sort_by_key(|r| r.is_ok());
    assert_eq!(results, [Err(Errno::ETIMEDOUT), Ok(())]);
}

/// Stress runs of `hello()` on the kernel with `lkl/mutants/
/// shared-buffer-race.patch` (the name in a static buffer), up to
/// `rounds` of them, stopping at the first that fails.
fn racy_stress(cpus: u32, rounds: u32) -> stress::Repeated {
    let spec = seeded::with_mutant("shared-buffer-race");
    let kernel = Kernel::boot_seeded(&spec, with_cpus(cpus))
        .unwrap_or_else(|e| panic!("the racy kernel did not boot: {e}"));
    let options = StressOptions {
        threads: 8,
        calls: 2_000,
        loud: Loudness::Every(4),
        name: None,
    };
    let repeated = stress::repeat(&kernel, &options, rounds, &|_| {});
    kernel.halt().expect("halt");
    repeated
}

#[test]
fn a_shared_buffer_race_in_hello_fails_a_stress_run_on_two_cpus() {
    // One run garbles greetings nearly always; on a host busy with other
    // work (a kernel build, say) the two CPUs overlap less, so more runs
    // are allowed. The repeat stops at the first failing run.
    let repeated = racy_stress(2.max(lkl_harness::kernel::default_cpus()), 100);
    let summary = &repeated.last;
    let Err(err) = repeated.verify() else {
        panic!(
            "two CPUs greeting through one buffer garble greetings: {} runs passed\n{summary}",
            repeated.rounds
        )
    };
    let c = &summary.counts;
    assert!(
        c.lines_lost > 0 && c.lines_unexpected + c.lines_duplicated > 0,
        "{summary}"
    );
    assert!(err.problems.iter().any(|p| p.contains("lost")), "{err}");
}

#[test]
fn the_shared_buffer_race_cannot_show_on_one_cpu() {
    // hello() never sleeps: on one CPU nothing runs between the copy and
    // the greeting, so the same bug passes. Stress needs SMP to see it.
    let repeated = racy_stress(1, 3);
    repeated
        .verify()
        .unwrap_or_else(|e| panic!("{e}\n{}", repeated.last));
    assert_eq!(repeated.rounds, 3);
}

#[test]
fn the_generic_stress_runs_any_call_and_checks_each() {
    let kernel = boot_with(with_cpus(2));
    let calls = stress::run_calls(&kernel, 4, 250, &|_| {}, |call, kernel| {
        let tid = kernel.gettid().map_err(|e| e.to_string())?;
        let pid = kernel.getpid().map_err(|e| e.to_string())?;
        if pid != 1 || tid <= 1 {
            return Err(format!("thread {}: pid {pid}, tid {tid}", call.thread));
        }
        Ok(())
    });
    calls.verify().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(calls.calls, 1_000);
    assert_eq!(calls.tids.len(), 4);
    finish(kernel);
}

#[test]
fn a_failing_check_fails_the_generic_run_and_names_the_calls() {
    let kernel = boot_with(with_cpus(2));
    let calls = stress::run_calls(&kernel, 3, 10, &|_| {}, |call, kernel| {
        kernel.getpid().map_err(|e| e.to_string())?;
        if call.index == 7 {
            return Err("call 7 is refused".into());
        }
        Ok(())
    });
    let err = calls.verify().expect_err("three calls failed their check");
    assert_eq!(calls.failures.get("call 7 is refused"), Some(&3));
    assert!(calls.failed.contains(&(2, 7)));
    assert!(err.problems[0].contains("3 call(s) failed"), "{err}");
    finish(kernel);
}

#[test]
fn a_flood_of_greetings_from_four_cpus_loses_no_record() {
    // One task prints for all: without lkl_console_keep_up() the others
    // outrun it and the ring buffer overwrites records before the host
    // sees them (about a third of these, before it existed).
    let kernel = boot_with(with_cpus(4));
    let options = StressOptions {
        threads: 16,
        calls: 10_000,
        loud: Loudness::Every(2),
        name: None,
    };
    let summary = stress::run(&kernel, &options, &|_| {});
    summary
        .verify()
        .unwrap_or_else(|e| panic!("{e}\n{summary}"));
    assert_eq!(summary.records_overwritten, 0, "{summary}");
    assert_eq!(
        summary.counts.lines_captured, summary.counts.expected_lines,
        "{summary}"
    );
    finish(kernel);
}
