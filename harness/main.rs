//! `cargo run --release`: boot the kernel linked into this binary, stress
//! its `hello()` system call and check the log. `--help` has the rest.

mod bench;
mod cli;

use std::time::Instant;

fn main() -> anyhow::Result<()> {
    // Before anything else: `__boot-once` reports the time from here.
    let started = Instant::now();
    cli::run(started)
}
