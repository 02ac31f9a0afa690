//! The library's C entry points, from the statically linked `liblkl.a` or
//! from a private instance of `liblkl.so` (libloading, with `dlmopen`).

use std::ffi::{c_char, c_int, c_long};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use libloading::Library;
use lkl_sim::HostOps;

/// `lkl_start_kernel`.
pub type StartFn = unsafe extern "C" fn(*const HostOps, *const c_char) -> c_int;
/// `lkl_syscall`.
pub type SyscallFn = unsafe extern "C" fn(c_long, *mut c_long) -> c_long;
/// `lkl_sys_halt`, and `lkl_flush_console`.
pub type HaltFn = unsafe extern "C" fn() -> c_long;
/// `lkl_cpus_state`.
pub type StateFn = unsafe extern "C" fn(*mut c_char, std::ffi::c_ulong) -> c_long;

extern "C" {
    fn lkl_start_kernel(ops: *const HostOps, cmdline: *const c_char) -> c_int;
    fn lkl_syscall(nr: c_long, params: *mut c_long) -> c_long;
    fn lkl_flush_console() -> c_long;
    fn lkl_sys_halt() -> c_long;
    fn lkl_cpus_state(buf: *mut c_char, size: std::ffi::c_ulong) -> c_long;
}

/// One kernel's API: five entry points, and the library they live in.
pub struct Api {
    pub start: StartFn,
    pub syscall: SyscallFn,
    pub flush_console: HaltFn,
    pub halt: HaltFn,
    pub cpus_state: StateFn,
    /// `None` for the statically linked kernel. Whatever may call an
    /// entry point holds a clone; the last one unloads the library.
    pub library: Option<Arc<Loaded>>,
    /// Where the private library is mapped (start, end); (0, 0) if linked.
    pub image: (usize, usize),
    /// The file the kernel's code is in (the private instance's, or this
    /// executable), and its load bias: for symbolizing addresses.
    pub object: (PathBuf, usize),
}

/// `lkl_cpus_state` of one kernel, callable for as long as this exists:
/// it keeps a private kernel's library loaded.
#[derive(Clone)]
pub struct CpusState {
    state: StateFn,
    _library: Option<Arc<Loaded>>,
}

impl CpusState {
    /// `state`, from the library `library` holds (`None`: linked).
    pub fn new(state: StateFn, library: Option<Arc<Loaded>>) -> CpusState {
        CpusState {
            state,
            _library: library,
        }
    }

    /// The kernel's own account of its CPUs: taken without any lock, so
    /// it works while the kernel is deadlocked, and after it halted (it
    /// then has no CPU to describe).
    pub fn describe(&self) -> String {
        let mut buf = vec![0u8; 8192];
        // SAFETY: the library that holds `state` stays loaded while `self`
        // exists; `buf` is writable for its whole length, which is passed;
        // lkl_cpus_state writes at most that (NUL included) and takes
        // nothing.
        let len = unsafe { (self.state)(buf.as_mut_ptr().cast(), buf.len() as std::ffi::c_ulong) };
        buf.truncate(usize::try_from(len).unwrap_or(0).min(buf.len() - 1));
        String::from_utf8_lossy(&buf).into_owned()
    }
}

/// A private instance of the kernel library, loaded: unloaded when
/// dropped, and then its file closed (an instance in a namespace of its
/// own) or removed (a copy). The file stays open, or in place, while the
/// instance is loaded, so that call traces can name kernel functions.
pub struct Loaded {
    library: Option<Library>,
    file: LoadedFile,
}

