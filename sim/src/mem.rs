//! Page-aligned memory (`mem_alloc`, `mem_free`) from anonymous private
//! `mmap`s, readable/writable. A kernel takes its page arena from
//! `mem_alloc` and gives it back at halt; the last few arenas given back
//! are kept for the next kernels of their size (see [`mem_alloc`]).

use std::ffi::{c_int, c_ulong, c_void};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// Arenas that [`mem_free`] kept for the next [`mem_alloc`] of their
/// size, latest last: (address, size).
static KEPT: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());

/// At most this many arenas are kept: as many as the kernels that a test
/// binary halts and boots again at once (one per test thread).
pub const KEPT_MAX: usize = 4;

/// Nor more than this many bytes of them (whatever part of that the
/// kernels touched stays resident meanwhile).
pub const KEPT_MAX_BYTES: usize = 256 << 20;

/// Whether [`mem_free`] keeps arenas for later kernels (the default).
static KEEPING: AtomicBool = AtomicBool::new(true);

/// Whether the arenas that halted kernels give back are kept for later
/// kernels (`true`, the default) or unmapped at once (`false`, which also
/// unmaps those kept so far). A kept arena is still mapped, so a tool that
/// watches for accesses to freed memory (valgrind's memcheck, a test that
/// halts kernels while threads run in them) would not see a thread that
/// touched a halted kernel's memory: such tools turn keeping off.
pub fn keep_arenas(keep: bool) {
    KEEPING.store(keep, Ordering::SeqCst);
    if !keep {
        release_kept();
    }
}

/// `mem_alloc`: `size` bytes of page-aligned read/write memory; NULL on
/// failure (including `size == 0`).
///
/// Memory a kernel gave back with [`mem_free`] is handed to the next
/// kernel that asks for the same size, as it was left: a kernel makes no
/// assumption about the contents of its memory at boot (real memory
/// holds whatever the last boot left), and already faulted-in pages
/// spare it a page fault and a page clearing for each page it touches:
/// up to a third of a default kernel's boot. Fresh memory is zeroed.
///
/// # Safety
///
/// Always safe to call; `unsafe` only to match the ops table type.
pub unsafe extern "C" fn mem_alloc(size: c_ulong) -> *mut c_void {
    guard("mem_alloc", || {
        let size = size as usize;
        let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = kept.iter().rposition(|&(_, s)| s == size) {
            return kept.remove(i).0 as *mut c_void;
        }
        drop(kept);
        match map(size) {
            Ok(p) => p.as_ptr(),
            Err(_) => std::ptr::null_mut(),
        }
    })
}

/// `mem_free`: gives back memory from [`mem_alloc`] (NULL is ignored).
/// It is kept for a later [`mem_alloc`] while fewer than [`KEPT_MAX`]
/// arenas of at most [`KEPT_MAX_BYTES`] are; otherwise a kept one makes
/// room (the oldest of the size kept most often) and is unmapped, and so
/// is everything given back while keeping is off ([`keep_arenas`]).
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
        let size = size as usize;
        let mut unused = Vec::new();
        if size <= KEPT_MAX_BYTES && KEEPING.load(Ordering::SeqCst) {
            let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
            kept.push((addr.as_ptr() as usize, size));
            while kept.len() > KEPT_MAX
                || kept.iter().map(|&(_, s)| s).sum::<usize>() > KEPT_MAX_BYTES
            {
                let victim = eviction_victim(&kept);
                unused.push(kept.remove(victim));
            }
        } else {
            unused.push((addr.as_ptr() as usize, size));
        }
        for (addr, size) in unused {
            unmap_reporting(addr, size);
        }
    })
}

/// Which kept arena makes room: the oldest of the size kept most often.
/// A run of kernels of one size (a test's fifteen small ones, say) then
/// does not push out the only arena kept for another size, whose next
/// kernel would fault in and clear all of its memory again; among sizes
/// kept equally often, the oldest arena goes. `kept` is not empty.
fn eviction_victim(kept: &[(usize, usize)]) -> usize {
    let copies = |size: usize| kept.iter().filter(|&&(_, s)| s == size).count();
    let most = kept.iter().map(|&(_, s)| copies(s)).max().unwrap_or(0);
    kept.iter()
        .position(|&(_, s)| copies(s) == most)
        .unwrap_or(0)
}

/// Unmaps memory from [`map`] that nothing uses, reporting a failure on
/// stderr.
fn unmap_reporting(addr: usize, size: usize) {
    let Some(p) = NonNull::new(addr as *mut c_void) else {
        return;
    };
    // SAFETY: the callers pass memory from `map` that no kernel uses any
    // more (given back by `mem_free`, and no longer kept).
    if let Err(e) = unsafe { unmap(p, size) } {
        write_stderr(format!("lkl-sim: mem_free({p:p}, {size}): {e}\n").as_bytes());
    }
}

