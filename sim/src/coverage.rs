//! Basic-block coverage from kernels built with `CONFIG_LKL_COVERAGE`.
//!
//! gcc's `-fsanitize-coverage=trace-pc` puts a call at the start of every
//! basic block of the files under test; the arch port turns each call into
//! the `coverage` op with the block's offset from `_stext`, which is the
//! same number in every instance of the same kernel library. Two records
//! are kept:
//!
//! - the process's set of blocks that ran ([`blocks`]), from every kernel
//!   instance and thread;
//! - the calling thread's blocks, in order, while it runs [`trace`], for a
//!   fuzzer's per-call feedback.
//!
//! The set is a lock-free table: a block already seen costs one load, so
//! threads that run the same code do not write the same cache line.

use std::cell::RefCell;
use std::ffi::c_ulong;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

/// Slots of the process-wide table (a power of two).
const SLOTS: usize = 1 << 16;
/// Distinct blocks the table keeps; beyond that, [`overflowed`] is set.
pub const CAPACITY: usize = SLOTS / 4 * 3;
/// Blocks one [`trace`] keeps; beyond that, it is marked truncated.
pub const TRACE_CAPACITY: usize = 1 << 16;

/// Offset + 1 of each block seen (0: an empty slot).
static SEEN: [AtomicU32; SLOTS] = [const { AtomicU32::new(0) }; SLOTS];
static DISTINCT: AtomicUsize = AtomicUsize::new(0);
static OVERFLOW: AtomicBool = AtomicBool::new(false);

/// The blocks the calling thread ran inside [`trace`].
struct Trace {
    blocks: Vec<u32>,
    truncated: bool,
}

thread_local! {
    static TRACE: RefCell<Option<Trace>> = const { RefCell::new(None) };
}

fn slot_of(key: u32) -> usize {
    // Fibonacci hashing: blocks are a few bytes apart, spread them.
    (key.wrapping_mul(0x9e37_79b1) >> 16) as usize & (SLOTS - 1)
}

/// Adds `offset` to the process's set.
fn insert(offset: u32) {
    let key = offset.wrapping_add(1);
    if key == 0 {
        OVERFLOW.store(true, Ordering::Relaxed);
        return;
    }
    let mut slot = slot_of(key);
    for _ in 0..SLOTS {
        let cell = &SEEN[slot];
        match cell.load(Ordering::Relaxed) {
            k if k == key => return,
            0 => {
                if DISTINCT.load(Ordering::Relaxed) >= CAPACITY {
                    OVERFLOW.store(true, Ordering::Relaxed);
                    return;
                }
                match cell.compare_exchange(0, key, Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => {
                        DISTINCT.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Err(k) if k == key => return,
                    Err(_) => {}
                }
            }
            _ => {}
        }
        slot = (slot + 1) & (SLOTS - 1);
    }
    OVERFLOW.store(true, Ordering::Relaxed);
}

/// `coverage(offset)`: the basic block at `offset` from `_stext` ran on
/// the calling thread.
///
/// # Safety
///
/// None beyond the C ABI: any value is accepted.
pub unsafe extern "C" fn coverage(offset: c_ulong) {
    // No guard(): nothing here can panic (try_with does not, even while
    // the thread's locals are being destroyed).
    let offset = u32::try_from(offset).unwrap_or(u32::MAX);
    insert(offset);
    let _ = TRACE.try_with(|t| {
        if let Ok(mut t) = t.try_borrow_mut() {
            if let Some(t) = t.as_mut() {
                if t.blocks.len() < TRACE_CAPACITY {
                    t.blocks.push(offset);
                } else {
                    t.truncated = true;
                }
            }
        }
    });
}

/// The blocks any kernel of this process has run, as offsets from
/// `_stext`, sorted.
pub fn blocks() -> Vec<u32> {
    let mut out: Vec<u32> = SEEN
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .filter(|&k| k != 0)
        .map(|k| k - 1)
        .collect();
    out.sort_unstable();
    out
}

/// Whether some block could not be recorded (more than [`CAPACITY`]
/// distinct blocks, or an offset beyond 4 GiB): the set is incomplete.
pub fn overflowed() -> bool {
    OVERFLOW.load(Ordering::Relaxed)
}

/// What one [`trace`] saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Traced {
    /// The blocks the calling thread ran, in order, repeats included.
    pub blocks: Vec<u32>,
    /// More than [`TRACE_CAPACITY`] blocks ran; the rest are not in
    /// `blocks` (they are in [`blocks`]).
    pub truncated: bool,
}

/// Runs `f` and returns, with its result, the blocks the calling thread
/// ran meanwhile (kernel code run by other threads is not in them). A
/// trace inside a trace sees its own blocks only; the outer one sees
/// neither those nor its own in between.
pub fn trace<R>(f: impl FnOnce() -> R) -> (R, Traced) {
    let outer = TRACE.with(|t| {
        t.borrow_mut().replace(Trace {
            blocks: Vec::new(),
            truncated: false,
        })
    });
    // Puts the outer trace back, also if `f` unwinds.
    struct Restore(Option<Trace>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let outer = self.0.take();
            let _ = TRACE.try_with(|t| *t.borrow_mut() = outer);
        }
    }
    let restore = Restore(outer);
    let r = f();
    let mine = TRACE.with(|t| t.borrow_mut().take());
    drop(restore);
    let traced = mine
        .map(|t| Traced {
            blocks: t.blocks,
            truncated: t.truncated,
        })
        .unwrap_or_default();
    (r, traced)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(offset: u32) {
        // SAFETY: any value is accepted.
        unsafe { coverage(offset as c_ulong) };
    }

    #[test]
    fn blocks_from_any_thread_are_in_the_set_once() {
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for b in 0x1000..0x1100 {
                        run(b);
                    }
                });
            }
        });
        let all = blocks();
        let mine: Vec<u32> = all
            .iter()
            .copied()
            .filter(|b| (0x1000..0x1100).contains(b))
            .collect();
        assert_eq!(mine, (0x1000..0x1100).collect::<Vec<_>>());
    }

    #[test]
    fn a_trace_sees_the_calling_threads_blocks_in_order() {
        let ((), outer) = trace(|| {
            run(0x20);
            let ((), inner) = trace(|| {
                run(0x30);
                run(0x30);
            });
            assert_eq!(inner.blocks, [0x30, 0x30]);
            std::thread::spawn(|| run(0x40)).join().unwrap();
            run(0x21);
        });
        assert_eq!(outer.blocks, [0x20, 0x21]);
        assert!(!outer.truncated);
        // Outside any trace nothing is kept per thread.
        run(0x22);
        assert!(blocks().contains(&0x40) && blocks().contains(&0x22));
    }

    #[test]
    fn a_long_trace_is_truncated_not_grown() {
        let ((), t) = trace(|| {
            for _ in 0..TRACE_CAPACITY + 10 {
                run(0x50);
            }
        });
        assert_eq!(t.blocks.len(), TRACE_CAPACITY);
        assert!(t.truncated);
    }
}
