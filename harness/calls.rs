//! Typed, safe system calls: the calls tests commonly make, each with
//! arguments that are Rust values the kernel may read or write exactly as
//! the system call's ABI says.
//!
//! [`Kernel::syscall`] takes raw words, any of which the kernel may use as
//! an address to write: a pointer to an immutable or borrowed Rust object
//! would be overwritten by `copy_to_user`, so it is an `unsafe fn`. The
//! methods here build those words from references whose type and length
//! match what the kernel writes, so they are safe.
//!
//! ```
//! use lkl_harness::{BootOptions, Kernel};
//!
//! let kernel = Kernel::boot(BootOptions::default()).unwrap();
//! assert_eq!(kernel.getpid(), Ok(1));
//! kernel.mkdir(c"/tmp", 0o755).unwrap();
//! let fd = kernel.open(c"/tmp/f", lkl_harness::sys::O_RDWR | lkl_harness::sys::O_CREAT, 0o644).unwrap();
//! assert_eq!(kernel.write(fd, b"hi"), Ok(2));
//! kernel.close(fd).unwrap();
//! ```

use std::ffi::{CStr, CString};
use std::time::Duration;

use crate::errno::Errno;
use crate::kernel::{Kernel, MAX_CPUS};
use crate::sys;

/// A file descriptor of the kernel under test (not of the host).
pub type Fd = i32;

/// An entry of a directory of the kernel under test ([`Kernel::read_dir`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DirEntry {
    /// Its name.
    pub name: String,
    /// Its type, `d_type` of `getdents64(2)`: [`DirEntry::DIR`],
    /// [`DirEntry::FILE`], or another `DT_*` value.
    pub kind: u8,
}

impl DirEntry {
    /// A directory (`DT_DIR`).
    pub const DIR: u8 = 4;
    /// A regular file (`DT_REG`).
    pub const FILE: u8 = 8;
}

/// Words of a CPU mask big enough for every CPU the kernel may have.
const MASK_WORDS: usize = (MAX_CPUS as usize).div_ceil(64);

impl Kernel {
    /// Makes a system call whose arguments are plain numbers, or pointers
    /// the kernel only reads from references held by the caller.
    ///
    /// Private: every caller here passes pointers of references that live
    /// for the call and whose size matches what the system call reads or
    /// writes.
    fn typed(&self, nr: u32, args: &[i64]) -> Result<i64, Errno> {
        // SAFETY: each caller in this module passes, as pointer arguments,
        // only addresses of objects it exclusively borrows (where the
        // kernel writes) or borrows (where it only reads), of the size the
        // system call's ABI accesses.
        unsafe { self.syscall(nr, args) }
    }

    /// `getpid()`: 1 for every host thread (they are all threads of the
    /// kernel's init process).
    pub fn getpid(&self) -> Result<i64, Errno> {
        self.typed(sys::__NR_getpid, &[])
    }

    /// `gettid()`: the calling host thread's own kernel task.
    pub fn gettid(&self) -> Result<i64, Errno> {
        self.typed(sys::__NR_gettid, &[])
    }

    /// `uname()`.
    pub fn uname(&self) -> Result<sys::new_utsname, Errno> {
        let mut uts = sys::new_utsname::default();
        self.typed(sys::__NR_uname, &[&mut uts as *mut _ as i64])?;
        Ok(uts)
    }

    /// `sysinfo()`.
    pub fn sysinfo(&self) -> Result<sys::sysinfo, Errno> {
        let mut info = sys::sysinfo::default();
        self.typed(sys::__NR_sysinfo, &[&mut info as *mut _ as i64])?;
        Ok(info)
    }

    /// `clock_gettime(clock)`, e.g. `libc::CLOCK_MONOTONIC`.
    pub fn clock_gettime(&self, clock: i32) -> Result<sys::__kernel_timespec, Errno> {
        let mut ts = sys::__kernel_timespec::default();
        self.typed(
            sys::__NR_clock_gettime,
            &[i64::from(clock), &mut ts as *mut _ as i64],
        )?;
        Ok(ts)
    }

    /// `nanosleep(duration, NULL)`: sleeps in the kernel, on its clock.
    pub fn nanosleep(&self, duration: Duration) -> Result<(), Errno> {
        let request = sys::__kernel_timespec {
            tv_sec: i64::try_from(duration.as_secs()).map_err(|_| Errno::EINVAL)?,
            tv_nsec: i64::from(duration.subsec_nanos()),
        };
        self.typed(sys::__NR_nanosleep, &[&request as *const _ as i64, 0])
            .map(drop)
    }

    /// `mkdir(path, mode)` (as `mkdirat(AT_FDCWD, ...)`).
    pub fn mkdir(&self, path: &CStr, mode: u32) -> Result<(), Errno> {
        self.typed(
            sys::__NR_mkdirat,
            &[sys::AT_FDCWD as i64, path.as_ptr() as i64, i64::from(mode)],
        )
        .map(drop)
    }

    /// `mount(source, target, fstype, flags, NULL)`.
    pub fn mount(
        &self,
        source: &CStr,
        target: &CStr,
        fstype: &CStr,
        flags: u64,
    ) -> Result<(), Errno> {
        self.typed(
            sys::__NR_mount,
            &[
                source.as_ptr() as i64,
                target.as_ptr() as i64,
                fstype.as_ptr() as i64,
                flags as i64,
                0,
            ],
        )
        .map(drop)
    }

