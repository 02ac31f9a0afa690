//! Helpers shared by the integration tests.

#![allow(dead_code)]

use lkl_harness::calls::DirEntry;
use lkl_harness::{BootOptions, Kernel};

/// Boots a private kernel with default options; a kernel that cannot be
/// built or booted fails the test with the reason and the log.
pub fn boot() -> Kernel {
    boot_with(BootOptions::default())
}

/// Boots two private kernels, told apart on their command lines by
/// `lkl_instance=a` and `lkl_instance=b`.
pub fn boot_two_instances() -> (Kernel, Kernel) {
    let with = |name: &str| {
        boot_with(BootOptions {
            cmdline: format!("lkl_instance={name}"),
            ..BootOptions::default()
        })
    };
    (with("a"), with("b"))
}

/// Boots a private kernel with `options`.
pub fn boot_with(options: BootOptions) -> Kernel {
    match Kernel::boot(options) {
        Ok(kernel) => kernel,
        Err(err) => panic!("the kernel did not boot: {err}"),
    }
}

/// The text of a fixed-size C char array.
pub fn from_c_chars(chars: &[std::ffi::c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

// ---------------------------------------------------------------------
// Helpers for the hello() and uaccess tests.
// ---------------------------------------------------------------------

use lkl_harness::Record;

/// `KERN_INFO`.
pub const KERN_INFO: u8 = 6;

/// Longest name the kernel prints, in bytes (its `HELLO_NAME_MAX` less the
/// NUL). Kernel-internal, so not in the UAPI headers: this is the contract.
pub const HELLO_NAME_PRINTED_MAX: usize = 63;

/// The greetings hello() logs for `name` (already as the kernel read it)
/// with or without `HELLO_FLAG_LOUD`: the test-side oracle, independent of
/// the harness.
pub fn greetings(name: &[u8], loud: bool) -> Vec<String> {
    let name = &name[..name.len().min(HELLO_NAME_PRINTED_MAX)];
    let name = String::from_utf8_lossy(name);
    let mut lines = vec![format!("Hello, {name}!")];
    if loud {
        lines.push(format!("HELLO, {name}!!!"));
    }
    lines
}

/// The texts of `records`.
pub fn texts(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| r.text.clone()).collect()
}

/// Runs `f` and returns its result with the records it logged: the log is
/// drained before and after.
pub fn logged<R>(kernel: &Kernel, f: impl FnOnce() -> R) -> (R, Vec<Record>) {
    kernel.take_log();
    let r = f();
    (r, kernel.take_log())
}

/// The calling thread's kernel tid.
pub fn gettid(kernel: &Kernel) -> i64 {
    kernel.gettid().expect("gettid")
}

/// The host page size.
pub fn page_size() -> usize {
    lkl_sim::mem::page_size()
}

/// Anonymous, zeroed, read-write pages of our own, some of which may be
/// made inaccessible. None is unmapped before drop: a test binary's other
/// threads `mmap` and `dlopen`, and could be given a hole we made, which
/// the kernel would then write to. For an unmapped address, use one that
/// cannot be mapped (the top page of user space).
pub struct Pages {
    base: usize,
    count: usize,
}

impl Pages {
    /// Maps `count` read-write pages.
    pub fn new(count: usize) -> Pages {
        let base = lkl_sim::mem::map(count * page_size())
            .unwrap_or_else(|e| panic!("mapping {count} pages: {e}"));
        Pages {
            base: base.as_ptr() as usize,
            count,
        }
    }

    /// The address of page `i`.
    pub fn page(&self, i: usize) -> usize {
        assert!(i <= self.count);
        self.base + i * page_size()
    }

    /// Gives page `i` protection `prot`.
    pub fn protect(&self, i: usize, prot: libc::c_int) {
        assert!(i < self.count);
        // SAFETY: page `i` is ours and mapped; no reference into it lives
        // (we only ever access it through raw pointers, briefly).
        let rc = unsafe { libc::mprotect(self.page(i) as *mut libc::c_void, page_size(), prot) };
        assert_eq!(rc, 0, "mprotect");
    }

    /// Copies `bytes` to `addr`, which must lie in our read-write pages.
    pub fn write(&self, addr: usize, bytes: &[u8]) {
        assert!(addr >= self.base && addr + bytes.len() <= self.page(self.count));
        // SAFETY: the range is inside our mapping (checked above) and the
        // caller keeps those pages read-write; nothing else references
        // them.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), addr as *mut u8, bytes.len()) };
    }

    /// Sets `len` bytes at `addr` to `byte`.
    pub fn fill(&self, addr: usize, len: usize, byte: u8) {
        assert!(addr >= self.base && addr + len <= self.page(self.count));
        // SAFETY: as for write.
        unsafe { std::ptr::write_bytes(addr as *mut u8, byte, len) };
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        // SAFETY: the pages are our mapping, and no reference into them
        // outlives `self`.
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.count * page_size()) };
    }
}

