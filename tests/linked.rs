//! The kernel linked into the test executable (`Kernel::boot_linked`, what
//! the command line uses). Its sections lie among the executable's own,
//! and user copies must refuse exactly the kernel's: a name in the
//! program's read-only data, data or bss is user memory.
//!
//! One test: the linked kernel boots once per process.

mod common;

use common::{arena, finish, greetings, logged, texts};
use lkl_harness::hello::HelloArgs;
use lkl_harness::{BootOptions, Errno, Kernel};

/// A name in the executable's `.data`.
static DATA_NAME: [u8; 5] = *b"data\0";
/// A name in the executable's `.bss`, written before use.
static mut BSS_NAME: [u8; 8] = [0; 8];

#[test]
fn the_linked_kernel_reads_names_from_the_programs_static_memory() {
    let kernel = Kernel::boot_linked(BootOptions::default()).expect("the linked kernel boots");
    let (arena_start, _) = arena(&kernel);

    // The seed's own selftest pattern: a string literal, in .rodata.
    let (ret, records) = logged(&kernel, || kernel.hello(&HelloArgs::new(c"world", 0)));
    assert_eq!(ret, Ok(()));
    assert_eq!(texts(&records), greetings(b"world", false));

    let data = HelloArgs::raw(0, 0, DATA_NAME.as_ptr() as usize);
    let (ret, records) = logged(&kernel, || kernel.hello(&data));
    assert_eq!(ret, Ok(()));
    assert_eq!(texts(&records), greetings(b"data", false));

    // SAFETY: only this thread touches BSS_NAME, and not while the kernel
    // reads it (the call below is synchronous).
    let bss = unsafe {
        let name = (&raw mut BSS_NAME).cast::<u8>();
        std::ptr::copy_nonoverlapping(c"bss".as_ptr().cast::<u8>(), name, 4);
        name as usize
    };
    let (ret, records) = logged(&kernel, || kernel.hello(&HelloArgs::raw(0, 0, bss)));
    assert_eq!(ret, Ok(()));
    assert_eq!(texts(&records), greetings(b"bss", false));

    // The kernel's own memory is still refused.
    let arena_name = HelloArgs::raw(0, 0, arena_start + 4096);
    assert_eq!(kernel.hello(&arena_name), Err(Errno::EFAULT));
    finish(kernel);
}
