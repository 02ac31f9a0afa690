//! Kernel work trees: a git repository of the pristine Linux 6.12 source
//! with the patches of `lkl/patches/` applied as commits, ready to edit,
//! to build as it is (`LINUX_SRC=DIR cargo test`) and to export back as
//! the patch series (`lkl-harness worktree DIR --export`).
//!
//! ```text
//! lkl-base   (tag)  the pristine source, as the kernel cache unpacked it
//! 0001 .. 000N      lkl/patches/*.patch, one commit each (git am)
//! ...               your commits
//! ```
//!
//! [`export`] writes `git format-patch lkl-base..HEAD` into the series
//! directory. A patch whose text did not change (leaving aside what
//! `format-patch` varies from one run to the next: the commit id, the
//! `[PATCH n/m]` prefix, abbreviated blob ids, the signature) keeps its
//! file untouched, so its timestamp, and the kernel's view of it, stay
//! as they were: make rebuilds only what the changed patches touch.
//!
//! ```no_run
//! use std::path::Path;
//! use lkl_harness::worktree;
//!
//! let source = Path::new("target/lkl/source/linux-source-6.12");
//! let made = worktree::create(source, Path::new("lkl/patches"), Path::new("/tmp/linux"), &|m| {
//!     eprintln!("{m}")
//! })?;
//! println!("{} commits after {}", made.patches.len(), worktree::BASE_TAG);
//! // ... edit and commit in /tmp/linux ...
//! let exported = worktree::export(Path::new("/tmp/linux"), Path::new("lkl/patches"), false)?;
//! println!("{} patches written", exported.written.len());
//! # Ok::<(), worktree::Error>(())
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, UNIX_EPOCH};

use serde::Serialize;

use crate::kbuild;

/// The tag on the pristine source: `git format-patch lkl-base..HEAD` is
/// the series.
pub const BASE_TAG: &str = "lkl-base";
/// The branch the work tree is on.
pub const BRANCH: &str = "main";
/// The record that marks a work tree as made by this module, in `.git/`:
/// where it came from, and the series it last matched.
const RECORD: &str = "lkl-harness";
/// In `.git/` while [`create`] copies the source and commits it: a work
/// tree that has it was interrupted, and is not one to edit.
const UNFINISHED: &str = "lkl-harness-unfinished";
/// Who commits the pristine source (and applies the patches when git has
/// no identity configured).
const IDENTITY: (&str, &str) = ("lkl-harness", "lkl-harness@example.org");
/// Settings for a repository of 86,000 files: no line-ending conversion,
/// and no automatic `git gc` (the pristine source is 86,000 loose objects;
/// an automatic gc after a commit would repack them all, for minutes).
const REPO_CONFIG: &[(&str, &str)] = &[("core.autocrlf", "false"), ("gc.auto", "0")];

