//! The hello() contract (lkl/patches/0001-*, kernel/hello.c), row by row,
//! through the real kernel: each row checks the result and what the call
//! added to the kernel log.

mod common;

use std::ffi::CString;

use common::{boot, finish, gettid, greetings, logged, texts, HELLO_NAME_PRINTED_MAX, KERN_INFO};
use lkl_harness::hello::{HelloArgs, HELLO_ARGS_SIZE_VER0, HELLO_FLAG_LOUD};
use lkl_harness::{Caller, Errno, Kernel, Record};

/// The name a row passes.
#[derive(Clone, Copy, Debug)]
enum Name {
    /// A NUL-terminated string.
    Str(&'static str),
    /// `len` bytes of a repeating `a..z0..9` pattern, NUL-terminated.
    Long(usize),
    /// `args.name = 0`.
    Null,
}

impl Name {
    fn bytes(self) -> Option<Vec<u8>> {
        const PATTERN: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        match self {
            Name::Str(s) => Some(s.as_bytes().to_vec()),
            Name::Long(len) => Some(PATTERN.iter().copied().cycle().take(len).collect()),
            Name::Null => None,
        }
    }
}

/// One call of hello(): the struct at the start of a zeroed buffer of
/// `max(size, 16)` bytes (or NULL), with an optional non-zero byte.
#[derive(Clone, Copy, Debug)]
struct Input {
    uargs_null: bool,
    size: usize,
    flags: u32,
    pad: u32,
    name: Name,
    /// Offset in the buffer of a non-zero byte (past the struct).
    nonzero_at: Option<usize>,
}

/// The valid call every row departs from.
const VALID: Input = Input {
    uargs_null: false,
    size: HELLO_ARGS_SIZE_VER0,
    flags: 0,
    pad: 0,
    name: Name::Str("world"),
    nonzero_at: None,
};

impl Input {
    /// What the contract says the call logs when it succeeds.
    fn greetings(&self) -> Vec<String> {
        let name = self.name.bytes().expect("a successful call has a name");
        greetings(&name, self.flags & HELLO_FLAG_LOUD != 0)
    }
}

/// Makes the call; returns its result and the records it logged.
fn perform(kernel: &Kernel, input: Input) -> (Result<(), Errno>, Vec<Record>) {
    let name = input
        .name
        .bytes()
        .map(|b| CString::new(b).expect("no NUL in names"));
    let name_ptr = name.as_ref().map_or(0, |n| n.as_ptr() as usize);
    let args = HelloArgs::raw(input.flags, input.pad, name_ptr);
    let len = input
        .size
        .max(HELLO_ARGS_SIZE_VER0)
        .max(input.nonzero_at.map_or(0, |at| at + 1));
    let mut buf = vec![0u8; len];
    buf[..HELLO_ARGS_SIZE_VER0].copy_from_slice(&args.to_bytes());
    if let Some(at) = input.nonzero_at {
        assert!(
            at >= HELLO_ARGS_SIZE_VER0,
            "the non-zero byte is past the struct"
        );
        buf[at] = 0x5a;
    }
    let uargs = if input.uargs_null {
        0
    } else {
        buf.as_ptr() as usize
    };
    // SAFETY: `buf` (at least `input.size` long, or NULL) and `name` are
    // ours, only read by hello(2), and written by no one during the call.
    let out = logged(kernel, || unsafe { kernel.hello_raw(uargs, input.size) });
    drop(name);
    out
}

/// The call succeeded and logged exactly its greetings, at KERN_INFO, from
/// the calling thread's task.
fn assert_greeted(kernel: &Kernel, row: &str, input: Input) {
    let (result, records) = perform(kernel, input);
    assert_eq!(result, Ok(()), "{row}: {input:?}");
    assert_eq!(texts(&records), input.greetings(), "{row}: {input:?}");
    let tid = u32::try_from(gettid(kernel)).expect("a tid");
    for record in &records {
        assert_eq!(record.level, KERN_INFO, "{row}: {record:?}");
        assert_eq!(record.caller, Some(Caller::Task(tid)), "{row}: {record:?}");
    }
}

/// The call failed with `errno` and logged nothing.
fn assert_refused(kernel: &Kernel, row: &str, input: Input, errno: Errno) {
    let (result, records) = perform(kernel, input);
    assert_eq!(result, Err(errno), "{row}: {input:?}");
    assert!(records.is_empty(), "{row}: logged {records:?}");
}

#[test]
fn valid_call_logs_hello_world_once_at_info() {
    let kernel = boot();
    let (result, records) = perform(&kernel, VALID);
    assert_eq!(result, Ok(()));
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].text, "Hello, world!");
    assert_eq!(records[0].level, KERN_INFO);
    // The typed wrapper makes the same call.
    let name = c"world";
    let (result, records) = logged(&kernel, || kernel.hello(&HelloArgs::new(name, 0)));
    assert_eq!(result, Ok(()));
    assert_eq!(texts(&records), ["Hello, world!"]);
    assert_greeted(&kernel, "valid", VALID);
    finish(kernel);
}

