//! Page-aligned memory (`mem_alloc`, `mem_free`) from anonymous private
//! `mmap`s. Memory is zero-filled and readable/writable.

use std::ffi::{c_int, c_ulong, c_void};
use std::ptr::NonNull;
use std::sync::Mutex;

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

/// The KASAN shadow of this process, once mapped: start and length.
static SHADOW: Mutex<Option<(usize, usize)>> = Mutex::new(None);

/// Maps KASAN's shadow, `len` bytes at exactly `addr`, zeroed and
/// read/write, reserving no memory (`MAP_NORESERVE`): pages cost memory
/// only once the kernel writes them. Every kernel of a process uses the
/// same range, so only the first call maps it; it is never unmapped.
pub fn map_shadow(addr: usize, len: usize) -> Result<(), SimError> {
    let mut shadow = SHADOW.lock().unwrap_or_else(|e| e.into_inner());
    match *shadow {
        Some(range) if range == (addr, len) => return Ok(()),
        Some((a, l)) => {
            return Err(SimError::Mem(std::io::Error::other(format!(
                "KASAN shadow already mapped at {a:#x} (+{l:#x}), not {addr:#x} (+{len:#x}): \
                 one process runs kernels of one KASAN_SHADOW_OFFSET"
            ))))
        }
        None => {}
    }
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping, so no
    // Rust object is aliased; the result is checked below.
    let p = unsafe {
        libc::mmap(
            addr as *mut c_void,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE
                | libc::MAP_ANONYMOUS
                | libc::MAP_NORESERVE
                | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        let e = std::io::Error::last_os_error();
        return Err(SimError::Mem(std::io::Error::other(format!(
            "cannot map the KASAN shadow, {len:#x} bytes at {addr:#x}: {e} (the range must be \
             free, and vm.overcommit_memory must not be 2)"
        ))));
    }
    if p as usize != addr {
        // An old kernel without MAP_FIXED_NOREPLACE took it as a hint.
        // SAFETY: the mapping was just made and nothing refers to it.
        unsafe { libc::munmap(p, len) };
        return Err(SimError::Mem(std::io::Error::other(format!(
            "the host put the KASAN shadow at {p:p}, not at {addr:#x}"
        ))));
    }
    *shadow = Some((addr, len));
    Ok(())
}

/// The size of the host's transparent huge pages on x86-64.
pub const HUGE_PAGE: usize = 2 << 20;

/// The whole huge pages within `[first, last)`, as a range (empty when
/// there are none).
fn huge_pages_within(first: usize, last: usize) -> (usize, usize) {
    (
        first.next_multiple_of(HUGE_PAGE),
        last / HUGE_PAGE * HUGE_PAGE,
    )
}

/// Returns `len` bytes at `addr` of the shadow from [`map_shadow`] to
/// zeroes; whole pages go back to the host. A range outside the shadow is
/// refused.
///
/// The whole huge pages of the range are advised to be backed by
/// transparent huge pages (`MADV_HUGEPAGE`). A kernel clears the shadow of
/// its arena and its image this way when it boots, then writes it whole:
/// KASAN marks every free page of the arena at once, and registers every
/// global of the image. For a 64 MiB arena that is 8 MiB of shadow, which
/// with 4 KiB pages cost 2,048 page faults at every boot, and with 2 MiB
/// pages costs 4.
pub fn clear_shadow(addr: usize, len: usize) -> Result<(), SimError> {
    let Some((start, size)) = *SHADOW.lock().unwrap_or_else(|e| e.into_inner()) else {
        return Err(SimError::Mem(std::io::Error::other(
            "no KASAN shadow is mapped",
        )));
    };
    let end = addr
        .checked_add(len)
        .filter(|&e| addr >= start && e <= start + size);
    let Some(end) = end else {
        return Err(SimError::Mem(std::io::Error::other(format!(
            "{addr:#x} (+{len:#x}) is not in the KASAN shadow"
        ))));
    };
    let ps = page_size();
    let first = addr.next_multiple_of(ps).min(end);
    let last = (end / ps * ps).max(first);
    // SAFETY: [addr, end) lies in the shadow mapping, which is never
    // unmapped and holds no Rust object; the kernel that asks owns the
    // memory this part of the shadow describes.
    unsafe {
        std::ptr::write_bytes(addr as *mut u8, 0, first - addr);
        std::ptr::write_bytes(last as *mut u8, 0, end - last);
        if last > first
            && libc::madvise(first as *mut c_void, last - first, libc::MADV_DONTNEED) != 0
        {
            std::ptr::write_bytes(first as *mut u8, 0, last - first);
        }
        // Advice only: without transparent huge pages it changes nothing.
        let (huge_first, huge_last) = huge_pages_within(first, last);
        if huge_last > huge_first {
            libc::madvise(
                huge_first as *mut c_void,
                huge_last - huge_first,
                libc::MADV_HUGEPAGE,
            );
        }
    }
    Ok(())
}

/// `shadow_map`: [`map_shadow`]; 0, or -1 with the reason on stderr.
///
/// # Safety
///
/// Always safe to call; `unsafe` only to match the ops table type.
pub unsafe extern "C" fn shadow_map(addr: c_ulong, len: c_ulong) -> c_int {
    guard("shadow_map", || {
        match map_shadow(addr as usize, len as usize) {
            Ok(()) => 0,
            Err(e) => {
                write_stderr(format!("lkl-sim: {e}\n").as_bytes());
                -1
            }
        }
    })
}

/// `shadow_clear`: [`clear_shadow`]; a refused range is reported on
/// stderr.
///
/// # Safety
///
/// The kernel calling it must own the memory the range describes: no
/// other kernel may be using that shadow.
pub unsafe extern "C" fn shadow_clear(addr: c_ulong, len: c_ulong) {
    guard("shadow_clear", || {
        if let Err(e) = clear_shadow(addr as usize, len as usize) {
            write_stderr(format!("lkl-sim: {e}\n").as_bytes());
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
    fn shadow_is_mapped_once_and_cleared_in_place() {
        // The offset of the debug kernel's shadow, which tests of this
        // process may also map: the same range is accepted again.
        let (addr, len) = (0x1000_0000_0000usize, 1usize << 44);
        map_shadow(addr, len).unwrap();
        map_shadow(addr, len).unwrap();
        assert!(map_shadow(addr, len / 2).is_err());
        let ps = page_size();
        let at = addr + 0x7f00_0000_0000 / 8;
        // SAFETY: inside the shadow mapping, which stays mapped.
        let bytes = unsafe { std::slice::from_raw_parts_mut(at as *mut u8, 3 * ps) };
        bytes.fill(0xfa);
        clear_shadow(at + 7, 2 * ps).unwrap();
        assert!(bytes[..7].iter().all(|&b| b == 0xfa));
        assert!(bytes[7..7 + 2 * ps].iter().all(|&b| b == 0));
        assert!(bytes[7 + 2 * ps..].iter().all(|&b| b == 0xfa));
        clear_shadow(at, 3 * ps).unwrap();
        assert!(clear_shadow(addr - 1, 2).is_err());
        assert!(clear_shadow(addr + len - 1, 2).is_err());
    }

    /// The `VmFlags` of the mapping of this process that holds `addr`.
    fn vm_flags_at(addr: usize) -> String {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for line in smaps.lines() {
            let range = line
                .split_whitespace()
                .next()
                .and_then(|r| r.split_once('-'));
            if let Some((start, end)) = range {
                if let (Ok(start), Ok(end)) = (
                    usize::from_str_radix(start, 16),
                    usize::from_str_radix(end, 16),
                ) {
                    inside = (start..end).contains(&addr);
                    continue;
                }
            }
            if let Some(flags) = line.strip_prefix("VmFlags:").filter(|_| inside) {
                return flags.trim().to_string();
            }
        }
        panic!("no mapping holds {addr:#x}");
    }

    #[test]
    fn clearing_a_shadow_range_of_huge_pages_advises_huge_pages() {
        let (addr, len) = (0x1000_0000_0000usize, 1usize << 44);
        map_shadow(addr, len).unwrap();
        // The shadow of a 64 MiB arena, away from the other shadow test's.
        let arena = addr + 0x7e00_0000_0000 / 8;
        assert_eq!(arena % HUGE_PAGE, 0);
        let small = arena + 16 * HUGE_PAGE;
        assert!(!vm_flags_at(arena).split(' ').any(|f| f == "hg"));
        clear_shadow(arena, 8 << 20).unwrap();
        let flags = vm_flags_at(arena + HUGE_PAGE);
        assert!(flags.split(' ').any(|f| f == "hg"), "{flags}");
        // Less than a huge page: no advice.
        clear_shadow(small, HUGE_PAGE - page_size()).unwrap();
        let flags = vm_flags_at(small);
        assert!(!flags.split(' ').any(|f| f == "hg"), "{flags}");
        // Only whole huge pages: a range from a page past a huge page's
        // start to one page short of the next one's end holds none.
        let (first, last) = huge_pages_within(arena + 4096, arena + 2 * HUGE_PAGE - 4096);
        assert_eq!(first, arena + HUGE_PAGE);
        assert!(last <= first);
    }

    #[test]
    fn rust_api_round_trip() {
        let p = map(3 * page_size()).unwrap();
        // SAFETY: mapped above, unused afterwards.
        unsafe { unmap(p, 3 * page_size()) }.unwrap();
    }
}
