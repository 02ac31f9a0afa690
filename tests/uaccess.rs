//! Fault-safe user memory: every bad pointer handed to the kernel gives
//! EFAULT and the process lives on. The kernel copies user memory through
//! host ops that use process_vm_readv/writev, and refuses ranges that
//! overlap its own memory (its page arena and its image).

mod common;

use std::cell::RefCell;
use std::ffi::CString;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use common::{
    arena, boot, boot_locating_image, greetings, logged, mount_proc, page_size, texts, MapLine,
    Pages,
};
use lkl_harness::calls::Fd;
use lkl_harness::hello::{HelloArgs, HELLO_ARGS_SIZE_VER0, HELLO_FLAG_LOUD};
use lkl_harness::{sys, Errno, Kernel};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

const VER0: usize = HELLO_ARGS_SIZE_VER0;

/// A booted kernel, where its memory is, and pages of ours in every state
/// a bad pointer can point at.
struct Target {
    kernel: Kernel,
    /// The library copy's mappings (`lkl-*.so` in /proc/self/maps).
    image: Vec<MapLine>,
    /// The page arena: (start, length).
    arena: (usize, usize),
    /// The library copy's executable mapping (kernel text).
    text: (usize, usize),
    /// The library copy's writable file mapping (kernel data).
    data: (usize, usize),
    /// Page 0 read-write, 1 unmapped, 2 PROT_NONE, 3 read-only.
    pages: Pages,
}

/// The last page of x86-64 user space (`TASK_SIZE` is 2^47 - 4 KiB): never
/// mapped and never mappable, so no other test thread's `mmap` or `dlopen`
/// can put memory there while the kernel writes to it, as it could at a
/// page this test unmapped itself.
const UNMAPPABLE: usize = 0x7fff_ffff_f000;
const PROT_NONE: usize = 2;
const READ_ONLY: usize = 3;