#[test]
fn loud_flag_logs_hello_then_shouted_hello_and_nothing_else() {
    let kernel = boot();
    let loud = Input {
        flags: HELLO_FLAG_LOUD,
        ..VALID
    };
    let (result, records) = perform(&kernel, loud);
    assert_eq!(result, Ok(()));
    assert_eq!(texts(&records), ["Hello, world!", "HELLO, world!!!"]);
    assert!(records.iter().all(|r| r.level == KERN_INFO), "{records:?}");
    assert_greeted(&kernel, "loud", loud);
    finish(kernel);
}

#[test]
fn size_below_ver0_is_einval() {
    let kernel = boot();
    for size in [0, 8, HELLO_ARGS_SIZE_VER0 - 1] {
        assert_refused(
            &kernel,
            &format!("size {size}"),
            Input { size, ..VALID },
            Errno::EINVAL,
        );
    }
    finish(kernel);
}

#[test]
fn size_below_ver0_is_einval_before_uargs_is_read() {
    let kernel = boot();
    for size in [0, 8, HELLO_ARGS_SIZE_VER0 - 1] {
        let input = Input {
            size,
            uargs_null: true,
            ..VALID
        };
        assert_refused(&kernel, &format!("NULL, size {size}"), input, Errno::EINVAL);
    }
    finish(kernel);
}

#[test]
fn size_above_struct_with_zero_tail_greets() {
    let kernel = boot();
    for size in [17, 24, 4096, 4097, 3 * 4096] {
        assert_greeted(&kernel, &format!("size {size}"), Input { size, ..VALID });
    }
    finish(kernel);
}

#[test]
fn size_above_struct_with_nonzero_tail_is_e2big() {
    let kernel = boot();
    for (size, at) in [(17, 16), (24, 16), (24, 23), (4096, 16), (4096, 4095)] {
        let input = Input {
            size,
            nonzero_at: Some(at),
            ..VALID
        };
        assert_refused(
            &kernel,
            &format!("size {size}, byte {at}"),
            input,
            Errno::E2BIG,
        );
    }
    finish(kernel);
}

#[test]
fn bytes_past_size_are_not_read() {
    let kernel = boot();
    for (size, at) in [(16, 16), (24, 24), (4096, 4096)] {
        let input = Input {
            size,
            nonzero_at: Some(at),
            ..VALID
        };
        assert_greeted(&kernel, &format!("size {size}, byte {at}"), input);
    }
    finish(kernel);
}

#[test]
fn unknown_flag_bits_are_einval() {
    let kernel = boot();
    let mut rows: Vec<(String, u32)> = Vec::new();
    for bit in 1..32 {
        rows.push((format!("bit {bit}"), 1 << bit));
        rows.push((format!("bit {bit} | LOUD"), 1 << bit | HELLO_FLAG_LOUD));
    }
    rows.push(("0xdeadbeef".into(), 0xdead_beef));
    rows.push(("all bits".into(), u32::MAX));
    for (row, flags) in rows {
        assert_refused(&kernel, &row, Input { flags, ..VALID }, Errno::EINVAL);
    }
    finish(kernel);
}

#[test]
fn nonzero_pad_is_einval() {
    let kernel = boot();
    for pad in [1, 0x100, 0x8000_0000, u32::MAX] {
        assert_refused(
            &kernel,
            &format!("pad {pad:#x}"),
            Input { pad, ..VALID },
            Errno::EINVAL,
        );
    }
    finish(kernel);
}

#[test]
fn null_name_is_efault() {
    let kernel = boot();
    for flags in [0, HELLO_FLAG_LOUD] {
        let input = Input {
            name: Name::Null,
            flags,
            ..VALID
        };
        assert_refused(&kernel, "NULL name", input, Errno::EFAULT);
    }
    finish(kernel);
}

