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
    assert_eq!(
        section_at((&raw const DATA_NAME) as usize),
        ".data",
        "DATA_NAME's section"
    );
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
    assert_eq!(section_at(bss), ".bss", "BSS_NAME's section");
    let (ret, records) = logged(&kernel, || kernel.hello(&HelloArgs::raw(0, 0, bss)));
    assert_eq!(ret, Ok(()));
    assert_eq!(texts(&records), greetings(b"bss", false));

    // The kernel's own memory is still refused: its arena, and each of
    // its sections, which the linker placed among the program's own.
    let arena_name = HelloArgs::raw(0, 0, arena_start + 4096);
    assert_eq!(kernel.hello(&arena_name), Err(Errno::EFAULT));
    for (section, symbol) in KERNEL_SYMBOLS {
        let (address, found_in) = linked_symbol(symbol);
        assert_eq!(found_in, format!(".{section}"), "the section of {symbol}");
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

/// This test's executable, read and parsed by `f`.
fn with_executable<R>(f: impl FnOnce(&object::File<'_>) -> R) -> R {
    let exe = std::env::current_exe().expect("this test's executable");
    let image = std::fs::read(&exe).expect("read this test's executable");
    let file = object::File::parse(&*image).expect("this test's executable is an object file");
    f(&file)
}

/// The value of `wanted`, a symbol defined once in `file` (the kernel's
/// own are local symbols), and the name of its section.
fn symbol_in(file: &object::File<'_>, wanted: &str) -> (usize, String) {
    use object::{Object, ObjectSection, ObjectSymbol};

    let found: Vec<_> = file
        .symbols()
        .filter(|s| s.is_definition() && s.name() == Ok(wanted))
        .collect();
    let [ref symbol] = found[..] else {
        panic!("{wanted} is defined {} times, not once", found.len());
    };
    let section = symbol
        .section_index()
        .and_then(|i| file.section_by_index(i).ok())
        .and_then(|s| s.name().ok().map(String::from))
        .unwrap_or_default();
    (symbol.address() as usize, section)
}

/// How far this executable was moved when it was loaded: where
/// `lkl_syscall` is, less its value in the symbol table.
fn load_bias(file: &object::File<'_>) -> usize {
    extern "C" {
        fn lkl_syscall(nr: std::ffi::c_long, params: *mut std::ffi::c_long) -> std::ffi::c_long;
    }
    (lkl_syscall as *const () as usize).wrapping_sub(symbol_in(file, "lkl_syscall").0)
}

/// Where `name`, a symbol of this executable (of the kernel linked into
/// it, say), is in memory, and the name of its section.
fn linked_symbol(name: &str) -> (usize, String) {
    with_executable(|file| {
        let (value, section) = symbol_in(file, name);
        (value.wrapping_add(load_bias(file)), section)
    })
}

/// The name of the section of this executable that holds `address`.
fn section_at(address: usize) -> String {
    use object::{Object, ObjectSection};

    with_executable(|file| {
        let probe = address.wrapping_sub(load_bias(file)) as u64;
        file.sections()
            .find(|s| (s.address()..s.address() + s.size()).contains(&probe))
            .and_then(|s| s.name().ok().map(String::from))
            .unwrap_or_else(|| panic!("no section holds {address:#x}"))
    })
}
