//! The library's C entry points, from the statically linked `liblkl.a` or
//! from a private copy of `liblkl.so` loaded with libloading.

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
    /// The file the kernel's code is in (the private copy, or this
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

/// A private copy of the kernel library, loaded: unloaded, and its file
/// removed, when dropped. The file is kept while the copy is loaded so
/// that call traces can name kernel functions.
pub struct Loaded {
    library: Option<Library>,
    copy: PathBuf,
}

impl Drop for Loaded {
    fn drop(&mut self) {
        // Unload first, then remove the file.
        drop(self.library.take());
        let _ = std::fs::remove_file(&self.copy);
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

    /// A private kernel: a fresh copy of `liblkl.so`, loaded on its own so
    /// that its globals are its own.
    pub fn private() -> Result<Api, String> {
        Self::private_from(shared_library_path())
    }

    /// A private kernel from the library at `source` (a seeded kernel).
    pub fn private_from(source: &Path) -> Result<Api, String> {
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
        let library = unsafe { Library::new(&copy) };
        let library = library.map_err(|e| {
            let _ = std::fs::remove_file(&copy);
            format!("cannot load {}: {e}", copy.display())
        })?;
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
                object: (copy.clone(), bias),
                library: Some(Arc::new(Loaded {
                    library: Some(library),
                    copy,
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

/// The address range of every loaded segment of the shared object that
/// contains `addr`: the kernel refuses user pointers into it.
fn mapping_of(addr: *const libc::c_void) -> Result<(usize, usize), String> {
    // SAFETY: an all-zero Dl_info is a valid value to be filled in.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: `addr` is a code address in a loaded object; `info` is
    // writable.
    if unsafe { libc::dladdr(addr, &mut info) } == 0 {
        return Err("dladdr does not know the kernel library".into());
    }
    struct Search {
        base: usize,
        range: Option<(usize, usize)>,
    }
    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: dl_iterate_phdr passes a valid info for the duration of
        // the call, and `data` is the &mut Search given below.
        let (info, search) = unsafe { (&*info, &mut *data.cast::<Search>()) };
        if info.dlpi_addr as usize != search.base {
            return 0;
        }
        // SAFETY: dlpi_phdr points at dlpi_phnum program headers.
        let headers =
            unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
        let (mut start, mut end) = (usize::MAX, 0);
        for h in headers.iter().filter(|h| h.p_type == libc::PT_LOAD) {
            let from = search.base + h.p_vaddr as usize;
            start = start.min(from & !0xfff);
            end = end.max((from + h.p_memsz as usize + 0xfff) & !0xfff);
        }
        search.range = Some((start, end));
        1
    }
    let mut search = Search {
        base: info.dli_fbase as usize,
        range: None,
    };
    // SAFETY: `visit` matches the callback type and only reads what it is
    // given; `search` outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(visit), (&mut search as *mut Search).cast()) };
    search
        .range
        .ok_or_else(|| "the kernel library is not among the loaded objects".into())
}