/// What went wrong, and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The directory to make holds something else.
    #[error(
        "{} exists and is not a work tree made by `lkl-harness worktree` (it is not empty \
         and has no .git/{RECORD}); name a new or empty directory",
        dir.display()
    )]
    NotOurs {
        /// The directory.
        dir: PathBuf,
    },
    /// The directory is a work tree already.
    #[error(
        "{} is a work tree made by `lkl-harness worktree` already: edit and commit in it, and \
         export with `lkl-harness worktree {} --export`; to start again, remove it (rm -rf {})",
        dir.display(), sh(dir), sh(dir)
    )]
    AlreadyMade {
        /// The directory.
        dir: PathBuf,
    },
    /// A `create` that did not finish (interrupted, or it failed before
    /// the patches): the source or its first commit may be partial.
    #[error(
        "{} is a work tree whose making did not finish (it was interrupted, or failed before \
         applying the patches), so its source or base commit may be partial: remove it \
         (rm -rf {}) and make it again (lkl-harness worktree {})",
        dir.display(), sh(dir), sh(dir)
    )]
    Unfinished {
        /// The directory.
        dir: PathBuf,
    },
    /// `--export` of a directory this module did not make.
    #[error(
        "{} is not a work tree made by `lkl-harness worktree` (no .git/{RECORD}); make one with \
         `lkl-harness worktree {}`",
        dir.display(), sh(dir)
    )]
    NotAWorktree {
        /// The directory.
        dir: PathBuf,
    },
    /// A patch of the series does not apply.
    #[error(
        "patch {} does not apply on top of the patches before it ({} is at the last one that \
         applied, with `git am` stopped at this one):\n{output}\nEither resolve it there \
         (git -C {} am --show-current-patch=diff; fix the files; git -C {} add -A; \
         git -C {} am --continue), or fix the patch file and make the work tree again \
         (rm -rf {})",
        patch.display(), dir.display(), sh(dir), sh(dir), sh(dir), sh(dir)
    )]
    PatchFailed {
        /// The patch file.
        patch: PathBuf,
        /// The work tree.
        dir: PathBuf,
        /// What `git am` said.
        output: String,
    },
    /// `git am` has not finished.
    #[error(
        "{} is in the middle of a `git am` or a rebase: finish it (git -C {} am --continue, \
         or git -C {} rebase --continue) or abort it (am --abort, rebase --abort), then export",
        dir.display(), sh(dir), sh(dir)
    )]
    AmInProgress {
        /// The work tree.
        dir: PathBuf,
    },
    /// HEAD is not a branch: the history it points at may be partial.
    #[error(
        "{}'s HEAD is detached, so its history may be part of the series only: check the \
         branch out again (git -C {} checkout -), then export",
        dir.display(), sh(dir)
    )]
    Detached {
        /// The work tree.
        dir: PathBuf,
    },
    /// Changes that would not be exported.
    #[error(
        "{} has changes that are not committed, which the export would leave out:\n{files}\
         Commit them (git -C {} add -A && git -C {} commit) or stash them (git -C {} stash \
         -u), then export again",
        dir.display(), sh(dir), sh(dir), sh(dir)
    )]
    Uncommitted {
        /// The work tree.
        dir: PathBuf,
        /// `git status --short`, one line per file.
        files: String,
    },
    /// Nothing after the base.
    #[error(
        "{} has no commits after {BASE_TAG}: there is no series to export (the harness \
         needs at least hello())",
        dir.display()
    )]
    Empty {
        /// The work tree.
        dir: PathBuf,
    },
    /// The series directory changed since the work tree was made.
    #[error(
        "{} changed since {} was made from it or last exported ({changes}): the export would \
         replace that change. Bring it into the work tree (git -C {} am <the new patch>, or \
         redo the change there and commit), then export with --force; or, to drop the \
         change, export with --force now",
        patches.display(), dir.display(), sh(dir)
    )]
    PatchesChanged {
        /// The series directory.
        patches: PathBuf,
        /// The work tree.
        dir: PathBuf,
        /// Which files, and how.
        changes: String,
    },
    /// A git command failed.
    #[error("`git {args}` failed in {}:\n{output}", dir.display())]
    Git {
        /// The repository.
        dir: PathBuf,
        /// Its arguments.
        args: String,
        /// What it said.
        output: String,
    },
    /// A tool is missing, or the kernel source could not be had.
    #[error("{0}")]
    Setup(String),
    /// A file operation failed.
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        /// What was tried.
        what: &'static str,
        /// On what.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
}

/// Results of this module.
pub type Result<T> = std::result::Result<T, Error>;

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { what, path, source }
}

/// A work tree that was made.
#[derive(Clone, Debug, Serialize)]
pub struct Made {
    /// The work tree (absolute).
    pub dir: PathBuf,
    /// The kernel release of the source, `6.12.117`.
    pub release: String,
    /// The commit tagged [`BASE_TAG`].
    pub base: String,
    /// The patches applied, one commit each, in order.
    pub patches: Vec<PathBuf>,
    /// How long it took, in seconds.
    pub seconds: f64,
}