/// The file a private instance was loaded from.
enum LoadedFile {
    /// The library itself, held open (never read through this handle): the
    /// instance was loaded from `/proc/self/fd/<fd>`, so it is this very
    /// file even if a newer build renames another into its place.
    Open(#[allow(dead_code)] std::fs::File),
    /// A copy made for this instance alone, removed after unloading.
    Copy(PathBuf),
}

impl Drop for Loaded {
    fn drop(&mut self) {
        // Unload first, then let go of the file.
        drop(self.library.take());
        if let LoadedFile::Copy(copy) = &self.file {
            let _ = std::fs::remove_file(copy);
        }
    }
}

/// Loads `source` with `dlmopen(LM_ID_NEWLM)`: a link-map namespace of its
/// own gives the instance its own globals without copying the file (which
/// takes milliseconds for the debug kernel's 28 MiB), and instances share
/// the file's pages. glibc has 15 such namespaces per process; when they
/// are all in use this fails and the caller copies instead. Returns the
/// library, the open file and the path it was loaded under.
fn load_in_namespace(source: &Path) -> Result<(Library, std::fs::File, PathBuf), String> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(source)
        .map_err(|e| format!("cannot open the kernel library {}: {e}", source.display()))?;
    let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    let c_path =
        std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: `c_path` is a NUL-terminated path; the library is our
    // kernel, which needs no other object and whose initialisers are the
    // kernel's own (none run code with preconditions).
    let handle = unsafe {
        libc::dlmopen(
            libc::LM_ID_NEWLM,
            c_path.as_ptr(),
            libc::RTLD_NOW | libc::RTLD_LOCAL,
        )
    };
    if handle.is_null() {
        // SAFETY: dlerror returns NULL or a NUL-terminated message that
        // stays valid until the next dl* call on this thread.
        let message = unsafe {
            let e = libc::dlerror();
            if e.is_null() {
                "dlmopen failed".to_string()
            } else {
                std::ffi::CStr::from_ptr(e).to_string_lossy().into_owned()
            }
        };
        return Err(message);
    }
    // SAFETY: `handle` is a live handle from dlmopen, owned from here on
    // by the Library, which dlcloses it once.
    let library = unsafe { libloading::os::unix::Library::from_raw(handle) };
    Ok((library.into(), file, path))
}

/// Loads a copy of `source` made for this instance: the fallback when no
/// namespace is left.
fn load_copy(source: &Path) -> Result<(Library, PathBuf), String> {
    static COPIES: AtomicU64 = AtomicU64::new(0);
    let copy: PathBuf = std::env::temp_dir().join(format!(
        "lkl-{}-{}.so",
        std::process::id(),
        COPIES.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::copy(source, &copy).map_err(|e| {
        format!(
            "cannot copy the kernel library {} to {}: {e} (rebuild with `cargo build`)",
            source.display(),
            copy.display()
        )
    })?;
    // SAFETY: the library is our kernel, whose initialisers are the
    // kernel's own (none run code with preconditions); it is loaded
    // under a unique file name, so this is a fresh instance.
    match unsafe { Library::new(&copy) } {
        Ok(library) => Ok((library, copy)),
        Err(e) => {
            let _ = std::fs::remove_file(&copy);
            Err(format!("cannot load {}: {e}", copy.display()))
        }
    }
}

/// Where `build.rs` left the shared library; `LKL_LIBRARY`, if set, names
/// another one for [`Kernel::boot`](crate::Kernel::boot) to load instead
/// (`lkl-harness mutants` sets it to a mutant's).
pub fn shared_library_path() -> &'static Path {
    static PATH: std::sync::LazyLock<PathBuf> = std::sync::LazyLock::new(|| {
        std::env::var_os("LKL_LIBRARY")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("LKL_SHARED_LIBRARY")))
    });
    &PATH
}

impl Api {
    /// The kernel linked into this executable. There is only one: booting
    /// it twice in one process is refused by the kernel itself.
    pub fn linked() -> Api {
        Api {
            start: lkl_start_kernel,
            syscall: lkl_syscall,
            flush_console: lkl_flush_console,
            halt: lkl_sys_halt,
            cpus_state: lkl_cpus_state,
            library: None,
            image: (0, 0),
            object: (
                std::env::current_exe().unwrap_or_default(),
                load_bias(lkl_start_kernel as *const libc::c_void).unwrap_or(0),
            ),
        }
    }

    /// A private kernel: a fresh instance of `liblkl.so`, loaded on its own so
    /// that its globals are its own.
    pub fn private() -> Result<Api, String> {
        Self::private_from(shared_library_path())
    }

