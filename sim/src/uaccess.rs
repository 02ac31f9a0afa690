//! Fault-tolerant copies (`copy_from_user`, `copy_to_user`).
//!
//! The "user" side is an arbitrary host address handed to a system call:
//! NULL, unmapped, `PROT_NONE` or read-only. Two mechanisms, chosen for
//! speed on the good path and precision on the bad one:
//!
//! * **Fast path, the kernel's own design** (`csrc/fault_copy.c`): a plain
//!   `memcpy` with a per-thread recovery point armed, and a process-wide
//!   `SIGSEGV`/`SIGBUS` handler that jumps back to the point if it is armed
//!   and otherwise hands the signal to whichever handler was installed
//!   before it (Rust's stack-overflow guard, a debugger's, the default).
//! * **Fault path**: a copy that faulted is redone with
//!   `process_vm_readv` / `process_vm_writev` on our own pid, where the host
//!   kernel does the access, reports a bad address as `EFAULT`, and tells
//!   how far it got. So the result is always the exact number of bytes
//!   *not* copied (0 on success, `len` when the first byte is inaccessible,
//!   something in between when the range runs into a bad page), and
//!   protections are honoured (a read-only page is never written).
//!
//! If the handler cannot be installed, every copy takes the second path.
//! [`bench_round_trip`] and [`bench_probe_round_trip`] measure both.

use std::ffi::{c_ulong, c_void};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::ffi::{guard, write_stderr};

extern "C" {
    fn lkl_sim_fault_install() -> libc::c_int;
    fn lkl_sim_fault_copy(dst: *mut c_void, src: *const c_void, n: usize) -> usize;
    fn lkl_sim_fault_cmpxchg32(addr: *mut u32, expected: *mut u32, desired: u32) -> libc::c_int;
}

/// Whether the fault handler is installed (once per process).
fn fast_path_ready() -> bool {
    static READY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    // SAFETY: installs a signal handler that only acts on faults raised
    // inside lkl_sim_fault_copy() and passes every other fault on.
    *READY.get_or_init(|| unsafe { lkl_sim_fault_install() } == 0)
}

/// Copies `len` bytes from `src` to `dst`, where either side may be
/// invalid; returns the number of bytes not copied.
///
/// # Safety
///
/// As for [`transfer`]: a valid destination must be memory the caller may
/// overwrite.
unsafe fn fault_safe_copy(dst: *mut u8, src: *const u8, len: usize, to_user: bool) -> usize {
    if len == 0 {
        return 0;
    }
    // SAFETY: a fault in the copy is caught and reported, not delivered;
    // the caller allows writing a valid `dst`.
    if fast_path_ready() && unsafe { lkl_sim_fault_copy(dst.cast(), src.cast(), len) } == 0 {
        return 0;
    }
    // Exact count, and protections honoured, from the host kernel.
    // SAFETY: forwarded caller contract.
    unsafe {
        if to_user {
            transfer(src.cast_mut(), dst, len, true)
        } else {
            transfer(dst, src.cast_mut(), len, false)
        }
    }
}

/// Copies `len` bytes between our own addresses `local` and `remote` with
/// `process_vm_{readv,writev}`; returns the number of bytes not copied.
///
/// `write == false`: `remote` → `local`; `write == true`: `local` →
/// `remote`.
///
/// # Safety
///
/// Whichever side is written must either be invalid (the copy then stops
/// with `EFAULT`) or be memory the caller may overwrite with `len` bytes:
/// no live Rust reference may observe the write.
unsafe fn transfer(local: *mut u8, remote: *mut u8, len: usize, write: bool) -> usize {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let mut done = 0usize;
    while done < len {
        let l = libc::iovec {
            iov_base: local.wrapping_add(done).cast(),
            iov_len: len - done,
        };
        let r = libc::iovec {
            iov_base: remote.wrapping_add(done).cast(),
            iov_len: len - done,
        };
        // SAFETY: both iovec arrays are valid for one element. The host
        // kernel validates every address it touches and fails with EFAULT
        // instead of faulting; the caller guarantees that writing to a
        // *valid* destination is permitted.
        let n = unsafe {
            if write {
                libc::process_vm_writev(pid, &l, 1, &r, 1, 0)
            } else {
                libc::process_vm_readv(pid, &l, 1, &r, 1, 0)
            }
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ENOSYS) | Some(libc::EPERM) => warn_unavailable(&err),
                _ => {}
            }
            break;
        }
        if n == 0 {
            break;
        }
        done += n as usize;
    }
    len - done
}

