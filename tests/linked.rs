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

/// A name in the executable's `.data` (mutable and not zero, so neither
/// `.rodata` nor `.bss`).
static mut DATA_NAME: [u8; 5] = *b"data\0";
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

    let data = HelloArgs::raw(0, 0, (&raw const DATA_NAME) as usize);
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

    // The kernel's own memory is still refused: its arena, and each of
    // its sections, which the linker placed among the program's own.
    let arena_name = HelloArgs::raw(0, 0, arena_start + 4096);
    assert_eq!(kernel.hello(&arena_name), Err(Errno::EFAULT));
    for (section, symbol) in KERNEL_SYMBOLS {
        let address = linked_kernel_symbol(symbol);
        let name = HelloArgs::raw(0, 0, address);
        assert_eq!(
            kernel.hello(&name),
            Err(Errno::EFAULT),
            "a name at the linked kernel's {symbol} ({section}, {address:#x})"
        );
    }
    finish(kernel);
}

/// One symbol of the linked kernel in each of its sections.
const KERNEL_SYMBOLS: [(&str, &str); 4] = [
    ("text", "lkl_syscall"),
    ("rodata", "linux_banner"),
    ("data", "init_task"),
    ("bss", "lkl_host0"),
];

/// Where `name`, a symbol of the kernel linked into this executable, is
/// in memory: its value in the executable's symbol table, moved by the
/// load bias that `lkl_syscall`'s own address gives.
fn linked_kernel_symbol(name: &str) -> usize {
    use object::{Object, ObjectSymbol};

    extern "C" {
        fn lkl_syscall(nr: std::ffi::c_long, params: *mut std::ffi::c_long) -> std::ffi::c_long;
    }
    let exe = std::env::current_exe().expect("this test's executable");
    let image = std::fs::read(&exe).expect("read this test's executable");
    let file = object::File::parse(&*image).expect("this test's executable is an object file");
    let value = |wanted: &str| {
        file.symbols()
            .find(|s| s.name() == Ok(wanted))
            .map(|s| s.address() as usize)
            .unwrap_or_else(|| panic!("{wanted} is in {}'s symbol table", exe.display()))
    };
    let bias = (lkl_syscall as *const () as usize).wrapping_sub(value("lkl_syscall"));
    value(name).wrapping_add(bias)
}