#[test]
fn null_uargs_is_efault() {
    let kernel = boot();
    for size in [HELLO_ARGS_SIZE_VER0, 24, 4096] {
        let input = Input {
            uargs_null: true,
            size,
            ..VALID
        };
        assert_refused(&kernel, &format!("NULL, size {size}"), input, Errno::EFAULT);
    }
    finish(kernel);
}

#[test]
fn names_of_63_bytes_or_more_are_cut_to_the_first_63() {
    let kernel = boot();
    for len in [62, 63, 64, 65, 200] {
        for flags in [0, HELLO_FLAG_LOUD] {
            let input = Input {
                name: Name::Long(len),
                flags,
                ..VALID
            };
            let (result, records) = perform(&kernel, input);
            assert_eq!(result, Ok(()), "name of {len}");
            let full = Name::Long(len).bytes().expect("a name");
            let cut =
                String::from_utf8(full[..len.min(HELLO_NAME_PRINTED_MAX)].to_vec()).expect("ASCII");
            let mut want = vec![format!("Hello, {cut}!")];
            if flags != 0 {
                want.push(format!("HELLO, {cut}!!!"));
            }
            assert_eq!(texts(&records), want, "name of {len}");
        }
    }
    finish(kernel);
}

#[test]
fn empty_name_greets_nobody() {
    let kernel = boot();
    let (result, records) = perform(
        &kernel,
        Input {
            name: Name::Str(""),
            ..VALID
        },
    );
    assert_eq!(result, Ok(()));
    assert_eq!(texts(&records), ["Hello, !"]);
    finish(kernel);
}

#[test]
fn errno_contract_table() {
    use Errno as E;
    let ok = Ok(());
    let rows: Vec<(&str, Input, Result<(), Errno>)> = vec![
        ("valid", VALID, ok),
        (
            "loud",
            Input {
                flags: HELLO_FLAG_LOUD,
                ..VALID
            },
            ok,
        ),
        ("size 0", Input { size: 0, ..VALID }, Err(E::EINVAL)),
        ("size 15", Input { size: 15, ..VALID }, Err(E::EINVAL)),
        ("size 24, zero tail", Input { size: 24, ..VALID }, ok),
        (
            "size 24, non-zero tail",
            Input {
                size: 24,
                nonzero_at: Some(16),
                ..VALID
            },
            Err(E::E2BIG),
        ),
        ("flag bit 1", Input { flags: 2, ..VALID }, Err(E::EINVAL)),
        (
            "flags 0xdeadbeef",
            Input {
                flags: 0xdead_beef,
                ..VALID
            },
            Err(E::EINVAL),
        ),
        ("pad 1", Input { pad: 1, ..VALID }, Err(E::EINVAL)),
        (
            "NULL name",
            Input {
                name: Name::Null,
                ..VALID
            },
            Err(E::EFAULT),
        ),
        (
            "NULL uargs",
            Input {
                uargs_null: true,
                ..VALID
            },
            Err(E::EFAULT),
        ),
        (
            "name of 200",
            Input {
                name: Name::Long(200),
                ..VALID
            },
            ok,
        ),
        (
            "empty name",
            Input {
                name: Name::Str(""),
                ..VALID
            },
            ok,
        ),
        // Which check comes first, as kernel/hello.c orders them: size,
        // then the struct copy (tail, then the struct), then flags, pad,
        // and the name last.
        (
            "size 0 before NULL uargs",
            Input {
                size: 0,
                uargs_null: true,
                ..VALID
            },
            Err(E::EINVAL),
        ),
        (
            "non-zero tail before bad flags",
            Input {
                size: 24,
                nonzero_at: Some(20),
                flags: 2,
                ..VALID
            },
            Err(E::E2BIG),
        ),
        (
            "bad flags before NULL name",
            Input {
                flags: 2,
                name: Name::Null,
                ..VALID
            },
            Err(E::EINVAL),
        ),
        (
            "non-zero pad before NULL name",
            Input {
                pad: 1,
                name: Name::Null,
                ..VALID
            },
            Err(E::EINVAL),
        ),
    ];

    let kernel = boot();
    let mut expected = Vec::new();
    let mut actual = Vec::new();
    for (row, input, want) in &rows {
        let (result, records) = perform(&kernel, *input);
        expected.push((
            *row,
            *want,
            want.map(|()| input.greetings()).unwrap_or_default(),
        ));
        actual.push((*row, result, texts(&records)));
    }
    assert_eq!(actual, expected);
    finish(kernel);
}