/// A bad address: (what, address, whether the 8 KiB after it are bad too,
/// so that any struct size still reads nothing but bad memory).
type BadAddress = (&'static str, usize, bool);

impl Target {
    fn new() -> Target {
        let (kernel, image) = boot_locating_image();
        let arena = arena(&kernel);
        let find = |perms: &str| {
            let m = image
                .iter()
                .find(|m| m.perms == perms)
                .unwrap_or_else(|| panic!("no {perms} mapping of the kernel library: {image:?}"));
            (m.start, m.end - m.start)
        };
        let text = find("r-xp");
        let data = find("rw-p");
        let pages = Pages::new(4);
        pages.protect(PROT_NONE, libc::PROT_NONE);
        pages.protect(READ_ONLY, libc::PROT_READ);
        let t = Target {
            kernel,
            image,
            arena,
            text,
            data,
            pages,
        };
        // The kernel's own memory is readable to the host: an EFAULT there
        // is the kernel refusing it, not the host failing to read it.
        let own = [
            t.arena.0,
            t.arena.0 + t.arena.1 - 8,
            t.text.0 + t.text.1 / 2,
            t.data.0 + t.data.1 / 2,
        ];
        for addr in own {
            let mut probe = [0u8; 8];
            // SAFETY: the kernel's memory, only read; a racing write there
            // would change the bytes, not the count checked.
            let missed =
                unsafe { lkl_sim::uaccess::copy_from_user_slice(&mut probe, addr as *const u8) };
            assert_eq!(missed, 0, "the host reads {addr:#x}");
        }
        t
    }

    /// Addresses no read may succeed at.
    fn bad_addresses(&self) -> Vec<BadAddress> {
        let middle = |(start, len): (usize, usize)| (start + len / 2) & !7;
        vec![
            ("NULL", 0, true),
            ("address 1", 1, true),
            ("address 0xfff", 0xfff, true),
            // The page after it is not canonical: nothing past it.
            ("an unmapped page", UNMAPPABLE, false),
            ("a PROT_NONE page", self.pages.page(PROT_NONE), true),
            ("the arena's start", self.arena.0, true),
            ("the arena's middle", middle(self.arena), true),
            // 16 bytes from here straddle the arena's end.
            (
                "the arena's last 8 bytes",
                self.arena.0 + self.arena.1 - 8,
                false,
            ),
            ("the kernel's text", middle(self.text), true),
            ("the kernel's data", middle(self.data), true),
            ("a kernel-half address", 0xffff_8000_0000_0000, true),
            // 16 bytes from here wrap around; what follows wraps to page 0.
            (
                "the last 8 bytes of the address space",
                usize::MAX - 7,
                true,
            ),
        ]
    }

    /// Addresses no write may succeed at.
    fn bad_destinations(&self) -> Vec<(&'static str, usize)> {
        let mut bad: Vec<(&'static str, usize)> = self
            .bad_addresses()
            .into_iter()
            .filter(|&(_, _, whole)| whole)
            .map(|(what, addr, _)| (what, addr))
            .collect();
        bad.push(("a read-only page", self.pages.page(READ_ONLY)));
        bad
    }

    /// The process is alive, the kernel too: a valid call succeeds and
    /// logs exactly its greeting.
    fn assert_alive(&self, after: &str) {
        let name = c"still here";
        let (result, records) = logged(&self.kernel, || {
            self.kernel.hello(&HelloArgs::new(name, HELLO_FLAG_LOUD))
        });
        assert_eq!(result, Ok(()), "a valid call after {after}");
        assert_eq!(
            texts(&records),
            ["Hello, still here!", "HELLO, still here!!!"],
            "after {after}"
        );
    }

    /// hello(uargs, size) fails with EFAULT, logs nothing, and the kernel
    /// lives on.
    fn assert_hello_efault(&self, what: &str, uargs: usize, size: usize) {
        // SAFETY: hello(2) only reads, and the addresses tested hold no
        // Rust object another thread writes (they are bad by design).
        let call = || unsafe { self.kernel.hello_raw(uargs, size) };
        let (result, records) = logged(&self.kernel, call);
        assert_eq!(result, Err(Errno::EFAULT), "{what}");
        assert!(records.is_empty(), "{what}: logged {records:?}");
        self.assert_alive(what);
    }
}

impl Target {
    /// A system call fails with EFAULT, logs nothing, and the kernel
    /// lives on.
    ///
    /// # Safety
    ///
    /// As for [`Kernel::syscall`]: no pointer in `args` points at a Rust
    /// object (the bad addresses of [`Target::bad_destinations`] do not).
    unsafe fn assert_syscall_efault(&self, what: &str, nr: u32, args: &[i64]) {
        // SAFETY: forwarded to our caller.
        let call = || unsafe { self.kernel.syscall(nr, args) };
        let (result, records) = logged(&self.kernel, call);
        assert_eq!(result, Err(Errno::EFAULT), "{what}");
        assert!(records.is_empty(), "{what}: logged {records:?}");
        self.assert_alive(what);
    }

    /// Ends the test: no kernel warning was logged, and the kernel halts.
    fn finish(self) {
        common::finish(self.kernel);
    }
}

#[test]
fn bad_uargs_pointers_are_efault() {
    let t = Target::new();
    for (what, addr, whole) in t.bad_addresses() {
        let sizes: &[usize] = if whole { &[VER0, 24, 4096] } else { &[VER0] };
        for &size in sizes {
            t.assert_hello_efault(
                &format!("uargs = {what} ({addr:#x}), size {size}"),
                addr,
                size,
            );
        }
    }
    t.finish();
}

#[test]
fn bad_name_pointers_are_efault() {
    let t = Target::new();
    for (what, addr, _) in t.bad_addresses() {
        for flags in [0, HELLO_FLAG_LOUD] {
            let args = HelloArgs::raw(flags, 0, addr);
            t.assert_hello_efault(
                &format!("name = {what} ({addr:#x}), flags {flags}"),
                &args as *const HelloArgs as usize,
                VER0,
            );
        }
    }
    t.finish();
}

/// The library's mappings before the kernel's `_text`: its first segment
/// (ELF header, dynamic symbols, relocations) and the PLT that starts its
/// executable segment are part of the loaded kernel image too.
#[test]
fn pointers_into_the_kernel_library_headers_are_efault() {
    let t = Target::new();
    let first = t.image.iter().map(|m| m.start).min().expect("a mapping");
    let mut rows = vec![
        ("the library's ELF header", first),
        ("the library's second page", first + page_size()),
    ];
    if let Some(exec) = t.image.iter().find(|m| m.perms == "r-xp") {
        rows.push(("the library's PLT", exec.start));
    }
    for (what, addr) in rows {
        let args = HelloArgs::raw(0, 0, addr);
        let (result, records) = logged(&t.kernel, || t.kernel.hello(&args));
        assert_eq!(
            (result, texts(&records)),
            (Err(Errno::EFAULT), vec![]),
            "name = {what} ({addr:#x})"
        );
        // SAFETY: hello(2) only reads; nobody writes the library's pages.
        let call = || unsafe { t.kernel.hello_raw(addr, VER0) };
        let (result, records) = logged(&t.kernel, call);
        assert_eq!(
            (result, texts(&records)),
            (Err(Errno::EFAULT), vec![]),
            "uargs = {what} ({addr:#x})"
        );
    }
    t.finish();
}

/// Pages: 0 read-write, 1 PROT_NONE.
fn edge_pages() -> Pages {
    let pages = Pages::new(2);
    pages.protect(1, libc::PROT_NONE);
    pages
}

#[test]
fn name_running_into_prot_none_without_nul_is_efault() {
    let t = Target::new();
    let edge = edge_pages();
    for before in [1, 3, 7, 8, 9, 62, 63] {
        let name = edge.page(1) - before;
        edge.fill(name, before, b'x');
        let args = HelloArgs::raw(0, 0, name);
        t.assert_hello_efault(
            &format!("a name {before} bytes before PROT_NONE, no NUL"),
            &args as *const HelloArgs as usize,
            VER0,
        );
    }
    t.finish();
}

#[test]
fn name_before_prot_none_is_read_up_to_its_nul_or_64_bytes() {
    let t = Target::new();
    let edge = edge_pages();
    // (bytes before PROT_NONE, position of a NUL, what is printed)
    let rows: [(usize, Option<usize>, &[u8]); 4] = [
        (64, None, &[b'x'; 63]),
        (200, None, &[b'x'; 63]),
        (10, Some(5), b"xxxxx"),
        (1, Some(0), b""),
    ];
    for (before, nul, printed) in rows {
        let name = edge.page(1) - before;
        edge.fill(name, before, b'x');
        if let Some(at) = nul {
            edge.fill(name + at, 1, 0);
        }
        let args = HelloArgs::raw(0, 0, name);
        let (result, records) = logged(&t.kernel, || t.kernel.hello(&args));
        assert_eq!(result, Ok(()), "{before} bytes before PROT_NONE");
        assert_eq!(texts(&records), greetings(printed, false));
    }
    t.finish();
}

#[test]
fn struct_running_into_prot_none_is_efault() {
    let t = Target::new();
    let edge = edge_pages();
    let name = c"edge";
    let args = HelloArgs::new(name, 0).to_bytes();
    // (bytes of the page before PROT_NONE the struct starts at, size)
    // Without an MMU access_ok() passes any size: the tail is read word
    // by word up to the fault.
    for (room, size) in [
        (16, 4096),
        (16, 17),
        (24, 32),
        (24, 4096),
        (8, 16),
        (15, 16),
        (16, 1 << 40),
        (16, usize::MAX),
    ] {
        edge.fill(edge.page(0), page_size(), 0);
        let at = edge.page(1) - room;
        edge.write(at, &args[..room.min(VER0)]);
        t.assert_hello_efault(
            &format!("a struct {room} bytes before PROT_NONE, size {size}"),
            at,
            size,
        );
    }
    // The same layouts within the readable bytes succeed, and a non-zero
    // byte met before the fault is E2BIG: the tail is read in order.
    for (room, size, nonzero_at, want) in [
        (16, 16, None, Ok(())),
        (24, 24, None, Ok(())),
        (24, 4096, Some(20), Err(Errno::E2BIG)),
    ] {
        edge.fill(edge.page(0), page_size(), 0);
        let at = edge.page(1) - room;
        edge.write(at, &args);
        if let Some(offset) = nonzero_at {
            edge.fill(at + offset, 1, 1);
        }
        // SAFETY: hello(2) only reads the edge page, which is ours and
        // not written during the call; past it is PROT_NONE.
        let call = || unsafe { t.kernel.hello_raw(at, size) };
        let (result, records) = logged(&t.kernel, call);
        assert_eq!(result, want, "room {room}, size {size}");
        let logged_want = if want.is_ok() {
            vec!["Hello, edge!".to_string()]
        } else {
            vec![]
        };
        assert_eq!(texts(&records), logged_want);
    }
    t.finish();
}

#[test]
fn uname_into_bad_memory_is_efault() {
    let t = Target::new();
    for (what, addr) in t.bad_destinations() {
        let what = format!("uname({what})");
        // SAFETY: a bad destination holds no Rust object.
        unsafe { t.assert_syscall_efault(&what, sys::__NR_uname, &[addr as i64]) };
    }
    let uts = t.kernel.uname().expect("uname into good memory");
    assert_eq!(common::from_c_chars(&uts.sysname), "Linux");
    t.finish();
}

#[test]
fn clock_gettime_into_bad_memory_is_efault() {
    let t = Target::new();
    let clock = libc::CLOCK_MONOTONIC;
    for (what, addr) in t.bad_destinations() {
        let what = format!("clock_gettime({what})");
        let args = [i64::from(clock), addr as i64];
        // SAFETY: a bad destination holds no Rust object.
        unsafe { t.assert_syscall_efault(&what, sys::__NR_clock_gettime, &args) };
    }
    t.kernel
        .clock_gettime(clock)
        .expect("clock_gettime into good memory");
    t.finish();
}

/// read() of `fd` into each bad destination is EFAULT and consumes
/// nothing: a read into good memory then gets `want` from the start.
fn assert_reads_efault_then_data(t: &Target, what: &str, fd: Fd, want: &[u8]) {
    for (dest, addr) in t.bad_destinations() {
        let what = format!("read({what}) into {dest}");
        let args = [i64::from(fd), addr as i64, 64];
        // SAFETY: a bad destination holds no Rust object.
        unsafe { t.assert_syscall_efault(&what, sys::__NR_read, &args) };
    }
    let mut buf = vec![0u8; 4096];
    let n = t.kernel.read(fd, &mut buf).expect("read");
    assert!(
        buf[..n].starts_with(want),
        "{what}: {:?}",
        String::from_utf8_lossy(&buf[..n])
    );
}

#[test]
fn read_into_bad_memory_is_efault() {
    let t = Target::new();
    let content = b"written in the kernel's rootfs\n";
    let fd = t
        .kernel
        .open(c"/uaccess-file", sys::O_RDWR | sys::O_CREAT, 0o644)
        .expect("open");
    assert_eq!(t.kernel.write(fd, content), Ok(content.len()));
    assert_eq!(t.kernel.lseek(fd, 0, libc::SEEK_SET), Ok(0));
    assert_reads_efault_then_data(&t, "a rootfs file", fd, content);
    t.kernel.close(fd).expect("close");

    mount_proc(&t.kernel);
    let fd = t
        .kernel
        .open(c"/proc/version", sys::O_RDONLY, 0)
        .expect("open");
    assert_reads_efault_then_data(&t, "/proc/version", fd, b"Linux version 6.12");
    t.kernel.close(fd).expect("close");
    t.finish();
}

// ---------------------------------------------------------------------
// Random calls against an oracle.
// ---------------------------------------------------------------------

/// Random cases the property test makes.
const RANDOM_CASES: u32 = 100_000;
/// The buffer the struct sits at the start of (for `Uargs::Buffer`);
/// sizes stay within it.
const MAX_SIZE: usize = 8192;
const BUFFER_LEN: usize = MAX_SIZE + 64;
/// The kernel reads at most this many bytes of a name.
const NAME_READ_MAX: usize = 64;

/// A pointer that no read may succeed at.
#[derive(Clone, Copy, Debug)]
enum BadPtr {
    Null,
    One,
    Fff,
    Unmapped,
    ProtNone,
    /// This far into the arena (8 KiB + 64 bytes from its end at most).
    Arena(usize),
    /// This far into the kernel's text.
    Text(usize),
    /// This far into the kernel's data.
    Data(usize),
}

#[derive(Clone, Debug)]
enum Uargs {
    /// At the start of a zeroed buffer of `BUFFER_LEN` bytes.
    Buffer,
    /// This many bytes before a PROT_NONE page (the struct is cut there).
    BeforeProtNone(usize),
    Bad(BadPtr),
}

#[derive(Clone, Debug)]
enum Name {
    /// These bytes, NUL-terminated.
    Str(Vec<u8>),
    /// These bytes, ending right at a PROT_NONE page (NULs as they are).
    BeforeProtNone(Vec<u8>),
    Bad(BadPtr),
}

#[derive(Clone, Debug)]
struct Case {
    uargs: Uargs,
    size: usize,
    flags: u32,
    pad: u32,
    name: Name,
    /// Non-zero bytes put after the struct: (offset from uargs, byte).
    tail: Vec<(usize, u8)>,
}

/// The contract, from the inputs alone: the greetings, or the errno.
fn oracle(case: &Case) -> Result<Vec<String>, Errno> {
    if case.size < VER0 {
        return Err(Errno::EINVAL);
    }
    // copy_struct_from_user(): the tail past the struct is checked first,
    // in address order; then the struct is copied.
    let readable = match case.uargs {
        Uargs::Buffer => BUFFER_LEN,
        Uargs::BeforeProtNone(room) => room,
        Uargs::Bad(_) => 0,
    };
    if case.size > VER0 {
        let checked = VER0..case.size.min(readable);
        if case.tail.iter().any(|(at, _)| checked.contains(at)) {
            return Err(Errno::E2BIG);
        }
        if case.size > readable {
            return Err(Errno::EFAULT);
        }
    }
    if readable < VER0 {
        return Err(Errno::EFAULT);
    }
    if case.flags & !HELLO_FLAG_LOUD != 0 || case.pad != 0 {
        return Err(Errno::EINVAL);
    }
    let name: &[u8] = match &case.name {
        Name::Str(bytes) => bytes,
        Name::BeforeProtNone(bytes) => {
            let seen = &bytes[..bytes.len().min(NAME_READ_MAX)];
            match seen.iter().position(|&b| b == 0) {
                Some(nul) => &seen[..nul],
                None if seen.len() == NAME_READ_MAX => seen,
                None => return Err(Errno::EFAULT),
            }
        }
        Name::Bad(_) => return Err(Errno::EFAULT),
    };
    Ok(greetings(name, case.flags & HELLO_FLAG_LOUD != 0))
}

/// Where the random calls put things.
struct World<'a> {
    target: &'a Target,
    buffer: RefCell<Vec<u8>>,
    args_edge: Pages,
    name_edge: Pages,
}

impl World<'_> {
    fn bad(&self, ptr: BadPtr) -> usize {
        let t = self.target;
        match ptr {
            BadPtr::Null => 0,
            BadPtr::One => 1,
            BadPtr::Fff => 0xfff,
            BadPtr::Unmapped => UNMAPPABLE,
            BadPtr::ProtNone => t.pages.page(PROT_NONE),
            BadPtr::Arena(offset) => t.arena.0 + offset,
            BadPtr::Text(offset) => t.text.0 + offset,
            BadPtr::Data(offset) => t.data.0 + offset,
        }
    }

    /// Lays the case out in memory and makes the call.
    fn call(&self, case: &Case) -> Result<(), Errno> {
        let kernel = &self.target.kernel;
        // The name first: the struct holds its address.
        let mut name_string = None;
        let name = match &case.name {
            Name::Str(bytes) => {
                let s = CString::new(bytes.clone()).expect("no NUL in Str names");
                let addr = s.as_ptr() as usize;
                name_string = Some(s);
                addr
            }
            Name::BeforeProtNone(bytes) => {
                let at = self.name_edge.page(1) - bytes.len();
                self.name_edge.write(at, bytes);
                at
            }
            Name::Bad(ptr) => self.bad(*ptr),
        };
        let args = HelloArgs::raw(case.flags, case.pad, name).to_bytes();
        let result = match case.uargs {
            Uargs::Buffer => {
                let mut buffer = self.buffer.borrow_mut();
                buffer[..VER0].copy_from_slice(&args);
                for &(at, byte) in &case.tail {
                    buffer[at] = byte;
                }
                // SAFETY: hello(2) only reads; the buffer (as long as any
                // case's size) is borrowed mutably, so nothing else writes it.
                let result = unsafe { kernel.hello_raw(buffer.as_ptr() as usize, case.size) };
                // Zero again what this case wrote (cheaper than it all).
                buffer[..VER0].fill(0);
                for &(at, _) in &case.tail {
                    buffer[at] = 0;
                }
                result
            }
            Uargs::BeforeProtNone(room) => {
                let edge = &self.args_edge;
                let at = edge.page(1) - room;
                edge.fill(at, room, 0);
                edge.write(at, &args[..room.min(VER0)]);
                for &(offset, byte) in case.tail.iter().filter(|(o, _)| *o < room) {
                    edge.fill(at + offset, 1, byte);
                }
                // SAFETY: hello(2) only reads the edge page (ours, not
                // written during the call) and faults on the next.
                unsafe { kernel.hello_raw(at, case.size) }
            }
            // SAFETY: a bad address holds no Rust object; only read.
            Uargs::Bad(ptr) => unsafe { kernel.hello_raw(self.bad(ptr), case.size) },
        };
        drop(name_string);
        result
    }
}