/// What an export did to the series directory.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Exported {
    /// Patches whose text did not change: their files were not touched.
    pub kept: Vec<PathBuf>,
    /// Patches written (new, or changed).
    pub written: Vec<PathBuf>,
    /// Files of the old series that are no longer in it.
    pub removed: Vec<PathBuf>,
}

/// Makes `dir` a git work tree: the kernel source at `source` as one
/// commit tagged [`BASE_TAG`], then every `*.patch` of `patches` (in name
/// order) as a commit of its own, applied with `git am`. `dir` must not
/// exist or be empty. `progress` hears what takes time.
pub fn create(source: &Path, patches: &Path, dir: &Path, progress: &dyn Fn(&str)) -> Result<Made> {
    let started = Instant::now();
    let dir = check_new(dir)?;
    let patches = &fs::canonicalize(patches).map_err(io("find", patches))?;
    let series = kbuild::patch_files(patches).map_err(Error::Setup)?;
    let release = kbuild::source_release(source)
        .map(|(a, b, c)| format!("{a}.{b}.{c}"))
        .ok_or_else(|| {
            Error::Setup(format!(
                "{} is not a kernel source tree (no VERSION, PATCHLEVEL and SUBLEVEL in its \
                 Makefile)",
                source.display()
            ))
        })?;

    fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    let dir = fs::canonicalize(&dir).map_err(io("find", &dir))?;
    git(&dir, &["init", "-q", "-b", BRANCH])?;
    for (key, value) in REPO_CONFIG {
        git(&dir, &["config", key, value])?;
    }
    // Ours from here on: a second try says so instead of "not empty",
    // and, until the base is tagged, that this one did not finish.
    let unfinished = dir.join(".git").join(UNFINISHED);
    fs::write(&unfinished, "").map_err(io("write", &unfinished))?;
    write_record(&dir, source, &release, patches, &series)?;
    // build.rs links the port into a LINUX_SRC tree as arch/lkl; it is
    // not part of the kernel's history.
    let exclude = dir.join(".git/info/exclude");
    let mut text = fs::read_to_string(&exclude).unwrap_or_default();
    text.push_str("/arch/lkl\n");
    fs::write(&exclude, text).map_err(io("write", &exclude))?;

    progress(&format!(
        "copying the {release} source from {}",
        source.display()
    ));
    // `source/.`: its hidden files too, into the directory that exists.
    kbuild::run_cmd(Command::new("cp").arg("-a").arg(source.join(".")).arg(&dir))
        .map_err(Error::Setup)?;

    unignore_new_files(&dir)?;
    progress("git add: recording every file of the source (about half a minute)");
    // -f: the tarball's files are the kernel's, those its .gitignore
    // files name included.
    git(&dir, &["add", "-A", "-f"])?;
    // The date of the release, so that the same source is the same commit.
    let date = fs::metadata(source.join("Makefile"))
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| format!("@{} +0000", d.as_secs()))
        .unwrap_or_else(|| "@0 +0000".to_string());
    let message = format!(
        "Linux {release}\n\nThe kernel source that lkl-harness applies lkl/patches/ to, without \
         the rule Debian's\npackage adds to .gitignore, which would hide every new file."
    );
    let mut commit = git_cmd(&dir);
    commit
        .args(["commit", "-q", "--no-verify", "-m", &message])
        .env("GIT_AUTHOR_NAME", IDENTITY.0)
        .env("GIT_AUTHOR_EMAIL", IDENTITY.1)
        .env("GIT_AUTHOR_DATE", &date)
        .env("GIT_COMMITTER_NAME", IDENTITY.0)
        .env("GIT_COMMITTER_EMAIL", IDENTITY.1)
        .env("GIT_COMMITTER_DATE", &date);
    run_git(&dir, &mut commit, "commit")?;
    git(&dir, &["tag", BASE_TAG])?;
    let base = git(&dir, &["rev-parse", "HEAD"])?.trim().to_string();
    // From here, a `git am` that stops (or is interrupted) is a state
    // git itself reports, and that the user can continue.
    fs::remove_file(&unfinished).map_err(io("remove", &unfinished))?;

    progress(&format!(
        "git am: {} patches of {}",
        series.len(),
        patches.display()
    ));
    let identity_configured =
        git(&dir, &["config", "user.name"]).is_ok() && git(&dir, &["config", "user.email"]).is_ok();
    // One `git am` for the whole series: one that stops at a patch and is
    // then continued (`git am --continue`) applies the patches after it.
    let mut am = git_cmd(&dir);
    am.args(["am", "-q", "--no-verify"]).args(&series);
    if !identity_configured {
        am.env("GIT_COMMITTER_NAME", IDENTITY.0)
            .env("GIT_COMMITTER_EMAIL", IDENTITY.1);
    }
    run_git(&dir, &mut am, "am").map_err(|e| match e {
        Error::Git { output, .. } => Error::PatchFailed {
            patch: stopped_at(&dir, &series),
            dir: dir.clone(),
            output,
        },
        other => other,
    })?;
    Ok(Made {
        dir,
        release,
        base,
        patches: series,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Checks that `dir` can become a work tree (it does not exist, or is an
/// empty directory) and that git is there; `dir` made absolute.
pub fn check_new(dir: &Path) -> Result<PathBuf> {
    ensure_git()?;
    let dir = std::path::absolute(dir).map_err(io("find", dir))?;
    if dir.join(".git").join(UNFINISHED).exists() {
        return Err(Error::Unfinished { dir });
    }
    if dir.join(".git").join(RECORD).is_file() {
        return Err(Error::AlreadyMade { dir });
    }
    if dir.exists() {
        let mut entries = fs::read_dir(&dir).map_err(io("read", &dir))?;
        if entries.next().is_some() {
            return Err(Error::NotOurs { dir });
        }
    }
    Ok(dir)
}

/// The patch of `series` at which a stopped `git am` in `dir` is
/// (`.git/rebase-apply/next`, counting from 1), or the first if unknown.
fn stopped_at(dir: &Path, series: &[PathBuf]) -> PathBuf {
    fs::read_to_string(dir.join(".git/rebase-apply/next"))
        .ok()
        .and_then(|next| next.trim().parse::<usize>().ok())
        .and_then(|next| series.get(next.checked_sub(1)?))
        .or(series.first())
        .cloned()
        .unwrap_or_default()
}

/// Writes the commits of the work tree `dir` after [`BASE_TAG`] into
/// `patches` as its `*.patch` series, in place of the one there: a patch
/// whose text is unchanged keeps its file untouched; a changed one keeps
/// its file name if its subject is the same; files of the old series
/// beyond the new one are removed. Refuses while `dir` has uncommitted
/// changes or an unfinished `git am`, and, unless `force`, when the
/// series in `patches` changed since `dir` was made or last exported.
pub fn export(dir: &Path, patches: &Path, force: bool) -> Result<Exported> {
    ensure_git()?;
    let dir = fs::canonicalize(dir).map_err(io("find", dir))?;
    let record_path = dir.join(".git").join(RECORD);
    let record =
        fs::read_to_string(&record_path).map_err(|_| Error::NotAWorktree { dir: dir.clone() })?;
    if dir.join(".git").join(UNFINISHED).exists() {
        return Err(Error::Unfinished { dir });
    }
    if dir.join(".git/rebase-apply").exists() || dir.join(".git/rebase-merge").exists() {
        return Err(Error::AmInProgress { dir });
    }
    if git(&dir, &["symbolic-ref", "-q", "HEAD"]).is_err() {
        return Err(Error::Detached { dir });
    }
    // Every untracked file, whatever status.showUntrackedFiles says: a
    // new source file left out would be lost.
    let status = git(&dir, &["status", "--porcelain", "--untracked-files=all"])?;
    if !status.is_empty() {
        return Err(Error::Uncommitted { dir, files: status });
    }
    let old = kbuild::patch_files(patches).map_err(Error::Setup)?;
    if !force {
        let changes = series_changes(&recorded_series(&record), &digests(&old)?);
        if !changes.is_empty() {
            return Err(Error::PatchesChanged {
                patches: patches.to_path_buf(),
                dir,
                changes: changes.join(", "),
            });
        }
    }

    let scratch = dir.join(".git/lkl-export");
    let _ = fs::remove_dir_all(&scratch);
    let scratch_arg = scratch.display().to_string();
    git(
        &dir,
        &[
            "format-patch",
            "-q",
            // Whatever the user's format.* configuration says: the
            // series is patch files only, with no cover letter, headers
            // or signature to differ from one export to the next.
            "--no-cover-letter",
            "--no-thread",
            "--no-signature",
            "--no-to",
            "--no-cc",
            "--no-signoff",
            "--suffix=.patch",
            "--no-add-header",
            "-o",
            &scratch_arg,
            &format!("{BASE_TAG}..HEAD"),
        ],
    )?;
    let new = kbuild::patch_files(&scratch).map_err(Error::Setup)?;
    if new.is_empty() {
        let _ = fs::remove_dir_all(&scratch);
        return Err(Error::Empty { dir });
    }

    // The old series by number: `0003-...` is the third patch. Two old
    // files with the same number pair with neither: both are replaced.
    let mut by_number: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for path in &old {
        by_number
            .entry(number_of(path))
            .or_default()
            .push(path.clone());
    }
    let mut exported = Exported::default();
    let mut final_series = Vec::new();
    // (text, file) of each patch to write, and the old files it replaces.
    let mut writes: Vec<(String, PathBuf)> = Vec::new();
    let mut stale: Vec<PathBuf> = Vec::new();
    for patch in &new {
        let text = fs::read_to_string(patch).map_err(io("read", patch))?;
        let previous = match by_number.remove(&number_of(patch)) {
            Some(mut paths) if paths.len() == 1 => paths.pop(),
            Some(paths) => {
                stale.extend(paths);
                None
            }
            None => None,
        };
        let previous_text = previous.as_ref().and_then(|p| fs::read_to_string(p).ok());
        if let (Some(path), Some(before)) = (&previous, &previous_text) {
            if normalized(before) == normalized(&text) {
                exported.kept.push(path.clone());
                final_series.push(path.clone());
                continue;
            }
        }
        // A changed patch keeps its file name if its subject is the same.
        let name = match (&previous, &previous_text) {
            (Some(path), Some(before)) if subject(before) == subject(&text) => path
                .file_name()
                .expect("a patch file has a name")
                .to_owned(),
            _ => patch
                .file_name()
                .expect("a patch file has a name")
                .to_owned(),
        };
        let target = patches.join(&name);
        stale.extend(previous);
        writes.push((text, target.clone()));
        final_series.push(target);
    }
    stale.extend(by_number.into_values().flatten());
    let _ = fs::remove_dir_all(&scratch);

    // Every new text is written beside the series before any file of it
    // changes: a write that fails (a full disk) leaves the series as it
    // was. Renames and removals in one directory do not fail that way.
    let partials: Vec<PathBuf> = writes
        .iter()
        .map(|(_, target)| partial_of(target))
        .collect();
    for ((text, _), partial) in writes.iter().zip(&partials) {
        if let Err(e) = fs::write(partial, text) {
            for partial in &partials {
                let _ = fs::remove_file(partial);
            }
            return Err(io("write", partial)(e));
        }
    }
    for ((_, target), partial) in writes.iter().zip(&partials) {
        fs::rename(partial, target).map_err(io("rename", partial))?;
        exported.written.push(target.clone());
    }
    stale.sort();
    stale.dedup();
    for path in stale.into_iter().filter(|p| !exported.written.contains(p)) {
        fs::remove_file(&path).map_err(io("remove", &path))?;
        exported.removed.push(path);
    }
    let (source, release) = recorded_origin(&record);
    write_record(&dir, Path::new(&source), &release, patches, &final_series)?;
    Ok(exported)
}

/// Where the text of the patch file `target` is written before it
/// replaces the file: hidden, and not a `*.patch`.
fn partial_of(target: &Path) -> PathBuf {
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    target.with_file_name(format!(".{name}.partial"))
}

/// `path` as one word of a shell command: as it is when it has no
/// character a shell would read, in single quotes otherwise.
pub fn sh(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"/._-+=:,@%".contains(&b);
    if !text.is_empty() && text.bytes().all(plain) {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// The first line of the rule Debian's `linux-source` package appends to
/// the kernel's top-level `.gitignore`.
const DEBIAN_IGNORE_RULE: &str = "# Debian packaging: ignore everything at the top level";

/// Takes out of the top-level `.gitignore` the rule Debian's package adds
/// to it (`/*`, then `!/debian/`), under which git would ignore every new
/// file, a new `kernel/yourcall.c` included: `git add -A` would leave it
/// out, `git status` would not show it, and the export would lose it. The
/// base is then the kernel's own source: what is upstream's in 6.12.
fn unignore_new_files(dir: &Path) -> Result<()> {
    let path = dir.join(".gitignore");
    let Ok(text) = fs::read_to_string(&path) else {
        return Ok(());
    };
    let lines: Vec<&str> = text.lines().collect();
    let Some(start) = lines.iter().position(|l| l.starts_with(DEBIAN_IGNORE_RULE)) else {
        return Ok(());
    };
    let Some(end) = lines[start..].iter().position(|l| *l == "!/debian/") else {
        return Ok(());
    };
    // The rule's comment opens with a lone `#`, after an empty line.
    let mut first = start;
    while first > 0 && matches!(lines[first - 1], "#" | "") {
        first -= 1;
    }
    let mut kept: Vec<&str> = lines[..first].to_vec();
    kept.extend(&lines[start + end + 1..]);
    let mut out = kept.join("\n");
    out.push('\n');
    fs::write(&path, out).map_err(io("write", &path))
}

/// Installs git when running as root on Debian; otherwise says how.
fn ensure_git() -> Result<()> {
    if kbuild::have("git") {
        return Ok(());
    }
    kbuild::ensure_packages(|m| eprintln!("lkl-harness: {m}"), vec!["git"]).map_err(Error::Setup)
}

/// `git -C dir` with the settings every call here wants.
fn git_cmd(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(dir)
        // Our own commits are never signed or held up by the user's hooks.
        .args(["-c", "commit.gpgSign=false", "-c", "core.autocrlf=false"])
        .env("GIT_TERMINAL_PROMPT", "0");
    cmd
}

fn run_git(dir: &Path, cmd: &mut Command, what: &str) -> Result<String> {
    kbuild::run_cmd(cmd).map_err(|output| Error::Git {
        dir: dir.to_path_buf(),
        args: what.to_string(),
        output,
    })
}

/// Runs `git args` in `dir`; its stdout.
fn git(dir: &Path, args: &[&str]) -> Result<String> {
    run_git(dir, git_cmd(dir).args(args), &args.join(" "))
}

/// The four-digit number a patch file's name starts with (`0003`), or its
/// whole name when it has none.
fn number_of(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.split_once('-') {
        Some((number, _)) if number.bytes().all(|b| b.is_ascii_digit()) => number.to_string(),
        _ => name,
    }
}

/// A patch's text without what `git format-patch` varies between runs of
/// the same commit: the `From <commit id>` line, the `[PATCH n/m]` prefix
/// of the subject (and the subject's folding, which that prefix moves),
/// the abbreviated blob ids of `index` lines, and the trailing signature
/// (the git version).
fn normalized(text: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut in_headers = true;
    for (n, line) in text.lines().enumerate() {
        if n == 0 && line.starts_with("From ") && line.ends_with(" Mon Sep 17 00:00:00 2001") {
            continue;
        }
        if in_headers {
            if line.is_empty() {
                in_headers = false;
            } else if line.starts_with([' ', '\t']) {
                if let Some(last) = lines.last_mut() {
                    last.push_str(line);
                    continue;
                }
            }
        } else if is_index_line(line) {
            continue;
        }
        lines.push(line.to_string());
    }
    // The signature: "-- " and the git version, at the very end.
    if let Some(signature) = lines.iter().rposition(|l| l == "-- ") {
        if lines.len() - signature <= 3 {
            lines.truncate(signature);
        }
    }
    let mut out = String::new();
    for line in lines {
        match line.strip_prefix("Subject: ") {
            Some(subject) => {
                let _ = writeln!(out, "Subject: {}", strip_patch_prefix(subject));
            }
            None => {
                let _ = writeln!(out, "{line}");
            }
        }
    }
    out
}

/// `index 39a2b61..695eb7e 100644`, `index 0000000..1e2f3a4`.
fn is_index_line(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("index ") else {
        return false;
    };
    let mut words = rest.split(' ');
    let ids = words.next().unwrap_or_default();
    let mode_ok = words
        .next()
        .is_none_or(|m| m.len() == 6 && m.bytes().all(|b| b.is_ascii_digit()));
    let ids_ok = ids.split_once("..").is_some_and(|(a, b)| {
        [a, b]
            .iter()
            .all(|id| !id.is_empty() && id.bytes().all(|c| c.is_ascii_hexdigit()))
    });
    mode_ok && ids_ok && words.next().is_none()
}

/// `[PATCH 2/7] kernel: add x` → `kernel: add x`.
fn strip_patch_prefix(subject: &str) -> &str {
    match subject.strip_prefix('[').and_then(|s| s.split_once("] ")) {
        Some((tag, rest)) if tag.starts_with("PATCH") || tag.starts_with("RFC") => rest,
        _ => subject,
    }
}

/// A patch's subject, unfolded and without its `[PATCH n/m]` prefix.
fn subject(text: &str) -> Option<String> {
    normalized(text)
        .lines()
        .find_map(|l| l.strip_prefix("Subject: ").map(str::to_string))
}

/// `(file name, digest)` of each patch.
fn digests(series: &[PathBuf]) -> Result<Vec<(String, String)>> {
    series
        .iter()
        .map(|path| {
            let bytes = fs::read(path).map_err(io("read", path))?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok((name, format!("{:016x}", kbuild::stable_hash(&bytes))))
        })
        .collect()
}

/// How `now` differs from the series `recorded`: files added, removed or
/// changed, by name.
fn series_changes(recorded: &[(String, String)], now: &[(String, String)]) -> Vec<String> {
    let before: BTreeMap<_, _> = recorded.iter().cloned().collect();
    let after: BTreeMap<_, _> = now.iter().cloned().collect();
    let mut changes = Vec::new();
    for (name, digest) in &after {
        match before.get(name) {
            None => changes.push(format!("{name} added")),
            Some(d) if d != digest => changes.push(format!("{name} changed")),
            Some(_) => {}
        }
    }
    for name in before.keys().filter(|n| !after.contains_key(*n)) {
        changes.push(format!("{name} removed"));
    }
    changes
}

/// Writes `.git/lkl-harness`: where the work tree came from, and the
/// series (file names and digests) it matches.
fn write_record(
    dir: &Path,
    source: &Path,
    release: &str,
    patches: &Path,
    series: &[PathBuf],
) -> Result<()> {
    let mut text = format!(
        "# Made by `lkl-harness worktree`; `lkl-harness worktree {} --export` writes its \
         commits after {BASE_TAG} back as the series.\n\
         source {}\nrelease {release}\npatches {}\n",
        dir.display(),
        source.display(),
        patches.display()
    );
    for (name, digest) in digests(series)? {
        let _ = writeln!(text, "patch {digest} {name}");
    }
    let path = dir.join(".git").join(RECORD);
    fs::write(&path, text).map_err(io("write", &path))
}

/// The series a record lists.
fn recorded_series(record: &str) -> Vec<(String, String)> {
    record
        .lines()
        .filter_map(|l| l.strip_prefix("patch "))
        .filter_map(|l| l.split_once(' '))
        .map(|(digest, name)| (name.to_string(), digest.to_string()))
        .collect()
}

/// The source and release a record names.
fn recorded_origin(record: &str) -> (String, String) {
    let field = |key: &str| {
        record
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ').map(str::to_string))
            .unwrap_or_default()
    };
    (field("source"), field("release"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATCH: &str = "\
From 872e4ec42f7d7b971f7ff4479ad7834d1a65a55b Mon Sep 17 00:00:00 2001
From: A <a@example.org>
Date: Sat, 28 Nov 2026 01:27:20 +0000
Subject: [PATCH 3/7] mm: mm_init: start the first memmap hole at
 ARCH_PFN_OFFSET with FLATMEM

Body.
---
 mm/mm_init.c | 2 +-

diff --git a/mm/mm_init.c b/mm/mm_init.c
index f024ab7ae..fb91154a1 100644
--- a/mm/mm_init.c
+++ b/mm/mm_init.c
@@ -1 +1 @@
-a
+b
-- 
2.47.3
";

    #[test]
    fn what_format_patch_varies_is_left_out_of_the_comparison() {
        let other_run = PATCH
            .replace("872e4ec42f7d7b971f7ff4479ad7834d1a65a55b", &"0".repeat(40))
            .replace(
                "[PATCH 3/7] mm: mm_init: start the first memmap hole at\n ARCH_PFN_OFFSET with",
                "[PATCH] mm: mm_init: start the first memmap hole at ARCH_PFN_OFFSET\n with",
            )
            .replace(
                "index f024ab7ae..fb91154a1 100644",
                "index 77f5f62..4ae9095 100644",
            )
            .replace("2.47.3", "2.39.5");
        assert_eq!(normalized(PATCH), normalized(&other_run));
        assert_eq!(
            subject(PATCH).as_deref(),
            Some("mm: mm_init: start the first memmap hole at ARCH_PFN_OFFSET with FLATMEM")
        );
    }

    #[test]
    fn a_change_to_the_code_the_message_or_the_author_counts() {
        for (from, to) in [
            ("+b", "+c"),
            ("Body.", "Body, changed."),
            ("A <a@", "B <a@"),
        ] {
            assert_ne!(
                normalized(PATCH),
                normalized(&PATCH.replace(from, to)),
                "{from} -> {to}"
            );
        }
    }

    #[test]
    fn index_lines_are_recognised_by_shape() {
        assert!(is_index_line("index 39a2b61..695eb7e 100644"));
        assert!(is_index_line("index 0000000000..1e2f3a4b5c"));
        assert!(!is_index_line("index of the table, as in index 3..4 pages"));
        assert!(!is_index_line("index"));
    }

    #[test]
    fn patch_numbers_come_from_the_file_name() {
        assert_eq!(number_of(Path::new("/p/0008-kernel-add-x.patch")), "0008");
        assert_eq!(number_of(Path::new("/p/fix.patch")), "fix.patch");
    }

    #[test]
    fn series_changes_name_each_file_added_removed_or_changed() {
        let before = [("1".to_string(), "a".to_string()), ("2".into(), "b".into())];
        let after = [("1".to_string(), "a".to_string()), ("3".into(), "c".into())];
        assert_eq!(
            series_changes(&before, &after),
            ["3 added".to_string(), "2 removed".to_string()]
        );
        assert!(series_changes(&before, &before).is_empty());
        let changed = [("1".to_string(), "x".to_string()), ("2".into(), "b".into())];
        assert_eq!(series_changes(&before, &changed), ["1 changed".to_string()]);
    }
}
