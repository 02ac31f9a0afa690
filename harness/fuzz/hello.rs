//! The structure-aware fuzz target for `hello(2)`.
//!
//! An input picks each argument from the classes that matter to the
//! call's contract (flags, pad, size classes, pointer classes for the
//! struct and the name, name shapes). Each call is checked against the
//! contract of `kernel/hello.c` as documented there: the exact errno, and
//! on success exactly the greeting (and the loud one) with the name cut to
//! 63 bytes. Anything else is a finding, and so is any kernel report.

use arbitrary::Arbitrary;

use crate::hello::{HelloArgs, HELLO_ARGS_SIZE_VER0, HELLO_FLAG_LOUD};
use crate::{Caller, Errno, Kernel, Record};

/// `HELLO_NAME_MAX` of kernel/hello.c: the name buffer, NUL included.
const HELLO_NAME_MAX: usize = crate::stress::NAME_MAX_PRINTED + 1;
const PAGE: usize = 4096;
/// Readable bytes before each guard page.
const ROOM: usize = 2 * PAGE;

/// The flags.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flags {
    /// 0.
    None,
    /// `HELLO_FLAG_LOUD`.
    Loud,
    /// Any bits.
    Bits(u32),
}

/// The reserved field.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pad {
    /// 0, as required.
    Zero,
    /// Any value.
    Value(u32),
}

/// The size argument.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    /// Below `HELLO_ARGS_SIZE_VER0` (this value mod 16).
    BelowVer0(u8),
    /// `HELLO_ARGS_SIZE_VER0`.
    Ver0,
    /// The struct and `extra` more bytes (mod 8 KiB), zero unless
    /// `nonzero_at` (an offset into the extension) says one is not.
    Extended {
        /// Bytes past the struct.
        extra: u16,
        /// A non-zero byte at this offset past the struct, if inside.
        nonzero_at: Option<u16>,
    },
    /// Larger than any buffer here.
    Huge(u32),
    /// `usize::MAX`.
    Max,
}

/// Where a pointer argument points.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pointer {
    /// At valid memory holding the data.
    Valid,
    /// NULL.
    Null,
    /// A low address (below 64 KiB, never mapped).
    Low(u16),
    /// An address that was mapped and is not any more.
    Unmapped,
    /// A page mapped `PROT_NONE`.
    ProtNone,
    /// Valid, with the data ending exactly at a `PROT_NONE` page (for a
    /// name: no NUL, it runs into the guard).
    PageEdge,
    /// Inside the kernel's own image.
    Kernel,
}

/// The name's bytes (before the NUL the harness adds).
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum Name {
    /// Any bytes.
    Bytes(Vec<u8>),
    /// `len` times `byte` (mod 256 long): 63, 64 and 65 are the edges.
    Run {
        /// The byte.
        byte: u8,
        /// How many.
        len: u8,
    },
    /// Format directives, newlines and bytes that are not UTF-8.
    Tricky(u8),
}

impl Name {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Name::Bytes(b) => b.clone(),
            Name::Run { byte, len } => vec![*byte; *len as usize],
            Name::Tricky(n) => {
                let parts: [&[u8]; 6] =
                    [b"%s%n%p", b"a\nb", b"\xff\xfe", b"\\x00", b"\xc3(", b"%%"];
                let mut out = Vec::new();
                for i in 0..(*n as usize % 40) {
                    out.extend_from_slice(parts[i % parts.len()]);
                }
                out
            }
        }
    }
}

/// One call of `hello(2)`.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// `uargs->flags`.
    pub flags: Flags,
    /// `uargs->pad`.
    pub pad: Pad,
    /// The size argument.
    pub size: Size,
    /// `uargs`.
    pub uargs: Pointer,
    /// `uargs->name`.
    pub name_ptr: Pointer,
    /// The name.
    pub name: Name,
}

/// Memory the calls point into: two areas of [`ROOM`] bytes, each
/// followed by a `PROT_NONE` guard page, one `PROT_NONE` page and one
/// address that is unmapped.
struct Arena {
    base: *mut u8,
    len: usize,
    unmapped: usize,
}

