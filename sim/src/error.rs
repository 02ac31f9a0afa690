//! Errors of the Rust-facing API.
//!
//! The `extern "C"` shims never return these: they translate them into the
//! C conventions of `struct lkl_host_ops` (NULL, 0, -1, ...).

use std::io;

/// An error from one of the host services' Rust API.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The operating system refused to start a thread.
    #[error("cannot spawn host thread: {0}")]
    Spawn(#[source] io::Error),

    /// `join` was given an id that is not a joinable thread (never created by
    /// [`crate::thread::create`], or already joined).
    #[error("thread {0} is not a joinable host thread")]
    NoSuchThread(u64),

    /// A thread tried to join itself.
    #[error("thread {0} cannot join itself")]
    JoinSelf(u64),

    /// The joined thread's body panicked.
    #[error("thread {0} panicked")]
    ThreadPanicked(u64),

    /// `pthread_key_create` / `pthread_setspecific` failed (errno).
    #[error("thread-local key operation failed: {0}")]
    Tls(#[source] io::Error),

    /// `mmap` / `munmap` failed.
    #[error("memory mapping failed: {0}")]
    Mem(#[source] io::Error),

    /// A zero-sized allocation was requested.
    #[error("zero-sized allocation")]
    ZeroSize,

    /// The mutex was not locked when `unlock` was called.
    #[error("unlock of a mutex that is not locked")]
    NotLocked,

    /// The timer has been stopped (freed) and can no longer be armed.
    #[error("timer is stopped")]
    TimerStopped,
}