/// The kernel's page arena as its boot log gives it
/// (`lkl: memory: N KiB at <hex>`): (start, length). Call it before the
/// boot log is drained.
pub fn arena(kernel: &Kernel) -> (usize, usize) {
    let log = kernel.log();
    let line = log
        .iter()
        .find_map(|r| r.text.strip_prefix("lkl: memory: "))
        .unwrap_or_else(|| panic!("no `lkl: memory:` line in\n{}", kernel.dmesg()));
    let (kib, addr) = line
        .split_once(" KiB at ")
        .unwrap_or_else(|| panic!("unexpected memory line {line:?}"));
    let kib: usize = kib.trim().parse().expect("KiB");
    let addr = usize::from_str_radix(addr.trim().trim_start_matches("0x"), 16).expect("address");
    assert!(addr != 0 && kib > 0, "{line:?}");
    (addr, kib << 10)
}

/// One line of `/proc/self/maps`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapLine {
    /// First address.
    pub start: usize,
    /// One past the last address.
    pub end: usize,
    /// `rwxp`-style permissions.
    pub perms: String,
    /// The mapped file, if any.
    pub path: String,
}

/// Our file mappings of kernel libraries: private copies (`lkl-*.so`)
/// and instances loaded in namespaces of their own (`liblkl-*.so`).
pub fn kernel_library_maps() -> Vec<MapLine> {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("/proc/self/maps");
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let range = fields.next()?;
            let perms = fields.next()?.to_string();
            let path = fields.nth(3).unwrap_or("").to_string();
            let file = path.rsplit('/').next().unwrap_or("");
            if !((file.starts_with("lkl-") || file.starts_with("liblkl")) && file.contains(".so")) {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            Some(MapLine {
                start: usize::from_str_radix(start, 16).ok()?,
                end: usize::from_str_radix(end, 16).ok()?,
                perms,
                path,
            })
        })
        .collect()
}

/// Boots a private kernel and finds its library's file mappings in
/// /proc/self/maps: those inside the range the harness refuses as kernel
/// memory, which must be mappings of one kernel library file.
pub fn boot_locating_image() -> (Kernel, Vec<MapLine>) {
    let kernel = boot();
    let (start, end) = kernel.image_range();
    let mine: Vec<MapLine> = kernel_library_maps()
        .into_iter()
        .filter(|m| m.start >= start && m.end <= end)
        .collect();
    let mut paths: Vec<&str> = mine.iter().map(|m| m.path.as_str()).collect();
    paths.dedup();
    assert_eq!(
        paths.len(),
        1,
        "the kernel's image {start:#x}-{end:#x} holds mappings of one kernel library: {mine:?}"
    );
    (kernel, mine)
}

/// Mounts proc on /proc.
pub fn mount_proc(kernel: &Kernel) {
    kernel.mkdir(c"/proc", 0o555).expect("mkdir /proc");
    kernel
        .mount(c"proc", c"/proc", c"proc", 0)
        .expect("mount proc");
}

/// The names in the kernel's directory `path`, sorted, without `.` and
/// `..`.
pub fn dir_entries(kernel: &Kernel, path: &str) -> Vec<String> {
    kernel
        .read_dir(path)
        .unwrap_or_else(|e| panic!("read directory {path}: {e}"))
        .into_iter()
        .map(|entry| entry.name)
        .collect()
}

/// The subdirectories of the kernel's directory `path`, sorted.
pub fn subdirectories(kernel: &Kernel, path: &str) -> Vec<String> {
    kernel
        .read_dir(path)
        .unwrap_or_else(|e| panic!("read directory {path}: {e}"))
        .into_iter()
        .filter(|entry| entry.kind == DirEntry::DIR)
        .map(|entry| entry.name)
        .collect()
}

/// The whole content of the kernel's file `path`, as text.
pub fn read_file(kernel: &Kernel, path: &str) -> String {
    let data = kernel
        .read_file(path)
        .unwrap_or_else(|e| panic!("read {path}: {e}"));
    String::from_utf8_lossy(&data).into_owned()
}

/// Ends a test: fails it if the kernel leaked memory (on a kernel with
/// kmemleak) or logged a warning, a BUG, an oops, a KASAN or UBSAN report,
/// a lockdep report or a hung task (before or while halting), then halts.
pub fn finish(kernel: Kernel) {
    let host = kernel.host().clone();
    if let Err(err) = kernel.finish() {
        panic!("{err}");
    }
    if let Err(err) = lkl_harness::check::check_records(&host.console().records()) {
        panic!("while halting: {err}");
    }
}