fn bad_ptr(t: &Target) -> impl Strategy<Value = BadPtr> {
    // 8-byte aligned offsets that leave the largest struct size inside
    // the region. The library's mappings start with a page of linker
    // stubs (the PLT) before the kernel's _text: skip it.
    let words = |from: usize, len: usize| from / 8..(len - BUFFER_LEN) / 8;
    prop_oneof![
        Just(BadPtr::Null),
        Just(BadPtr::One),
        Just(BadPtr::Fff),
        Just(BadPtr::Unmapped),
        Just(BadPtr::ProtNone),
        words(0, t.arena.1).prop_map(|o| BadPtr::Arena(o * 8)),
        words(page_size(), t.text.1).prop_map(|o| BadPtr::Text(o * 8)),
        words(page_size(), t.data.1).prop_map(|o| BadPtr::Data(o * 8)),
    ]
}

/// `len` bytes in 1..=0x7f (no NUL), from `seed` (xorshift64*).
fn ascii(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 57) as u8 % 0x7f + 1
        })
        .collect()
}

fn case_strategy(t: &Target) -> impl Strategy<Value = Case> {
    let uargs = prop_oneof![
        6 => Just(Uargs::Buffer),
        2 => prop_oneof![1usize..=40, Just(64usize), Just(4096usize)]
            .prop_map(Uargs::BeforeProtNone),
        2 => bad_ptr(t).prop_map(Uargs::Bad),
    ];
    // Each 8 bytes of tail is one host copy (check_zeroed_user() reads a
    // word at a time): large sizes are rarer, to keep the run short.
    let size = prop_oneof![
        8 => Just(VER0),
        2 => 0..VER0,
        6 => VER0 + 1..=64,
        2 => 65..=512usize,
        1 => prop_oneof![Just(4096usize), Just(MAX_SIZE), VER0..=MAX_SIZE],
    ];
    let flags = prop_oneof![
        4 => Just(0u32),
        3 => Just(HELLO_FLAG_LOUD),
        1 => (1u32..32).prop_map(|bit| 1 << bit),
        1 => any::<u32>(),
    ];
    let pad = prop_oneof![6 => Just(0u32), 1 => any::<u32>()];
    // Names are drawn as (length, seed) and expanded: far cheaper than a
    // strategy per byte, and they still shrink by length.
    let name = prop_oneof![
        6 => (0usize..=100, any::<u64>()).prop_map(|(len, seed)| Name::Str(ascii(len, seed))),
        2 => (1usize..=80, any::<u64>(), prop::option::weighted(0.3, 0usize..80)).prop_map(
            |(len, seed, nul)| {
                let mut bytes = ascii(len, seed);
                if let Some(at) = nul.filter(|&at| at < len) {
                    bytes[at] = 0;
                }
                Name::BeforeProtNone(bytes)
            }
        ),
        2 => bad_ptr(t).prop_map(Name::Bad),
    ];
    let tail = prop_oneof![
        3 => Just(Vec::new()),
        1 => prop::collection::vec((VER0..BUFFER_LEN, 1u8..=255), 1..=3),
        1 => prop::collection::vec((VER0..=64usize, 1u8..=255), 1..=2),
    ];
    (uargs, size, flags, pad, name, tail).prop_map(|(uargs, size, flags, pad, name, tail)| Case {
        uargs,
        size,
        flags,
        pad,
        name,
        tail,
    })
}

