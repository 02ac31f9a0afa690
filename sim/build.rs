//! Compiles the one piece of the host that cannot be Rust: the fault-safe
//! copy, which needs sigsetjmp (returning twice is not expressible in Rust).

fn main() {
    println!("cargo:rerun-if-changed=csrc/fault_copy.c");
    cc::Build::new()
        .file("csrc/fault_copy.c")
        .warnings(true)
        .extra_warnings(true)
        .compile("lkl_sim_fault");
}
