//! Kernel addresses to functions and source lines, from the debug
//! information of the kernel library the kernel was loaded from.
//!
//! The kernel prints code addresses in its reports: as `function+off/size`
//! where it has a symbol table (kallsyms: the debug and race kernels), as
//! bare hexadecimal otherwise. [`Image::annotate`] appends the source
//! location to each, `(kernel/hello.c:72)`, when the library carries line
//! tables (the debug and race kernels are built with them).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use object::{Object, ObjectSymbol, SymbolKind};
use regex::Regex;

/// A kernel frame as kallsyms prints it: `function+0xoffset/0xsize`.
static SYMBOL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b([A-Za-z_][A-Za-z0-9_.]*)\+0x([0-9a-f]+)/0x([0-9a-f]+)")
        .expect("a valid pattern")
});

/// Where a code address is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    /// The function (innermost, when inlined).
    pub function: Option<String>,
    /// The source file, relative to the kernel tree when it is in it.
    pub file: Option<String>,
    /// The line.
    pub line: Option<u32>,
}

impl Place {
    /// `file:line`, if known.
    pub fn location(&self) -> Option<String> {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => Some(format!("{file}:{line}")),
            (Some(file), None) => Some(file.clone()),
            _ => None,
        }
    }
}

/// A loaded kernel library (or the executable that links the kernel):
/// its file, where it is mapped, its line tables and its functions.
pub struct Image {
    /// The mapped file.
    pub path: PathBuf,
    /// Its load bias: the runtime address of virtual address 0.
    bias: usize,
    loader: addr2line::Loader,
    /// Function name → (address, size), several for static functions.
    functions: HashMap<String, Vec<(u64, u64)>>,
    /// Source paths are shown relative to this tree.
    tree: PathBuf,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Image")
            .field("path", &self.path)
            .field("bias", &format_args!("{:#x}", self.bias))
            .finish()
    }
}

impl Image {
    /// The image of the file at `path`, mapped with load bias `bias`.
    pub fn load(path: &Path, bias: usize) -> Result<Image, String> {
        let loader = addr2line::Loader::new(path).map_err(|e| {
            format!(
                "cannot read the debug information of {}: {e}",
                path.display()
            )
        })?;
        let data =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let file = object::File::parse(&*data)
            .map_err(|e| format!("cannot parse {}: {e}", path.display()))?;
        let mut functions: HashMap<String, Vec<(u64, u64)>> = HashMap::new();
        for symbol in file.symbols() {
            if symbol.kind() != SymbolKind::Text || symbol.size() == 0 {
                continue;
            }
            if let Ok(name) = symbol.name() {
                functions
                    .entry(name.to_string())
                    .or_default()
                    .push((symbol.address(), symbol.size()));
            }
        }
        Ok(Image {
            path: path.to_path_buf(),
            bias,
            loader,
            functions,
            tree: std::fs::canonicalize(env!("LKL_SOURCE_TREE"))
                .unwrap_or_else(|_| PathBuf::from(env!("LKL_SOURCE_TREE"))),
        })
    }

    /// The place of the runtime code address `addr`.
    pub fn place(&self, addr: usize) -> Option<Place> {
        let probe = addr.checked_sub(self.bias)? as u64;
        self.place_of_probe(probe)
    }

    fn place_of_probe(&self, probe: u64) -> Option<Place> {
        let function = self
            .loader
            .find_symbol(probe)
            .map(|name| addr2line::demangle_auto(name.into(), None).into_owned());
        let location = self.loader.find_location(probe).ok().flatten();
        if function.is_none() && location.is_none() {
            return None;
        }
        // Kernel sources relative to the kernel tree, the harness's to
        // the project.
        let file = location.as_ref().and_then(|l| l.file).map(|f| {
            let f = Path::new(f);
            f.strip_prefix(&self.tree)
                .or_else(|_| f.strip_prefix(env!("CARGO_MANIFEST_DIR")))
                .unwrap_or(f)
                .display()
                .to_string()
        });
        Some(Place {
            function,
            file,
            line: location.and_then(|l| l.line),
        })
    }

    /// The place of `function+offset`, as kallsyms prints it; `size`
    /// tells apart static functions of one name.
    pub fn place_of_symbol(&self, function: &str, offset: u64, size: Option<u64>) -> Option<Place> {
        let candidates = self.functions.get(function)?;
        let (addr, _) = candidates
            .iter()
            .find(|(_, s)| size.is_none_or(|size| *s == size))
            .or_else(|| candidates.first())?;
        let mut place = self.place_of_probe(addr + offset)?;
        place.function = Some(function.to_string());
        Some(place)
    }