/// Unmaps every arena kept for later kernels, so that this process's
/// memory holds only the kernels that run (as before any halted).
/// Returns the bytes unmapped.
pub fn release_kept() -> usize {
    let kept = std::mem::take(&mut *KEPT.lock().unwrap_or_else(|e| e.into_inner()));
    kept.into_iter()
        .map(|(addr, size)| {
            unmap_reporting(addr, size);
            size
        })
        .sum()
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

    fn kept_sizes() -> Vec<usize> {
        KEPT.lock().unwrap().iter().map(|&(_, s)| s).collect()
    }

    /// Serialises the tests that use the kept arenas.
    static KEPT_TESTS: Mutex<()> = Mutex::new(());

    #[test]
    fn alloc_is_page_aligned_zeroed_when_fresh_and_writable() {
        let _serial = KEPT_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        release_kept();
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
        // Five were given back: the first was unmapped to keep four.
        assert_eq!(release_kept(), 100 + 4096 + 4097 + (1 << 20));
    }

    #[test]
    fn given_back_memory_goes_to_the_next_alloc_of_its_size_as_left() {
        let _serial = KEPT_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        release_kept();
        let size = 5 * page_size();
        // SAFETY: `size` bytes from mem_alloc, given back with that size.
        unsafe {
            let p = mem_alloc(size as c_ulong);
            std::slice::from_raw_parts_mut(p.cast::<u8>(), size).fill(0x5a);
            mem_free(p, size as c_ulong);
            // Another size maps memory of its own.
            let other = mem_alloc(size as c_ulong + 1);
            assert_ne!(other, p);
            let again = mem_alloc(size as c_ulong);
            assert_eq!(again, p);
            let bytes = std::slice::from_raw_parts(again.cast::<u8>(), size);
            assert!(bytes.iter().all(|&b| b == 0x5a));
            // Taken: the next one is fresh, and zeroed.
            let fresh = mem_alloc(size as c_ulong);
            assert_ne!(fresh, p);
            assert!(std::slice::from_raw_parts(fresh.cast::<u8>(), size)
                .iter()
                .all(|&b| b == 0));
            for (q, n) in [(p, size), (other, size + 1), (fresh, size)] {
                mem_free(q, n as c_ulong);
            }
        }
        assert_eq!(release_kept(), 3 * size + 1);
        assert_eq!(release_kept(), 0);
    }

    #[test]
    fn with_keeping_off_given_back_memory_is_unmapped_at_once() {
        let _serial = KEPT_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        let size = 7 * page_size();
        // SAFETY: from mem_alloc, given back once with its size.
        unsafe {
            let kept = mem_alloc(size as c_ulong);
            mem_free(kept, size as c_ulong);
            // Turning keeping off unmaps what was kept.
            keep_arenas(false);
            assert!(kept_sizes().is_empty());
            let p = mem_alloc(size as c_ulong);
            mem_free(p, size as c_ulong);
            assert!(kept_sizes().is_empty());
        }
        keep_arenas(true);
        // SAFETY: as above.
        unsafe {
            let p = mem_alloc(size as c_ulong);
            mem_free(p, size as c_ulong);
        }
        assert_eq!(kept_sizes(), [size]);
        assert_eq!(release_kept(), size);
    }

    #[test]
    fn at_most_kept_max_arenas_and_kept_max_bytes_are_kept() {
        let _serial = KEPT_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        release_kept();
        let size = 3 * page_size();
        // SAFETY: each from mem_alloc, given back once with its size.
        unsafe {
            let arenas: Vec<_> = (0..=KEPT_MAX).map(|_| mem_alloc(size as c_ulong)).collect();
            for &p in &arenas {
                mem_free(p, size as c_ulong);
            }
            // The oldest was unmapped to make room; the others are handed
            // out latest first.
            for &p in arenas[1..].iter().rev() {
                assert_eq!(mem_alloc(size as c_ulong), p);
            }
            for &p in &arenas[1..] {
                mem_free(p, size as c_ulong);
            }
            // Too big to keep: unmapped at once.
            let big = KEPT_MAX_BYTES + page_size();
            let p = mem_alloc(big as c_ulong);
            assert!(!p.is_null());
            mem_free(p, big as c_ulong);
            // Two that fit, but not together: kept ones make room, the
            // oldest of the size kept most often first, until what is
            // kept fits: two of the three small ones go, then the older
            // big one.
            let half = KEPT_MAX_BYTES / 2 + page_size();
            let (p, q) = (mem_alloc(half as c_ulong), mem_alloc(half as c_ulong));
            mem_free(p, half as c_ulong);
            assert_eq!(kept_sizes(), [size, size, size, half]);
            mem_free(q, half as c_ulong);
            assert_eq!(kept_sizes(), [size, half]);
            assert_eq!(mem_alloc(half as c_ulong), q);
            mem_free(q, half as c_ulong);
        }
        assert_eq!(release_kept(), size + KEPT_MAX_BYTES / 2 + page_size());
    }

    #[test]
    fn a_run_of_one_size_does_not_push_out_another_sizes_only_arena() {
        let _serial = KEPT_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        release_kept();
        let (big, small) = (6 * page_size(), 2 * page_size());
        // SAFETY: each from mem_alloc, given back once with its size.
        unsafe {
            let lone = mem_alloc(big as c_ulong);
            mem_free(lone, big as c_ulong);
            let run: Vec<_> = (0..2 * KEPT_MAX)
                .map(|_| mem_alloc(small as c_ulong))
                .collect();
            for &p in &run {
                mem_free(p, small as c_ulong);
            }
            let mut expected = vec![big];
            expected.resize(KEPT_MAX, small);
            assert_eq!(kept_sizes(), expected);
            // The big kernel that boots next gets its old arena back.
            assert_eq!(mem_alloc(big as c_ulong), lone);
            mem_free(lone, big as c_ulong);
        }
        assert_eq!(release_kept(), big + (KEPT_MAX - 1) * small);
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
