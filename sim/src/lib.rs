//! `lkl-sim`: the host environment a Linux-kernel-as-a-library runs on.
//!
//! The kernel (C) reaches its host only through the function-pointer table
//! `struct lkl_host_ops` (`lkl/arch/lkl/include/uapi/asm/host_ops.h`),
//! mirrored here as [`HostOps`]. This crate implements every op in Rust;
//! each `extern "C"` shim catches panics and aborts with a message rather
//! than unwinding into C.
//!
//! | concept | module | ops |
//! | --- | --- | --- |
//! | the C table | [`ffi`] | `struct lkl_host_ops` |
//! | semaphores | [`sem`] | `sem_alloc/free/up/down` |
//! | mutexes | [`mutex`] | `mutex_alloc/free/lock/unlock` |
//! | threads | [`thread`] | `thread_create/self/join/yield` |
//! | their host scheduling | [`sched`] | (short slices, for every thread above) |
//! | thread-local slots | [`tls`] | `tls_alloc/free/set/get` |
//! | clocks | [`clock`] | `time_ns`, `wall_ns` |
//! | one-shot timers | [`timer`] | `timer_alloc/set_oneshot/cancel/free` |
//! | memory | [`mem`] | `mem_alloc/free` |
//! | user copies | [`uaccess`] | `copy_from_user`, `copy_to_user` |
//! | kernel log | [`console`] | `console_write` (parsing) |
//! | call traces | [`backtrace`] | `backtrace` |
//! | basic-block coverage | [`coverage`] | `coverage` |
//! | one kernel instance | [`host`] | `console_write`, `panic`, `ctx` |
//!
//! A harness creates a [`Host`], hands [`Host::ops_ptr`] to
//! `lkl_start_kernel()`, keeps the `Arc<Host>` alive, and reads the kernel
//! log from [`Host::console`]. Everything works without a kernel:
//!
//! ```
//! use std::time::Duration;
//! use lkl_sim::{Caller, Host};
//!
//! let host = Host::new();
//! let ops = host.ops();
//! assert!(ops.missing().is_empty());
//!
//! // What the kernel's extended console writes, split arbitrarily:
//! let write = ops.console_write.unwrap();
//! for chunk in [&b"6,12,1500,-,caller=T1;Hello"[..], b" \\x5c world\n SUBSYSTEM=x\n"] {
//!     // SAFETY: ctx is our live Host; the chunk is a valid buffer.
//!     unsafe { write(ops.ctx, chunk.as_ptr().cast(), chunk.len() as _) };
//! }
//!
//! let rec = host.console().wait_for(Duration::from_secs(1), |r| r.seq == 12).unwrap();
//! assert_eq!(rec.level, 6);
//! assert_eq!(rec.caller, Some(Caller::Task(1)));
//! assert_eq!(rec.text, "Hello \\ world");
//! assert_eq!(rec.dict, [("SUBSYSTEM".to_string(), "x".to_string())]);
//! assert_eq!(rec.fmt_dmesg(), "[    0.001500] [T1] Hello \\ world");
//! assert_eq!(host.panic_message(), None);
//! ```

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

pub mod backtrace;
pub mod clock;
pub mod console;
pub mod coverage;
pub mod error;
pub mod ffi;
pub mod host;
pub mod mem;
pub mod mutex;
pub mod sched;
pub mod sem;
pub mod thread;
pub mod timer;
pub mod tls;
pub mod uaccess;

pub use console::{Caller, Console, Origin, Record};
pub use error::SimError;
pub use ffi::HostOps;
pub use host::Host;
pub use mutex::HostMutex;
pub use sem::Semaphore;
pub use timer::Timer;
pub use tls::TlsKey;