    /// The source location of a frame that [`SYMBOL`] matched,
    /// `function+offset/size`: its offset is a return address, so the
    /// call is the instruction before.
    fn frame_location(&self, frame: &regex::Captures<'_>) -> Option<String> {
        let offset = u64::from_str_radix(&frame[2], 16).unwrap_or(0);
        let size = u64::from_str_radix(&frame[3], 16).ok();
        self.place_of_symbol(&frame[1], offset.saturating_sub(1), size)
            .and_then(|p| p.location())
    }

    /// `text` with a source location right after each kernel frame that
    /// has none (`sys_hello+0x9f/0x1c0` becomes `sys_hello+0x9f/0x1c0
    /// (kernel/hello.c:72)`), wherever it is: in the strings a failed
    /// assertion quotes too, inside their quotes. [`annotate`](Self::annotate)
    /// puts the locations at the end of each line instead.
    pub fn annotate_frames(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for m in SYMBOL.captures_iter(text) {
            let end = m.get(0).map_or(last, |whole| whole.end());
            out.push_str(&text[last..end]);
            last = end;
            if text[last..].starts_with(" (") {
                continue;
            }
            if let Some(location) = self.frame_location(&m) {
                out.push_str(&format!(" ({location})"));
            }
        }
        out.push_str(&text[last..]);
        out
    }

    /// `text` with the source location appended to every code address in
    /// it: `sys_hello+0x9f/0x1c0` becomes `sys_hello+0x9f/0x1c0
    /// (kernel/hello.c:72)`, and a bare `0x7f12...` becomes `0x7f12...
    /// hello_rendezvous (kernel/hello.c:40)`.
    pub fn annotate(&self, text: &str) -> String {
        self.annotate_with(text, None)
    }

    /// [`annotate`](Self::annotate), trying `host` (the test program) for
    /// the addresses this image does not know: the host frames of a trace.
    pub fn annotate_with(&self, text: &str, host: Option<&Image>) -> String {
        static ADDRESS: LazyLock<Regex> =
            LazyLock::new(|| Regex::new(r"\b0x([0-9a-f]{9,16})\b").expect("a valid pattern"));
        let mut out = String::with_capacity(text.len());
        for line in text.split_inclusive('\n') {
            let (body, newline) = match line.strip_suffix('\n') {
                Some(body) => (body, "\n"),
                None => (line, ""),
            };
            let mut notes = Vec::new();
            for m in SYMBOL.captures_iter(body) {
                if let Some(location) = self.frame_location(&m) {
                    notes.push(location);
                }
            }
            if notes.is_empty() {
                // A frame line holds nothing but its address, a return
                // address: the call is the instruction before. Any other
                // address (of data, say) is taken as it is.
                let frame = ADDRESS.is_match(body)
                    && ADDRESS
                        .replace_all(body, "")
                        .trim_start_matches(['[', ' '])
                        .trim()
                        .is_empty();
                for m in ADDRESS.captures_iter(body) {
                    let Ok(addr) = usize::from_str_radix(&m[1], 16) else {
                        continue;
                    };
                    let addr = addr - usize::from(frame);
                    if let Some(place) = self.place(addr).or_else(|| host?.place(addr)) {
                        let mut note = place.function.clone().unwrap_or_default();
                        if let Some(location) = place.location() {
                            note.push_str(&format!(" {location}"));
                        }
                        notes.push(note.trim().to_string());
                    }
                }
            }
            out.push_str(body);
            if !notes.is_empty() {
                out.push_str(&format!(" ({})", notes.join("; ")));
            }
            out.push_str(newline);
        }
        out
    }
}

/// Runs `f` with the image of this program (the test executable), loaded
/// once per process.
pub fn with_program<R>(f: impl FnOnce(Option<&Image>) -> R) -> R {
    static PROGRAM: LazyLock<parking_lot::Mutex<Option<Option<Image>>>> =
        LazyLock::new(|| parking_lot::Mutex::new(None));
    let mut program = PROGRAM.lock();
    let image = program.get_or_insert_with(|| {
        let path = std::env::current_exe().ok()?;
        let bias = program_bias()?;
        Image::load(&path, bias).ok()
    });
    f(image.as_ref())
}

/// The load bias of this program: the first object `dl_iterate_phdr`
/// reports.
fn program_bias() -> Option<usize> {
    unsafe extern "C" fn first(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: dl_iterate_phdr passes a valid info for the duration of
        // the call, and `data` is the &mut usize given below.
        unsafe { *data.cast::<usize>() = (*info).dlpi_addr as usize };
        1
    }
    let mut bias = usize::MAX;
    // SAFETY: `first` matches the callback type and only writes `bias`,
    // which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(first), (&mut bias as *mut usize).cast()) };
    (bias != usize::MAX).then_some(bias)
}
