//! Seeded kernels: kernels other than the one this crate links, built on
//! demand into build directories of their own ([`crate::kbuild`]).
//!
//! A seeded kernel is a variant ([`Variant`]) with patches applied on top
//! of `lkl/patches/`: a mutant from `lkl/mutants/` (a deliberate bug that
//! a test or `mutants` must catch) or test-only kernel code from
//! `lkl/test-patches/`. The first build of a variant is a full one; a
//! mutant then costs a copy of its variant's build directory and the
//! files it changes.
//!
//! ```no_run
//! use lkl_harness::{seeded, BootOptions, Kernel};
//!
//! let racy = seeded::with_mutant("shared-buffer-race");
//! let kernel = Kernel::boot_seeded(&racy, BootOptions::default()).unwrap();
//! # drop(kernel);
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

use crate::kbuild::{Cache, Spec, Variant};

/// The kernel cache this crate was built from.
pub fn cache() -> Cache {
    let own = env!("LKL_OWN_TREE");
    Cache {
        manifest: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        dir: PathBuf::from(env!("LKL_CACHE_DIR")),
        own_tree: (!own.is_empty()).then(|| PathBuf::from(own)),
        report: |message| eprintln!("lkl-harness: {message}"),
        jobserver: None,
    }
}

/// The variant this crate was built with (`LKL_KERNEL`).
pub fn this_variant() -> Variant {
    Variant::from_name(crate::KERNEL_VARIANT).expect("build.rs checked LKL_KERNEL")
}

/// `lkl/mutants/<name>.patch`.
pub fn mutant_patch(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("lkl/mutants/{name}.patch"))
}

/// `lkl/fuzz-mutants/<name>.patch`: seeded bugs the fixed tests miss and
/// `lkl-harness fuzz` finds.
pub fn fuzz_mutant_patch(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("lkl/fuzz-mutants/{name}.patch"))
}

/// `lkl/test-patches/<name>.patch`.
pub fn test_patch(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("lkl/test-patches/{name}.patch"))
}

/// This crate's variant with the mutant `lkl/mutants/<name>.patch`.
pub fn with_mutant(name: &str) -> Spec {
    Spec {
        variant: this_variant(),
        mutants: vec![mutant_patch(name)],
        coverage: false,
    }
}

/// This crate's variant with the test-only `lkl/test-patches/<name>.patch`.
pub fn with_test_patch(name: &str) -> Spec {
    Spec {
        variant: this_variant(),
        mutants: vec![test_patch(name)],
        coverage: false,
    }
}

/// What this process has built, or failed to build.
static BUILT: LazyLock<Mutex<HashMap<Spec, Result<PathBuf, String>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Builds `spec` if it is not up to date, once per process, and returns
/// its `liblkl.so`. Builds take the cache's lock, so concurrent tests and
/// processes build one at a time.
pub fn build(spec: &Spec) -> Result<PathBuf, String> {
    build_side_by_side(std::slice::from_ref(spec)).remove(0)
}

/// [`build`] for several specs with the same mutants (one mutant on
/// several kernel variants), whose makes run side by side (see
/// [`Cache::build_side_by_side`]).
pub fn build_side_by_side(specs: &[Spec]) -> Vec<Result<PathBuf, String>> {
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let missing: Vec<Spec> = specs
        .iter()
        .filter(|spec| !built.contains_key(spec))
        .cloned()
        .collect();
    if !missing.is_empty() {
        let absent = missing
            .iter()
            .flat_map(|spec| &spec.mutants)
            .find(|patch| !patch.is_file());
        let results: Vec<Result<PathBuf, String>> = match absent {
            Some(patch) => vec![Err(format!("no patch {}", patch.display())); missing.len()],
            None => {
                let cache = cache();
                match cache
                    .lock()
                    .and_then(|lock| cache.build_side_by_side(&missing, &lock))
                {
                    Ok(libraries) => libraries
                        .into_iter()
                        .map(|b| Ok(b.shared_library))
                        .collect(),
                    Err(e) => vec![Err(e); missing.len()],
                }
            }
        };
        for (spec, result) in missing.into_iter().zip(results) {
            built.insert(spec, result);
        }
    }
    specs.iter().map(|spec| built[spec].clone()).collect()
}