#[test]
fn random_hello_calls_match_the_contract_oracle() {
    let t = Target::new();
    let world = World {
        target: &t,
        buffer: RefCell::new(vec![0u8; BUFFER_LEN]),
        args_edge: edge_pages(),
        name_edge: edge_pages(),
    };
    // A fixed seed: the same cases every run (override to explore).
    let seed: u64 = std::env::var("LKL_UACCESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6c6b_6c2d_6865_6c6c);
    let mut seed_bytes = [0u8; 16];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases: RANDOM_CASES,
        failure_persistence: None,
        max_shrink_iters: 4096,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::XorShift, &seed_bytes),
    );

    t.kernel.take_log();
    let expected_log: RefCell<Vec<String>> = RefCell::new(Vec::new());
    let calls = RefCell::new((0u64, 0u64)); // (calls, successes)
    let outcome = runner.run(&case_strategy(&t), |case| {
        let want = oracle(&case);
        let got = world.call(&case);
        let mut counts = calls.borrow_mut();
        counts.0 += 1;
        if got.is_ok() {
            counts.1 += 1;
        }
        if let Ok(lines) = &want {
            if got.is_ok() {
                expected_log.borrow_mut().extend(lines.iter().cloned());
            }
        }
        if got != want.as_ref().map(|_| ()).map_err(|&e| e) {
            return Err(TestCaseError::fail(format!(
                "got {got:?}, the contract says {want:?}"
            )));
        }
        Ok(())
    });
    if let Err(err) = outcome {
        panic!("{err}\nseed {seed:#x}");
    }

    let (total, successes) = *calls.borrow();
    assert!(total >= u64::from(RANDOM_CASES), "{total} calls");
    // Both sides of the contract were exercised.
    assert!(
        successes > total / 10 && successes < total * 9 / 10,
        "{successes} of {total} calls succeeded"
    );
    // The log holds exactly the greetings of the successful calls.
    let log = texts(&t.kernel.take_log());
    let expected = expected_log.into_inner();
    let first_difference = log.iter().zip(&expected).position(|(a, b)| a != b);
    assert!(
        log.len() == expected.len() && first_difference.is_none(),
        "log of {} records, {} expected; first difference at {first_difference:?}: {:?} vs {:?}",
        log.len(),
        expected.len(),
        first_difference.map(|i| &log[i]),
        first_difference.map(|i| &expected[i]),
    );
    t.assert_alive("the random calls");
    drop(world);
    t.finish();
}