/// Says once, on stderr, that the host forbids `process_vm_*` (e.g. a
/// seccomp filter): every copy then reports "nothing copied", which the
/// kernel turns into `EFAULT`.
fn warn_unavailable(err: &io::Error) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        write_stderr(
            format!(
                "lkl-sim: process_vm_readv/writev unavailable ({err}): \
                 copy_from_user/copy_to_user cannot copy anything\n"
            )
            .as_bytes(),
        );
    }
}

/// Copies `dst.len()` bytes from the possibly invalid address `src` into
/// `dst`; returns the number of bytes not copied (the tail of `dst` past
/// the copied prefix is left unchanged).
///
/// # Safety
///
/// The good path is a plain `memcpy` in this process: where
/// `src..src + dst.len()` is valid memory, no other thread may write it
/// during the copy (that would be a data race). Invalid addresses (NULL,
/// unmapped, `PROT_NONE`) are fine: the fault is caught.
pub unsafe fn copy_from_user_slice(dst: &mut [u8], src: *const u8) -> usize {
    // SAFETY: `dst` is a valid, exclusively borrowed buffer of `dst.len()`
    // bytes; `src` is only read, a fault reading it is caught, and our
    // caller rules out a racing writer.
    unsafe { fault_safe_copy(dst.as_mut_ptr(), src, dst.len(), false) }
}

/// [`copy_from_user_slice`] through `process_vm_readv` only, the fault
/// path: for benchmarks and tests of that path.
///
/// # Safety
///
/// As for [`copy_from_user_slice`]: valid memory at `src` must not be
/// written during the copy.
pub unsafe fn copy_from_user_slice_probe(dst: &mut [u8], src: *const u8) -> usize {
    // SAFETY: `dst` is a valid, exclusively borrowed buffer of `dst.len()`
    // bytes; `src` is only read, by the host kernel, with no racing
    // writer (our caller's contract).
    unsafe { transfer(dst.as_mut_ptr(), src.cast_mut(), dst.len(), false) }
}

/// Copies `src` to the possibly invalid address `dst`; returns the number
/// of bytes not copied.
///
/// # Safety
///
/// If `dst..dst+src.len()` is (partly) valid memory, the caller must be
/// allowed to overwrite it: no live Rust reference may cover it.
pub unsafe fn copy_to_user_slice(dst: *mut u8, src: &[u8]) -> usize {
    // SAFETY: `src` is only read; writing `dst` is allowed per our caller.
    unsafe { fault_safe_copy(dst, src.as_ptr(), src.len(), true) }
}

/// `copy_from_user`: copies `len` bytes from the possibly invalid `src` to
/// `dst`; returns the number of bytes NOT copied.
///
/// # Safety
///
/// `dst` must be writable for `len` bytes (a bad `dst` is also reported as
/// not copied rather than crashing, but must not be someone else's memory).
pub unsafe extern "C" fn copy_from_user(
    dst: *mut c_void,
    src: *const c_void,
    len: c_ulong,
) -> c_ulong {
    guard("copy_from_user", || {
        // SAFETY: forwarded caller contract on `dst`; `src` is only read.
        unsafe { fault_safe_copy(dst.cast(), src.cast(), len as usize, false) as c_ulong }
    })
}

/// `copy_to_user`: copies `len` bytes from `src` to the possibly invalid
/// `dst`; returns the number of bytes NOT copied.
///
/// # Safety
///
/// `src` must be readable for `len` bytes; where `dst` is valid, it must be
/// memory the kernel may write (user memory of the calling host program).
pub unsafe extern "C" fn copy_to_user(
    dst: *mut c_void,
    src: *const c_void,
    len: c_ulong,
) -> c_ulong {
    guard("copy_to_user", || {
        // SAFETY: forwarded caller contract.
        unsafe { fault_safe_copy(dst.cast(), src.cast(), len as usize, true) as c_ulong }
    })
}

