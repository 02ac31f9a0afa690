//! A new host thread may run kernel code before the thread that created
//! it gets the CPU back, as on a busy host. `lkl_sim::thread::
//! set_creator_delay` makes every creator wait after starting a thread,
//! so that races of a new thread with its creator show at every boot.
//!
//! A secondary CPU's idle thread is one: it brings its CPU up, and that
//! CPU switches to its stopper thread and back to the idle task at once.
//! A switch hands the CPU to the next task's thread by its id, which
//! `__cpu_up()` used to store only once `thread_create()` had returned: a
//! switch back before then left the CPU free while the idle thread ran
//! on it, and the CPU's timer thread took it too (in CI: `corrupted
//! preempt_count: swapper/1/0/0x10000`, then `scheduling while atomic`).
//!
//! The only test in its binary: the delay is process-wide.

mod common;

use std::time::Duration;

use common::{boot_with, finish};
use lkl_harness::hello::HelloArgs;
use lkl_harness::BootOptions;

#[test]
fn kernels_boot_clean_when_every_new_thread_runs_before_its_creator() {
    lkl_sim::thread::set_creator_delay(Duration::from_millis(20));
    for _ in 0..2 {
        let kernel = boot_with(BootOptions {
            cpus: 4,
            ..BootOptions::default()
        });
        assert_eq!(kernel.hello(&HelloArgs::new(c"world", 0)), Ok(()));
        finish(kernel);
    }
    lkl_sim::thread::set_creator_delay(Duration::ZERO);
}
