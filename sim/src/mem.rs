//! Page-aligned memory (`mem_alloc`, `mem_free`) from anonymous private
//! `mmap`s. Memory is zero-filled and readable/writable.

use std::ffi::{c_ulong, c_void};
use std::ptr::NonNull;

use crate::error::SimError;
use crate::ffi::{guard, write_stderr};

/// The host page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

/// Maps `size` bytes of zeroed, page-aligned, read/write memory.
pub fn map(size: usize) -> Result<NonNull<c_void>, SimError> {
    if size == 0 {
        return Err(SimError::ZeroSize);
    }
    // SAFETY: an anonymous private mapping at a kernel-chosen address does
    // not alias any existing Rust object.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(SimError::Mem(std::io::Error::last_os_error()));
    }
    NonNull::new(p).ok_or(SimError::Mem(std::io::Error::other("mmap returned NULL")))
}

/// Unmaps memory from [`map`].
///
/// # Safety
///
/// `addr`/`size` must describe (part of) a mapping from [`map`] that
/// nothing references any more.
pub unsafe fn unmap(addr: NonNull<c_void>, size: usize) -> Result<(), SimError> {
    // SAFETY: per the caller's contract the range is ours and unused.
    let rc = unsafe { libc::munmap(addr.as_ptr(), size) };
    if rc != 0 {
        return Err(SimError::Mem(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// `mem_alloc`: `size` bytes of page-aligned zeroed memory; NULL on
/// failure (including `size == 0`).
///
/// # Safety
///
/// Always safe to call; `unsafe` only to match the ops table type.
pub unsafe extern "C" fn mem_alloc(size: c_ulong) -> *mut c_void {
    guard("mem_alloc", || match map(size as usize) {
        Ok(p) => p.as_ptr(),
        Err(_) => std::ptr::null_mut(),
    })
}

/// `mem_free`: frees memory from [`mem_alloc`] (NULL is ignored).
///
/// # Safety
///
/// `addr` must be NULL or come from [`mem_alloc`] with the same `size`,
/// and not be used afterwards.
pub unsafe extern "C" fn mem_free(addr: *mut c_void, size: c_ulong) {
    guard("mem_free", || {
        let Some(addr) = NonNull::new(addr) else {
            return;
        };
        // SAFETY: forwarded caller contract.
        if let Err(e) = unsafe { unmap(addr, size as usize) } {
            write_stderr(format!("lkl-sim: mem_free({addr:p}, {size}): {e}\n").as_bytes());
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_is_page_aligned_zeroed_and_writable() {
        let ps = page_size();
        for size in [1usize, 100, 4096, 4097, 1 << 20] {
            // SAFETY: freed below with the same size.
            let p = unsafe { mem_alloc(size as c_ulong) };
            assert!(!p.is_null());
            assert_eq!(p as usize % ps, 0);
            // SAFETY: `size` bytes are mapped read/write.
            let s = unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), size) };
            assert!(s.iter().all(|&b| b == 0));
            s.fill(0xa5);
            assert_eq!(s[size - 1], 0xa5);
            // SAFETY: from mem_alloc with this size; not used afterwards.
            unsafe { mem_free(p, size as c_ulong) };
        }
    }

    #[test]
    fn failures_return_null() {
        // SAFETY: always safe.
        unsafe {
            assert!(mem_alloc(0).is_null());
            assert!(mem_alloc(c_ulong::MAX).is_null());
            assert!(mem_alloc(1 << 62).is_null());
            mem_free(std::ptr::null_mut(), 4096);
        }
        assert!(matches!(map(0), Err(SimError::ZeroSize)));
    }

    #[test]
    fn rust_api_round_trip() {
        let p = map(3 * page_size()).unwrap();
        // SAFETY: mapped above, unused afterwards.
        unsafe { unmap(p, 3 * page_size()) }.unwrap();
    }
}