/// `user_cmpxchg32`: atomically replaces the 32-bit word at the possibly
/// invalid address `uaddr` by `desired` if it holds `*expected`; stores
/// the value found in `*expected`. Returns 0, or -1 if the word cannot be
/// read and written (the kernel's futexes turn that into `EFAULT`).
///
/// # Safety
///
/// `expected` must be valid for reads and writes; where `uaddr` is valid,
/// it must be memory the kernel may write (user memory of the host
/// program), accessed by others only atomically.
pub unsafe extern "C" fn user_cmpxchg32(
    uaddr: *mut u32,
    expected: *mut u32,
    desired: u32,
) -> libc::c_int {
    guard("user_cmpxchg32", || {
        if !uaddr.is_aligned() {
            return -1;
        }
        if !fast_path_ready() {
            // No recovery point: make sure the word is readable and
            // writable first (a racing unmap can still fault).
            let mut word = [0u8; 4];
            // SAFETY: `word` is ours; `uaddr` is only read by the host kernel.
            if unsafe { transfer(word.as_mut_ptr(), uaddr.cast(), 4, false) } != 0
                // SAFETY: writes back what was read, through the host kernel.
                || unsafe { transfer(word.as_mut_ptr(), uaddr.cast(), 4, true) } != 0
            {
                return -1;
            }
        }
        // SAFETY: a fault on `uaddr` is caught and reported; `expected` is
        // valid per the contract.
        unsafe { lkl_sim_fault_cmpxchg32(uaddr, expected, desired) }
    })
}

/// Micro-benchmark: `iterations` round trips (`copy_to_user` then
/// `copy_from_user`) of `len` bytes between two heap buffers. Returns the
/// total elapsed time. For manual measurement; tests never assert on it.
pub fn bench_round_trip(len: usize, iterations: usize) -> Duration {
    let src = vec![0x5au8; len];
    let mut user = vec![0u8; len];
    let mut back = vec![0u8; len];
    let start = Instant::now();
    for _ in 0..iterations {
        // SAFETY: `user` is our own buffer, not borrowed elsewhere.
        let a = unsafe { copy_to_user_slice(user.as_mut_ptr(), &src) };
        // SAFETY: `user` is ours; nothing writes it during the copy.
        let b = unsafe { copy_from_user_slice(&mut back, user.as_ptr()) };
        debug_assert_eq!(a + b, 0);
    }
    let elapsed = start.elapsed();
    std::hint::black_box((&user, &back));
    elapsed
}

