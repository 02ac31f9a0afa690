//! The page arena a halted kernel gives back goes to the next kernel of
//! its size, as it was left (`lkl_sim::mem::mem_alloc`): a kernel must
//! boot and work on memory full of garbage, as a machine's memory is at
//! boot.
//!
//! The only test in its binary: no other kernel may take the arena in
//! between.

mod common;

use common::{arena, boot, finish, greetings, logged, mount_proc, read_file, texts};
use lkl_harness::hello::HelloArgs;

#[test]
fn a_kernel_boots_and_works_on_the_garbage_its_predecessor_left() {
    let first = boot();
    let (start, len) = arena(&first);
    assert_eq!(first.hello(&HelloArgs::new(c"first", 0)), Ok(()));
    finish(first);

    // Not only what the first kernel left: every byte is garbage.
    // SAFETY: [start, start + len) is the arena the halted kernel gave
    // back. The host keeps it mapped, read/write, for the next kernel of
    // its size, and nothing uses it meanwhile: this is the binary's only
    // test, and no kernel runs.
    unsafe { std::ptr::write_bytes(start as *mut u8, 0xa5, len) };

    let second = boot();
    assert_eq!(
        arena(&second),
        (start, len),
        "the second kernel did not get the first one's arena"
    );
    let (ret, records) = logged(&second, || second.hello(&HelloArgs::new(c"second", 0)));
    assert_eq!(ret, Ok(()));
    assert_eq!(texts(&records), greetings(b"second", false));
    // Memory handed out and back: a file written and read, procfs.
    let data = vec![0x3cu8; 3 * 4096 + 17];
    let fd = second
        .open(c"/file", (libc::O_CREAT | libc::O_RDWR) as u32, 0o600)
        .expect("create /file");
    assert_eq!(second.write(fd, &data), Ok(data.len()));
    second.close(fd).expect("close");
    let fd = second
        .open(c"/file", libc::O_RDONLY as u32, 0)
        .expect("open /file");
    let mut back = vec![0u8; data.len() + 1];
    assert_eq!(second.read(fd, &mut back), Ok(data.len()));
    assert_eq!(&back[..data.len()], &data[..]);
    second.close(fd).expect("close");
    mount_proc(&second);
    let meminfo = read_file(&second, "/proc/meminfo");
    assert!(meminfo.starts_with("MemTotal:"), "{meminfo}");
    finish(second);
}
