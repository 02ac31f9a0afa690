//! The `hello` system call of `lkl/patches/0001-*`, typed.
//!
//! ```
//! use lkl_harness::{hello::HelloArgs, BootOptions, Kernel};
//!
//! let kernel = Kernel::boot(BootOptions::default()).unwrap();
//! let name = c"world";
//! kernel.hello(&HelloArgs::new(name, 0)).unwrap();
//! assert!(kernel.dmesg().contains("Hello, world!"));
//! ```

use std::ffi::CStr;

use crate::errno::Errno;
use crate::kernel::Kernel;
use crate::sys;

/// `struct hello_args` as bindgen read it from the installed
/// `<linux/hello.h>`.
pub use crate::sys::hello_args as HelloArgs;

/// `HELLO_FLAG_LOUD`: greet twice, the second time in capitals.
pub const HELLO_FLAG_LOUD: u32 = sys::HELLO_FLAG_LOUD;
/// `HELLO_ARGS_SIZE_VER0`: the size of the first version of the struct.
pub const HELLO_ARGS_SIZE_VER0: usize = sys::HELLO_ARGS_SIZE_VER0 as usize;
/// `__NR_hello`, from the generated syscall table.
pub const NR_HELLO: u32 = sys::__NR_hello;

impl HelloArgs {
    /// Arguments greeting `name` with `flags`; `pad` is zero. The struct
    /// holds a pointer to `name`: keep `name` alive while it is used.
    pub fn new(name: &CStr, flags: u32) -> HelloArgs {
        HelloArgs {
            flags,
            pad: 0,
            name: name.as_ptr() as u64,
        }
    }

    /// Arguments with a raw `name` address (valid or not) and any `pad`:
    /// for testing how the kernel treats bad input.
    pub fn raw(flags: u32, pad: u32, name: usize) -> HelloArgs {
        HelloArgs {
            flags,
            pad,
            name: name as u64,
        }
    }

    /// The struct's bytes as the kernel copies them (native byte order),
    /// each field at its `offset_of!`: to put it at the start of a larger,
    /// extended buffer.
    pub fn to_bytes(&self) -> [u8; std::mem::size_of::<HelloArgs>()] {
        use std::mem::offset_of;
        let mut bytes = [0u8; std::mem::size_of::<HelloArgs>()];
        let mut put = |offset: usize, field: &[u8]| {
            bytes[offset..offset + field.len()].copy_from_slice(field);
        };
        put(offset_of!(HelloArgs, flags), &self.flags.to_ne_bytes());
        put(offset_of!(HelloArgs, pad), &self.pad.to_ne_bytes());
        put(offset_of!(HelloArgs, name), &self.name.to_ne_bytes());
        bytes
    }
}

impl Kernel {
    /// `hello(args, sizeof(*args))`.
    ///
    /// Safe: hello(2) writes no user memory. It reads `args` and the name
    /// `args.name` points to; a name address that is invalid (or no longer
    /// valid) gives `EFAULT` or the bytes that are there now, never a
    /// fault or a write.
    pub fn hello(&self, args: &HelloArgs) -> Result<(), Errno> {
        // SAFETY: hello(2) only reads: `args`, which we borrow, and the
        // name through the fault-safe `strncpy_from_user`.
        unsafe {
            self.hello_raw(
                args as *const HelloArgs as usize,
                std::mem::size_of::<HelloArgs>(),
            )
        }
    }

    /// `hello(buf, buf.len())`: `buf` holds a struct of any size (an older,
    /// newer or truncated version), e.g. [`HelloArgs::to_bytes`] followed
    /// by an extension.
    pub fn hello_bytes(&self, buf: &[u8]) -> Result<(), Errno> {
        // SAFETY: hello(2) only reads its arguments: `buf` for its length,
        // and the name it points to (read by `strncpy_from_user`, which
        // stops at a fault and gives EFAULT).
        unsafe { self.hello_raw(buf.as_ptr() as usize, buf.len()) }
    }

    /// `hello(uargs, size)` with any address and size, valid or not: for
    /// testing how the kernel treats bad input. A bad address gives
    /// `EFAULT`; it never faults the process.
    ///
    /// # Safety
    ///
    /// hello(2) reads `uargs..uargs + size` and, through it, the name; it
    /// writes nothing. The kernel's copies run in this process, so valid
    /// memory in those ranges must not be written by another thread during
    /// the call (that would be a data race). Invalid addresses are fine.
    /// A mutant `hello()` that writes user memory is outside this contract:
    /// run it only with buffers it may scribble on.
    ///
    /// So safe code cannot call it:
    ///
    /// ```compile_fail,E0133
    /// fn hello(kernel: &lkl_harness::Kernel) -> Result<(), lkl_harness::Errno> {
    ///     kernel.hello_raw(8, 24)
    /// }
    /// ```
    pub unsafe fn hello_raw(&self, uargs: usize, size: usize) -> Result<(), Errno> {
        // SAFETY: hello(2) takes (uargs, size) and only reads through
        // uargs, as our caller allows.
        unsafe { self.syscall(NR_HELLO, &[uargs as i64, size as i64]) }.map(|_| ())
    }
}