/// Micro-benchmark of the fault path alone: `iterations` copies of `len`
/// bytes through `process_vm_readv`. For manual measurement.
pub fn bench_probe_round_trip(len: usize, iterations: usize) -> Duration {
    let user = vec![0x5au8; len];
    let mut back = vec![0u8; len];
    let start = Instant::now();
    for _ in 0..iterations {
        // SAFETY: `user` is ours; nothing writes it during the copy.
        let b = unsafe { copy_from_user_slice_probe(&mut back, user.as_ptr()) };
        debug_assert_eq!(b, 0);
    }
    let elapsed = start.elapsed();
    std::hint::black_box(&back);
    elapsed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::page_size;

    /// A mapping of `pages` pages whose page `bad` gets protection `prot`
    /// (or is unmapped when `prot` is `None`).
    struct Pages {
        base: *mut u8,
        len: usize,
    }

    impl Pages {
        fn new(pages: usize) -> Self {
            let len = pages * page_size();
            let base = crate::mem::map(len).unwrap().as_ptr().cast::<u8>();
            Pages { base, len }
        }
        fn page(&self, i: usize) -> *mut u8 {
            self.base.wrapping_add(i * page_size())
        }
        fn protect(&self, i: usize, prot: libc::c_int) {
            // SAFETY: page `i` belongs to our mapping; no reference into it
            // is live.
            let rc = unsafe { libc::mprotect(self.page(i).cast(), page_size(), prot) };
            assert_eq!(rc, 0);
        }
    }

    impl Drop for Pages {
        fn drop(&mut self) {
            // SAFETY: our mapping (munmap of already-unmapped parts is fine).
            unsafe { libc::munmap(self.base.cast(), self.len) };
        }
    }

    fn from_c(dst: &mut [u8], src: *const u8) -> usize {
        // SAFETY: `dst` is a valid buffer.
        unsafe {
            copy_from_user(dst.as_mut_ptr().cast(), src.cast(), dst.len() as c_ulong) as usize
        }
    }

    fn to_c(dst: *mut u8, src: &[u8]) -> usize {
        // SAFETY: tests only pass invalid addresses or their own buffers.
        unsafe { copy_to_user(dst.cast(), src.as_ptr().cast(), src.len() as c_ulong) as usize }
    }

    /// Bad addresses that stay bad while other tests run concurrently
    /// (a freshly unmapped page could be mapped again by another test
    /// thread at any moment; that case lives in `tests/uaccess_unmapped.rs`,
    /// a single-test process).
    fn bad_addresses(p: &Pages) -> Vec<(&'static str, *mut u8)> {
        vec![
            ("NULL", std::ptr::null_mut()),
            ("1", std::ptr::without_provenance_mut(1)),
            ("0xfff", std::ptr::without_provenance_mut(0xfff)),
            ("PROT_NONE", p.page(1)),
            (
                "kernel half",
                std::ptr::without_provenance_mut(0xffff_8000_0000_0000),
            ),
            ("top", std::ptr::without_provenance_mut(usize::MAX)),
        ]
    }

    #[test]
    fn bad_sources_never_crash() {
        let p = Pages::new(2);
        p.protect(1, libc::PROT_NONE);
        for (what, addr) in bad_addresses(&p) {
            for len in [1usize, 8, 4096, 100_000] {
                let mut dst = vec![0x11u8; len];
                assert_eq!(from_c(&mut dst, addr), len, "from {what} len {len}");
                assert!(dst.iter().all(|&b| b == 0x11), "dst modified ({what})");
                // SAFETY: `addr` is invalid memory by construction.
                assert_eq!(unsafe { copy_from_user_slice(&mut dst, addr) }, len);
            }
        }
    }

    #[test]
    fn bad_destinations_never_crash() {
        let p = Pages::new(3);
        p.protect(1, libc::PROT_NONE);
        p.protect(2, libc::PROT_READ);
        let mut addrs = bad_addresses(&p);
        addrs.push(("read-only", p.page(2)));
        for (what, addr) in addrs {
            for len in [1usize, 8, 4096, 100_000] {
                let src = vec![0x22u8; len];
                assert_eq!(to_c(addr, &src), len, "to {what} len {len}");
            }
        }
        // The read-only page was not written.
        // SAFETY: page 2 is mapped readable.
        assert_eq!(unsafe { *p.page(2) }, 0);
    }

    #[test]
    fn crossing_into_prot_none_is_partial() {
        let ps = page_size();
        let p = Pages::new(2);
        p.protect(1, libc::PROT_NONE);
        let start = p.page(1).wrapping_sub(100);
        // Fill the valid tail of page 0 with a pattern.
        let pattern: Vec<u8> = (0..100u8).collect();
        assert_eq!(to_c(start, &pattern), 0);

        for len in [101usize, 200, ps, 3 * ps] {
            let mut dst = vec![0xeeu8; len];
            let not = from_c(&mut dst, start);
            assert!((len - 100..=len).contains(&not), "len {len}: {not}");
            let copied = len - not;
            assert_eq!(&dst[..copied], &pattern[..copied]);
            assert!(dst[copied..].iter().all(|&b| b == 0xee));

            let src = vec![0x77u8; len];
            let not = to_c(start, &src);
            assert!((len - 100..=len).contains(&not), "len {len}: {not}");
            // Restore the pattern for the next round.
            assert_eq!(to_c(start, &pattern), 0);
        }
    }

    #[test]
    fn valid_copies_of_many_sizes() {
        for len in [0usize, 1, 8, 4096, 100_000] {
            let src: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mut user = vec![0u8; len];
            assert_eq!(to_c(user.as_mut_ptr(), &src), 0, "to len {len}");
            assert_eq!(user, src);
            let mut back = vec![0u8; len];
            assert_eq!(from_c(&mut back, user.as_ptr()), 0, "from len {len}");
            assert_eq!(back, src);
            // Rust API.
            let mut back2 = vec![0u8; len];
            // SAFETY: `src` is ours and not written meanwhile.
            assert_eq!(unsafe { copy_from_user_slice(&mut back2, src.as_ptr()) }, 0);
            assert_eq!(back2, src);
        }
    }

    #[test]
    fn zero_length_with_bad_pointers_copies_nothing() {
        // SAFETY: zero-length copies touch nothing.
        unsafe {
            assert_eq!(copy_from_user(std::ptr::null_mut(), std::ptr::null(), 0), 0);
            assert_eq!(copy_to_user(std::ptr::null_mut(), std::ptr::null(), 0), 0);
        }
    }

    #[test]
    fn bench_runs() {
        let d = bench_round_trip(4096, 10);
        std::hint::black_box(d);
    }
}
