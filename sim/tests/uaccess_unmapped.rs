//! `copy_from_user` / `copy_to_user` against an unmapped page in the
//! middle of the address space.
//!
//! This file holds a single test on purpose: in a process where other
//! tests run concurrently, a page we just unmapped can be mapped again by
//! another thread at any moment (and `copy_to_user` would then write into
//! someone else's memory). All buffers are allocated before the hole is
//! made, so nothing in this process maps memory while the hole exists.

use std::ffi::c_ulong;

use lkl_sim::mem::page_size;
use lkl_sim::HostOps;

#[test]
fn unmapped_page_never_crashes_and_crossing_is_partial() {
    let ops = HostOps::standalone();
    let from = ops.copy_from_user.unwrap();
    let to = ops.copy_to_user.unwrap();
    let ps = page_size();

    let lens = [1usize, 8, 4096, 100_000];
    let mut dsts: Vec<Vec<u8>> = lens.iter().map(|&l| vec![0x11u8; l]).collect();
    let srcs: Vec<Vec<u8>> = lens.iter().map(|&l| vec![0x22u8; l]).collect();
    let mut cross_dst = vec![0xeeu8; 2 * ps];
    let cross_src = vec![0x77u8; 2 * ps];

    // Three pages; the middle one becomes a hole.
    let base = lkl_sim::mem::map(3 * ps).unwrap().as_ptr().cast::<u8>();
    let hole = base.wrapping_add(ps);
    // SAFETY: the middle page of our own mapping; nothing references it.
    assert_eq!(unsafe { libc::munmap(hole.cast(), ps) }, 0);

    for ((len, dst), src) in lens.iter().zip(&mut dsts).zip(&srcs) {
        // SAFETY: `dst`/`src` are valid buffers of `len` bytes; the user
        // side is the hole.
        unsafe {
            assert_eq!(
                from(dst.as_mut_ptr().cast(), hole.cast(), *len as c_ulong),
                *len as c_ulong,
                "from hole, len {len}"
            );
            assert_eq!(
                to(hole.cast(), src.as_ptr().cast(), *len as c_ulong),
                *len as c_ulong,
                "to hole, len {len}"
            );
        }
        assert!(dst.iter().all(|&b| b == 0x11));
    }

    // From the valid first page into the hole: the last 100 bytes of page
    // 0 can be copied, the rest cannot.
    let start = hole.wrapping_sub(100);
    let len = 2 * ps;
    // SAFETY: as above; the valid part of the range is our own page 0.
    let (not_from, not_to) = unsafe {
        (
            from(cross_dst.as_mut_ptr().cast(), start.cast(), len as c_ulong) as usize,
            to(start.cast(), cross_src.as_ptr().cast(), len as c_ulong) as usize,
        )
    };
    assert!((len - 100..=len).contains(&not_from), "{not_from}");
    assert!((len - 100..=len).contains(&not_to), "{not_to}");
    assert!(cross_dst[len - not_from..].iter().all(|&b| b == 0xee));

    // SAFETY: unmapping the rest of our own mapping.
    unsafe {
        libc::munmap(base.cast(), ps);
        libc::munmap(base.wrapping_add(2 * ps).cast(), ps);
    }
}
