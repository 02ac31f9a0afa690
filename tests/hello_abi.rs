//! The hello() ABI as the installed UAPI headers give it (bindgen's view),
//! and the layout of the host ops table on both sides of the boundary.

mod common;

use std::any::TypeId;
use std::collections::BTreeMap;
use std::mem::{align_of, offset_of, size_of};
use std::path::Path;

use common::{boot, greetings, logged, texts};
use lkl_harness::hello::{HelloArgs, HELLO_ARGS_SIZE_VER0, NR_HELLO};
use lkl_harness::{sys, Errno};
use lkl_sim::HostOps;

/// The size of a field, from an accessor: no value needed.
fn field_size<S, F>(_: fn(&S) -> &F) -> usize {
    size_of::<F>()
}

fn type_of<T: 'static>(_: &T) -> TypeId {
    TypeId::of::<T>()
}

/// The `#define NAME NUMBER` lines of an installed header whose name
/// starts with `prefix`, in order (a name defined twice appears twice).
fn defines(header: &str, prefix: &str) -> Vec<(String, u64)> {
    let path = Path::new(env!("LKL_HEADERS")).join(header);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            if words.next() != Some("#define") {
                return None;
            }
            let name = words.next()?;
            let value = words.next()?;
            if !name.starts_with(prefix) || words.next().is_some() {
                return None;
            }
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// Every `__NR_*` of the generated `asm/unistd_64.h`.
fn syscall_numbers() -> Vec<(String, u64)> {
    let numbers = defines("asm/unistd_64.h", "__NR_");
    assert!(
        numbers.len() > 300,
        "too few syscalls parsed: {}",
        numbers.len()
    );
    numbers
}

#[test]
fn hello_args_is_16_bytes_the_size_of_ver0() {
    assert_eq!(size_of::<HelloArgs>(), 16);
    assert_eq!(HELLO_ARGS_SIZE_VER0, 16);
    assert_eq!(size_of::<HelloArgs>(), HELLO_ARGS_SIZE_VER0);
}

#[test]
fn hello_args_is_8_byte_aligned() {
    assert_eq!(align_of::<HelloArgs>(), 8);
}

#[test]
fn hello_args_fields_are_at_0_4_8() {
    assert_eq!(offset_of!(HelloArgs, flags), 0);
    assert_eq!(offset_of!(HelloArgs, pad), 4);
    assert_eq!(offset_of!(HelloArgs, name), 8);
}

#[test]
fn hello_args_has_no_holes() {
    let fields = field_size(|a: &HelloArgs| &a.flags)
        + field_size(|a: &HelloArgs| &a.pad)
        + field_size(|a: &HelloArgs| &a.name);
    assert_eq!(fields, size_of::<HelloArgs>());
}

#[test]
fn hello_args_fields_are_u32_u32_u64() {
    let args = HelloArgs::default();
    assert_eq!(type_of(&args.flags), TypeId::of::<u32>());
    assert_eq!(type_of(&args.pad), TypeId::of::<u32>());
    assert_eq!(type_of(&args.name), TypeId::of::<u64>());
}

#[test]
fn hello_args_bytes_are_the_fields_in_order() {
    let args = HelloArgs::raw(0x0403_0201, 0x0807_0605, 0x100f_0e0d_0c0b_0a09);
    let want: Vec<u8> = [
        0x0403_0201u32.to_ne_bytes().as_slice(),
        0x0807_0605u32.to_ne_bytes().as_slice(),
        0x100f_0e0d_0c0b_0a09u64.to_ne_bytes().as_slice(),
    ]
    .concat();
    assert_eq!(args.to_bytes().as_slice(), want.as_slice());
}

#[test]
fn the_header_number_of_hello_is_the_kernels_hello() {
    // The number a C program gets from the generated header, read as
    // text (not through bindgen, which gives NR_HELLO).
    let hello: Vec<u64> = syscall_numbers()
        .into_iter()
        .filter(|(name, _)| name == "__NR_hello")
        .map(|(_, nr)| nr)
        .collect();
    let [nr] = hello[..] else {
        panic!("__NR_hello is defined once in asm/unistd_64.h: {hello:?}")
    };
    // The kernel runs hello(2) at that number: it greets.
    let kernel = boot();
    let args = HelloArgs::new(c"abi", 0);
    let nr = u32::try_from(nr).expect("a small number");
    let (ret, records) = logged(&kernel, || {
        // SAFETY: hello(2) only reads `args` and the name, both alive.
        unsafe {
            kernel.syscall(
                nr,
                &[
                    &args as *const HelloArgs as i64,
                    size_of::<HelloArgs>() as i64,
                ],
            )
        }
    });
    assert_eq!(ret, Ok(0), "system call {nr}");
    assert_eq!(texts(&records), greetings(b"abi", false));
    // The typed call, at bindgen's NR_HELLO, greets the same way.
    let (ret, records) = logged(&kernel, || kernel.hello(&args));
    assert_eq!(ret, Ok(()));
    assert_eq!(texts(&records), greetings(b"abi", false));
    common::finish(kernel);
}

#[test]
fn nr_hello_is_distinct_from_every_other_syscall_number() {
    let mut by_number: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for (name, nr) in syscall_numbers() {
        by_number.entry(nr).or_default().push(name);
    }
    assert_eq!(
        by_number.get(&u64::from(NR_HELLO)),
        Some(&vec!["__NR_hello".to_string()]),
        "exactly one name for {NR_HELLO}"
    );
}

/// `__NR_syscalls`, one past the highest system call number. The
/// generated asm/unistd_64.h keeps it for the kernel (headers_install
/// strips it); the installed asm-generic/unistd.h, which the syscall table
/// is generated from, has the last value.
fn nr_syscalls() -> u64 {
    defines("asm-generic/unistd.h", "__NR_syscalls")
        .into_iter()
        .filter(|(name, _)| name == "__NR_syscalls")
        .map(|(_, nr)| nr)
        .next_back()
        .expect("__NR_syscalls in asm-generic/unistd.h")
}

#[test]
fn nr_hello_is_inside_the_table_that_ends_at_nr_syscalls() {
    // Holds when a user adds system calls after hello (the README's
    // recipe): hello need not be the last one.
    let nr_syscalls = nr_syscalls();
    assert!(
        u64::from(NR_HELLO) < nr_syscalls,
        "__NR_hello {NR_HELLO} is past __NR_syscalls {nr_syscalls}"
    );
    let highest = syscall_numbers()
        .into_iter()
        .map(|(_, nr)| nr)
        .max()
        .expect("numbers");
    assert_eq!(highest, nr_syscalls - 1, "the table ends at __NR_syscalls");
}

#[test]
fn the_kernel_wires_hello_and_nothing_past_nr_syscalls() {
    let kernel = boot();
    // hello is wired: a NULL struct is its own EFAULT, not ENOSYS.
    // SAFETY: a NULL struct is no valid memory; hello(2) writes nothing.
    let null = unsafe { kernel.syscall(NR_HELLO, &[0, HELLO_ARGS_SIZE_VER0 as i64]) };
    assert_eq!(null, Err(Errno::EFAULT));
    let past = u32::try_from(nr_syscalls()).expect("a small number");
    // SAFETY: no such system call: the kernel reads no argument.
    let past = unsafe { kernel.syscall(past, &[]) };
    assert_eq!(past, Err(Errno::ENOSYS));
    common::finish(kernel);
}

/// `(field, offset in the C struct, offset in the Rust mirror, size in C,
/// size in Rust)` for every field of `struct lkl_host_ops`.
macro_rules! host_ops_fields {
    ($($field:ident),* $(,)?) => {
        vec![$((
            stringify!($field),
            offset_of!(sys::lkl_host_ops, $field),
            offset_of!(HostOps, $field),
            field_size(|o: &sys::lkl_host_ops| &o.$field),
            field_size(|o: &HostOps| &o.$field),
        )),*]
    };
}

#[test]
fn host_ops_rust_mirror_matches_the_c_header() {
    let fields = host_ops_fields!(
        ctx,
        image_start,
        image_end,
        console_write,
        panic,
        sem_alloc,
        sem_free,
        sem_up,
        sem_down,
        mutex_alloc,
        mutex_free,
        mutex_enter,
        mutex_leave,
        thread_create,
        thread_self,
        thread_join,
        thread_yield,
        tls_alloc,
        tls_free,
        tls_set,
        tls_get,
        time_ns,
        wall_ns,
        timer_alloc,
        timer_set_oneshot,
        timer_cancel,
        timer_free,
        mem_alloc,
        mem_free,
        copy_from_user,
        copy_to_user,
        user_cmpxchg32,
        backtrace,
        stack_walk,
        shadow_map,
        shadow_clear,
        coverage,
    );
    assert_eq!(size_of::<sys::lkl_host_ops>(), size_of::<HostOps>());
    assert_eq!(align_of::<sys::lkl_host_ops>(), align_of::<HostOps>());
    for &(field, c_offset, rust_offset, c_size, rust_size) in &fields {
        assert_eq!(c_offset, rust_offset, "offset of {field}");
        assert_eq!(c_size, rust_size, "size of {field}");
    }
    // The list is complete: the fields tile the struct, in order.
    let mut next = 0;
    for &(field, offset, _, size, _) in &fields {
        assert_eq!(offset, next, "{field} follows the field before it");
        next = offset + size;
    }
    assert_eq!(next, size_of::<sys::lkl_host_ops>(), "no field missing");
}