// ---------------------------------------------------------------------
// Rust's stack overflow guard, with a kernel booted.
// ---------------------------------------------------------------------

const CHILD: &str = "LKL_CHILD";
const STACK_OVERFLOW_TEST: &str = "stack_overflow_is_reported_by_rusts_guard_with_a_kernel_booted";

/// Recurses until the stack runs out (each frame holds a page).
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let mut frame = [0u8; 4096];
    frame[(depth % 4096) as usize] = depth as u8;
    std::hint::black_box(&mut frame);
    if depth == u64::MAX {
        return 0;
    }
    recurse(depth + 1) + u64::from(frame[0])
}

#[test]
fn stack_overflow_is_reported_by_rusts_guard_with_a_kernel_booted() {
    if std::env::var(CHILD).as_deref() == Ok("stack_overflow") {
        // The child: boot, use the kernel, then overflow the stack.
        let kernel = boot();
        assert_eq!(kernel.getpid(), Ok(1));
        eprintln!("child: kernel booted, recursing");
        let depth = recurse(0);
        panic!("the recursion returned ({depth}) instead of overflowing");
    }
    let exe = std::env::current_exe().expect("the test binary");
    let out = Command::new(exe)
        .args([
            "--exact",
            STACK_OVERFLOW_TEST,
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "stack_overflow")
        .output()
        .expect("the child runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = format!(
        "status {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("running 1 test"),
        "the child ran the test: {report}"
    );
    assert!(
        stderr.contains("child: kernel booted, recursing"),
        "the child booted: {report}"
    );
    assert!(
        stderr.contains("has overflowed its stack"),
        "Rust's guard reported the overflow: {report}"
    );
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{report}");
}