// SAFETY: the arena is plain memory owned by the target; only the thread
// that runs the target touches it.
unsafe impl Send for Arena {}

impl Arena {
    fn new() -> Arena {
        let len = 2 * (ROOM + PAGE) + PAGE;
        // SAFETY: a fresh anonymous mapping; no existing memory is touched.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(base != libc::MAP_FAILED, "cannot map the fuzz arena");
        let base = base.cast::<u8>();
        for guard in [ROOM, 2 * ROOM + PAGE, 2 * ROOM + 2 * PAGE] {
            // SAFETY: inside the mapping made above.
            let r = unsafe { libc::mprotect(base.add(guard).cast(), PAGE, libc::PROT_NONE) };
            assert_eq!(r, 0, "cannot protect the fuzz arena's guard page");
        }
        Arena {
            base,
            len,
            unmapped: fresh_hole(),
        }
    }

    /// An address nothing is mapped at now: the last one if it is still
    /// a hole (the process may have mapped something there since).
    fn unmapped(&mut self) -> usize {
        if is_mapped(self.unmapped) {
            self.unmapped = fresh_hole();
        }
        self.unmapped
    }

    /// Area 0 (the struct) or 1 (the name), as a slice.
    fn area(&mut self, which: usize) -> &mut [u8] {
        // SAFETY: each area is ROOM read/write bytes of our mapping, and
        // `&mut self` makes this the only reference to them.
        unsafe { std::slice::from_raw_parts_mut(self.base.add(which * (ROOM + PAGE)), ROOM) }
    }

    fn prot_none(&self) -> usize {
        self.base as usize + 2 * ROOM + 2 * PAGE
    }
}

/// Whether the page at `addr` is mapped (`mincore` fails with ENOMEM on
/// a hole).
fn is_mapped(addr: usize) -> bool {
    let mut vec = 0u8;
    // SAFETY: mincore only writes one byte, to `vec`, for one page.
    let r = unsafe { libc::mincore(addr as *mut libc::c_void, PAGE, &mut vec) };
    !(r != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOMEM))
}