    /// A private kernel from the library at `source` (a seeded kernel):
    /// loaded in a link-map namespace of its own, or, when none is left, as
    /// a copy of its own.
    pub fn private_from(source: &Path) -> Result<Api, String> {
        let (library, file, path) = match load_in_namespace(source) {
            Ok((library, file, path)) => (library, LoadedFile::Open(file), path),
            Err(namespace) => match load_copy(source) {
                Ok((library, copy)) => (library, LoadedFile::Copy(copy.clone()), copy),
                Err(copy) => {
                    return Err(format!(
                        "cannot load the kernel library {}: {namespace}; as a copy: {copy}",
                        source.display()
                    ))
                }
            },
        };
        // SAFETY: the symbols have exactly these C signatures
        // (lkl/arch/lkl/include/uapi/asm/host_ops.h).
        let api = unsafe {
            let start = *library
                .get::<StartFn>(b"lkl_start_kernel\0")
                .map_err(|e| e.to_string())?;
            let syscall = *library
                .get::<SyscallFn>(b"lkl_syscall\0")
                .map_err(|e| e.to_string())?;
            let flush_console = *library
                .get::<HaltFn>(b"lkl_flush_console\0")
                .map_err(|e| e.to_string())?;
            let halt = *library
                .get::<HaltFn>(b"lkl_sys_halt\0")
                .map_err(|e| e.to_string())?;
            let cpus_state = *library
                .get::<StateFn>(b"lkl_cpus_state\0")
                .map_err(|e| e.to_string())?;
            let bias = load_bias(start as *const libc::c_void)?;
            Api {
                start,
                syscall,
                flush_console,
                halt,
                cpus_state,
                image: mapping_of(start as *const libc::c_void)?,
                object: (path, bias),
                library: Some(Arc::new(Loaded {
                    library: Some(library),
                    file,
                })),
            }
        };
        Ok(api)
    }
}

/// The load bias of the object that contains the code address `addr`.
fn load_bias(addr: *const libc::c_void) -> Result<usize, String> {
    // SAFETY: an all-zero Dl_info is a valid value to be filled in.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: `addr` is a code address in a loaded object; `info` is
    // writable.
    if unsafe { libc::dladdr(addr, &mut info) } == 0 {
        return Err("dladdr does not know the kernel's code".into());
    }
    Ok(info.dli_fbase as usize)
}

/// The part of a loaded object that is surely mapped at its base: the
/// first page of its first segment, which holds the ELF header.
const ELF_HEADER_PAGE: usize = 4096;

/// The address range of every loaded segment of the shared object that
/// contains `addr`: the kernel refuses user pointers into it. Read from
/// the object's own program headers, mapped with its ELF header at the
/// base dladdr gives (`dl_iterate_phdr` sees only the caller's link-map
/// namespace, not the private one the kernel may be in).
fn mapping_of(addr: *const libc::c_void) -> Result<(usize, usize), String> {
    // SAFETY: an all-zero Dl_info is a valid value to be filled in.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: `addr` is a code address in a loaded object; `info` is
    // writable.
    if unsafe { libc::dladdr(addr, &mut info) } == 0 {
        return Err("dladdr does not know the kernel library".into());
    }
    let base = info.dli_fbase as usize;
    // SAFETY: the kernel library's first loadable segment starts at file
    // offset 0 (build.rs links it so), so its ELF header is mapped,
    // readable, at the object's base.
    let header = unsafe { &*(base as *const libc::Elf64_Ehdr) };
    let headers_end = (header.e_phoff as usize)
        .saturating_add(usize::from(header.e_phnum) * size_of::<libc::Elf64_Phdr>());
    if header.e_ident[..4] != *b"\x7fELF"
        || header.e_phentsize as usize != size_of::<libc::Elf64_Phdr>()
        || headers_end > ELF_HEADER_PAGE
    {
        return Err(format!(
            "no ELF header at the kernel library's base {base:#x}"
        ));
    }
    // SAFETY: the e_phnum program headers lie in the first page, mapped
    // with the ELF header (checked above; `ld -shared` puts them at 64).
    let headers = unsafe {
        std::slice::from_raw_parts(
            (base + header.e_phoff as usize) as *const libc::Elf64_Phdr,
            header.e_phnum as usize,
        )
    };
    let (mut start, mut end) = (usize::MAX, 0);
    for h in headers.iter().filter(|h| h.p_type == libc::PT_LOAD) {
        let from = base + h.p_vaddr as usize;
        start = start.min(from & !0xfff);
        end = end.max((from + h.p_memsz as usize + 0xfff) & !0xfff);
    }
    if start >= end {
        return Err("the kernel library has no loadable segment".into());
    }
    Ok((start, end))
}