    /// `open(path, flags, mode)` (as `openat(AT_FDCWD, ...)`), with
    /// `sys::O_*` flags.
    pub fn open(&self, path: &CStr, flags: u32, mode: u32) -> Result<Fd, Errno> {
        self.typed(
            sys::__NR_openat,
            &[
                sys::AT_FDCWD as i64,
                path.as_ptr() as i64,
                i64::from(flags),
                i64::from(mode),
            ],
        )
        .map(|fd| fd as Fd)
    }

    /// `read(fd, buf, buf.len())`: the number of bytes read.
    pub fn read(&self, fd: Fd, buf: &mut [u8]) -> Result<usize, Errno> {
        self.typed(
            sys::__NR_read,
            &[i64::from(fd), buf.as_mut_ptr() as i64, buf.len() as i64],
        )
        .map(|n| n as usize)
    }

    /// `write(fd, buf, buf.len())`: the number of bytes written.
    pub fn write(&self, fd: Fd, buf: &[u8]) -> Result<usize, Errno> {
        self.typed(
            sys::__NR_write,
            &[i64::from(fd), buf.as_ptr() as i64, buf.len() as i64],
        )
        .map(|n| n as usize)
    }

    /// `lseek(fd, offset, whence)` (`libc::SEEK_SET` and friends): the new
    /// offset.
    pub fn lseek(&self, fd: Fd, offset: i64, whence: i32) -> Result<i64, Errno> {
        self.typed(sys::__NR_lseek, &[i64::from(fd), offset, i64::from(whence)])
    }

    /// `getdents64(fd, buf, buf.len())`: the number of bytes of
    /// `struct linux_dirent64` records written to `buf`, 0 at the end.
    pub fn getdents64(&self, fd: Fd, buf: &mut [u8]) -> Result<usize, Errno> {
        self.typed(
            sys::__NR_getdents64,
            &[i64::from(fd), buf.as_mut_ptr() as i64, buf.len() as i64],
        )
        .map(|n| n as usize)
    }

    /// `close(fd)`.
    pub fn close(&self, fd: Fd) -> Result<(), Errno> {
        self.typed(sys::__NR_close, &[i64::from(fd)]).map(drop)
    }

    /// The whole contents of the file at `path` (`EINVAL` for a path with
    /// a NUL byte).
    pub fn read_file(&self, path: &str) -> Result<Vec<u8>, Errno> {
        let path = CString::new(path).map_err(|_| Errno::EINVAL)?;
        let fd = self.open(&path, sys::O_RDONLY, 0)?;
        let mut data = Vec::new();
        let mut buf = vec![0u8; 16384];
        let result = loop {
            match self.read(fd, &mut buf) {
                Ok(0) => break Ok(data),
                Ok(n) => data.extend_from_slice(&buf[..n]),
                Err(e) => break Err(e),
            }
        };
        let closed = self.close(fd);
        let data = result?;
        closed.map(|()| data)
    }

    /// The entries of the directory at `path`, sorted by name, without
    /// `.` and `..` (`EINVAL` for a path with a NUL byte).
    pub fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>, Errno> {
        let path = CString::new(path).map_err(|_| Errno::EINVAL)?;
        let fd = self.open(&path, sys::O_RDONLY | sys::O_DIRECTORY, 0)?;
        let mut entries = Vec::new();
        let mut buf = vec![0u8; 16384];
        let result = loop {
            let n = match self.getdents64(fd, &mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) => break Err(e),
            };
            // struct linux_dirent64: ino (8), off (8), reclen (2), type
            // (1), then the name and its NUL.
            let mut at = 0;
            while at + 19 <= n {
                let reclen = usize::from(u16::from_ne_bytes([buf[at + 16], buf[at + 17]]));
                let name = &buf[at + 19..(at + reclen).min(n)];
                let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
                if name != b"." && name != b".." {
                    entries.push(DirEntry {
                        name: String::from_utf8_lossy(name).into_owned(),
                        kind: buf[at + 18],
                    });
                }
                at += reclen.max(1);
            }
        };
        let closed = self.close(fd);
        result?;
        closed?;
        entries.sort();
        Ok(entries)
    }

    /// `sched_setaffinity(0, ...)`: the calling thread's task may run only
    /// on `cpus` (`EINVAL` if none of them is online).
    pub fn sched_setaffinity(&self, cpus: &[u32]) -> Result<(), Errno> {
        let mut mask = [0u64; MASK_WORDS];
        for &cpu in cpus {
            if cpu >= MAX_CPUS {
                return Err(Errno::EINVAL);
            }
            mask[cpu as usize / 64] |= 1 << (cpu % 64);
        }
        self.typed(
            sys::__NR_sched_setaffinity,
            &[0, std::mem::size_of_val(&mask) as i64, mask.as_ptr() as i64],
        )
        .map(drop)
    }

    /// `sched_getaffinity(0, ...)`: the CPUs the calling thread's task may
    /// run on, in ascending order.
    pub fn sched_getaffinity(&self) -> Result<Vec<u32>, Errno> {
        let mut mask = [0u64; MASK_WORDS];
        let len = self.typed(
            sys::__NR_sched_getaffinity,
            &[
                0,
                std::mem::size_of_val(&mask) as i64,
                mask.as_mut_ptr() as i64,
            ],
        )? as u32;
        Ok((0..(len * 8).min(MAX_CPUS))
            .filter(|&cpu| mask[cpu as usize / 64] & (1 << (cpu % 64)) != 0)
            .collect())
    }

    /// `getcpu()`: the CPU the calling thread's task runs on now.
    pub fn getcpu(&self) -> Result<u32, Errno> {
        let mut cpu: u32 = u32::MAX;
        self.typed(sys::__NR_getcpu, &[&mut cpu as *mut u32 as i64, 0, 0])?;
        Ok(cpu)
    }
}