/// A page that was mapped and is not any more.
fn fresh_hole() -> usize {
    // SAFETY: a fresh mapping of our own, unmapped at once.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            PAGE,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert!(p != libc::MAP_FAILED, "cannot map a page");
        libc::munmap(p, PAGE);
        p as usize
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: our mapping, unmapped once.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// The `hello(2)` target: the arena it calls with, and its contract.
pub struct Hello {
    arena: Arena,
}

impl Default for Hello {
    fn default() -> Self {
        Hello::new()
    }
}

impl Hello {
    /// A target with its own arena.
    pub fn new() -> Hello {
        Hello {
            arena: Arena::new(),
        }
    }

    /// The size argument for `input`.
    fn size(input: &Input) -> usize {
        match input.size {
            Size::BelowVer0(n) => n as usize % HELLO_ARGS_SIZE_VER0,
            Size::Ver0 => HELLO_ARGS_SIZE_VER0,
            Size::Extended { extra, .. } => {
                HELLO_ARGS_SIZE_VER0 + 1 + extra as usize % (ROOM - HELLO_ARGS_SIZE_VER0)
            }
            Size::Huge(n) => ROOM + 1 + n as usize,
            Size::Max => usize::MAX,
        }
    }

    fn pointer(&mut self, kernel: &Kernel, p: Pointer, valid: usize) -> usize {
        match p {
            Pointer::Valid | Pointer::PageEdge => valid,
            Pointer::Null => 0,
            Pointer::Low(n) => n as usize,
            Pointer::Unmapped => self.arena.unmapped(),
            Pointer::ProtNone => self.arena.prot_none(),
            Pointer::Kernel => {
                let (start, end) = kernel.image_range();
                if end > start {
                    start + (end - start) / 2
                } else {
                    0x1000
                }
            }
        }
    }

    /// What the contract says the call returns, and on success the name
    /// as printed.
    fn expected(input: &Input, size: usize) -> Result<Vec<u8>, Errno> {
        if size < HELLO_ARGS_SIZE_VER0 {
            return Err(Errno::EINVAL);
        }
        if input.uargs != Pointer::Valid && input.uargs != Pointer::PageEdge {
            return Err(Errno::EFAULT);
        }
        if size > HELLO_ARGS_SIZE_VER0 {
            // The extension must be readable and zero.
            let readable = match (input.uargs, input.size) {
                (Pointer::PageEdge, _) => size <= ROOM,
                (_, Size::Extended { .. }) => true,
                _ => false,
            };
            if !readable {
                return Err(Errno::EFAULT);
            }
            if let Size::Extended {
                nonzero_at: Some(at),
                ..
            } = input.size
            {
                if (at as usize) < size - HELLO_ARGS_SIZE_VER0 {
                    return Err(Errno::E2BIG);
                }
            }
        }
        let flags = Self::flags(input);
        if flags & !HELLO_FLAG_LOUD != 0 {
            return Err(Errno::EINVAL);
        }
        if Self::pad(input) != 0 {
            return Err(Errno::EINVAL);
        }
        let bytes = input.name.bytes();
        let terminated: Vec<u8> = bytes.iter().copied().take_while(|&b| b != 0).collect();
        match input.name_ptr {
            Pointer::Valid => {}
            Pointer::PageEdge => {
                // No NUL: the copy runs into the guard unless it fills the
                // buffer first.
                let readable = bytes.len().min(ROOM);
                if terminated.len() == bytes.len() && readable < HELLO_NAME_MAX {
                    return Err(Errno::EFAULT);
                }
            }
            _ => return Err(Errno::EFAULT),
        }
        let mut name = terminated;
        name.truncate(HELLO_NAME_MAX - 1);
        Ok(name)
    }

    fn flags(input: &Input) -> u32 {
        match input.flags {
            Flags::None => 0,
            Flags::Loud => HELLO_FLAG_LOUD,
            Flags::Bits(b) => b,
        }
    }

    fn pad(input: &Input) -> u32 {
        match input.pad {
            Pad::Zero => 0,
            Pad::Value(v) => v,
        }
    }

    /// Writes the input into the arena and returns `(uargs, size)`.
    fn lay_out(&mut self, kernel: &Kernel, input: &Input) -> (usize, usize) {
        let size = Self::size(input);
        // The name: at the start of area 1 with its NUL, or ending at the
        // guard page without one.
        let bytes = input.name.bytes();
        let bytes = &bytes[..bytes.len().min(ROOM - 1)];
        let names = self.arena.area(1);
        let name_at = if input.name_ptr == Pointer::PageEdge {
            let at = ROOM - bytes.len();
            names[at..].copy_from_slice(bytes);
            at
        } else {
            names[..bytes.len()].copy_from_slice(bytes);
            names[bytes.len()] = 0;
            0
        };
        let name_valid = names.as_ptr() as usize + name_at;
        let name_ptr = self.pointer(kernel, input.name_ptr, name_valid);
        let args = HelloArgs {
            flags: Self::flags(input),
            pad: Self::pad(input),
            name: name_ptr as u64,
        };
        // The struct: at the start of area 0, or ending at its guard page.
        let room = self.arena.area(0);
        let span = size.clamp(HELLO_ARGS_SIZE_VER0, ROOM);
        let at = if input.uargs == Pointer::PageEdge {
            ROOM - span
        } else {
            0
        };
        room[at..at + span].fill(0);
        let raw = args.to_bytes();
        room[at..at + raw.len()].copy_from_slice(&raw);
        if let Size::Extended {
            nonzero_at: Some(n),
            ..
        } = input.size
        {
            let i = HELLO_ARGS_SIZE_VER0 + n as usize;
            if i < span {
                room[at + i] = 0x5a;
            }
        }
        let valid = room.as_ptr() as usize + at;
        (self.pointer(kernel, input.uargs, valid), size)
    }

    /// The records one call must log: the greeting, and the loud one.
    fn greetings(name: &[u8], loud: bool) -> Vec<String> {
        let name = String::from_utf8_lossy(name);
        let mut out = vec![format!("Hello, {name}!")];
        if loud {
            out.push(format!("HELLO, {name}!!!"));
        }
        out
    }
}

/// Replays one input (the bytes of a saved finding) on `kernel` with
/// every check of the fuzzer: `Err` names what is wrong.
pub fn replay(kernel: &Kernel, bytes: &[u8]) -> Result<(), String> {
    let mut target = Hello::new();
    super::exec_one(&mut target, kernel, bytes).1
}

impl super::Target for Hello {
    type Input = Input;

    fn exec(&mut self, input: &Input, kernel: &Kernel) -> Result<(), String> {
        // A thread's first call makes its kernel task, whose stack the
        // host may map right into the hole `Unmapped` names: make it now.
        kernel
            .getpid()
            .map_err(|e| format!("getpid() failed: {e}"))?;
        let (uargs, size) = self.lay_out(kernel, input);
        // SAFETY: hello(2) reads the arena (ours, written by no other
        // thread during the call) and the other addresses are invalid on
        // purpose: the kernel's fault-safe copies refuse them.
        let got = unsafe { kernel.hello_raw(uargs, size) };
        let uses_hole = input.uargs == Pointer::Unmapped || input.name_ptr == Pointer::Unmapped;
        if uses_hole && is_mapped(self.arena.unmapped) {
            // Something was mapped there meanwhile: no verdict.
            return Ok(());
        }
        let want = Self::expected(input, size).map(|_| ());
        match (got, want) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(e), Err(w)) if e == w => Ok(()),
            (Err(e), _) if ![Errno::EINVAL, Errno::E2BIG, Errno::EFAULT].contains(&e) => Err(
                format!("hello() returned {e}, which its contract does not have (size {size})"),
            ),
            (got, want) => Err(format!(
                "hello() returned {got:?}, its contract says {want:?} (size {size})"
            )),
        }
    }

    fn check_log(&mut self, input: &Input, records: &[Record]) -> Result<(), String> {
        let size = Self::size(input);
        let want = match Self::expected(input, size) {
            Ok(name) => Self::greetings(&name, Self::flags(input) & HELLO_FLAG_LOUD != 0),
            Err(_) => Vec::new(),
        };
        let mine: Vec<&str> = records
            .iter()
            .filter(|r| matches!(r.caller, Some(Caller::Task(_))))
            .filter(|r| r.text.starts_with("Hello, ") || r.text.starts_with("HELLO, "))
            .map(|r| r.text.as_str())
            .collect();
        if mine != want {
            return Err(format!(
                "hello() logged {mine:?}, its contract says {want:?}"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(size: Size, name_ptr: Pointer, name: Name) -> Input {
        Input {
            flags: Flags::None,
            pad: Pad::Zero,
            size,
            uargs: Pointer::Valid,
            name_ptr,
            name,
        }
    }

    #[test]
    fn the_contract_model_orders_the_checks_as_hello_c() {
        let ok = input(Size::Ver0, Pointer::Valid, Name::Bytes(b"w".to_vec()));
        assert_eq!(Hello::expected(&ok, 16), Ok(b"w".to_vec()));
        let small = input(Size::BelowVer0(3), Pointer::Null, Name::Bytes(vec![]));
        assert_eq!(Hello::expected(&small, 3), Err(Errno::EINVAL));
        let tail = input(
            Size::Extended {
                extra: 7,
                nonzero_at: Some(2),
            },
            Pointer::Valid,
            Name::Bytes(vec![]),
        );
        assert_eq!(
            Hello::expected(&tail, Hello::size(&tail)),
            Err(Errno::E2BIG)
        );
        let edge = input(
            Size::Ver0,
            Pointer::PageEdge,
            Name::Run {
                byte: b'a',
                len: 63,
            },
        );
        assert_eq!(Hello::expected(&edge, 16), Err(Errno::EFAULT));
        let edge = input(
            Size::Ver0,
            Pointer::PageEdge,
            Name::Run {
                byte: b'a',
                len: 64,
            },
        );
        assert_eq!(Hello::expected(&edge, 16), Ok(vec![b'a'; 63]));
        let huge = input(Size::Huge(0), Pointer::Valid, Name::Bytes(vec![]));
        assert_eq!(
            Hello::expected(&huge, Hello::size(&huge)),
            Err(Errno::EFAULT)
        );
    }
}
