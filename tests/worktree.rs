//! `lkl-harness worktree`: a git work tree of the kernel source with the
//! series as commits, and its export back. On a tiny source tree of three
//! files with a series of two patches, so that every row runs in
//! milliseconds; `.ci/recipe` walks the real thing end to end.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use lkl_harness::worktree::{self, Error, BASE_TAG};

/// A scratch directory of this test's own, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "lkl-worktree-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("a scratch directory");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A kernel tree in miniature: the release in its Makefile, a source
/// file, and a file the kernel's .gitignore would hide.
fn fake_source(root: &Path) -> PathBuf {
    let source = root.join("linux-source-6.12");
    fs::create_dir_all(source.join("kernel")).unwrap();
    fs::write(
        source.join("Makefile"),
        "VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 117\n",
    )
    .unwrap();
    fs::write(source.join("kernel/a.c"), "int a;\n").unwrap();
    // The rule Debian's linux-source appends, which hides every new file.
    fs::write(
        source.join(".gitignore"),
        "*.o\n\n#\n# Debian packaging: ignore everything at the top level, since it isn't\n\
         # included in our repository\n#\n/*\n!/debian/\n",
    )
    .unwrap();
    fs::write(source.join("kernel/built-in.o"), "shipped\n").unwrap();
    source
}

/// The series, written by `git format-patch` from a repository of the
/// source: `0001` changes kernel/a.c, `0002` adds kernel/b.c.
fn fake_series(root: &Path, source: &Path) -> PathBuf {
    let repo = root.join("series-repo");
    let status = Command::new("cp")
        .arg("-a")
        .arg(source)
        .arg(&repo)
        .status()
        .unwrap();
    assert!(status.success());
    git(&repo, &["init", "-q"]);
    git(&repo, &["add", "-A", "-f"]);
    git(&repo, &["commit", "-q", "-m", "base"]);
    let author = "--author=Test Author <author@example.org>";
    fs::write(repo.join("kernel/a.c"), "int a = 1;\n").unwrap();
    git(
        &repo,
        &[
            "commit",
            "-q",
            "-a",
            author,
            "-m",
            "kernel: a starts at one",
        ],
    );
    fs::write(repo.join("kernel/b.c"), "int b;\n").unwrap();
    git(&repo, &["add", "-f", "kernel/b.c"]);
    git(
        &repo,
        &[
            "commit",
            "-q",
            author,
            "-m",
            "kernel: add b",
            "-m",
            "Why: b.",
        ],
    );
    let patches = root.join("patches");
    let out = patches.display().to_string();
    git(&repo, &["format-patch", "-q", "-o", &out, "HEAD~2"]);
    fs::remove_dir_all(&repo).unwrap();
    patches
}

/// A patch that changes `kernel/c.c`, which the source does not have.
const PATCH_OF_A_MISSING_FILE: &str = "\
From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001
From: Test Author <author@example.org>
Date: Sat, 28 Nov 2026 01:27:20 +0000
Subject: [PATCH] kernel: c is two

---
diff --git a/kernel/c.c b/kernel/c.c
--- a/kernel/c.c
+++ b/kernel/c.c
@@ -1 +1 @@
-int c;
+int c = 2;
-- 
2.47.3
";

/// A patch that adds `kernel/d.c`, which applies after the fake series.
const PATCH_OF_A_NEW_FILE: &str = "\
From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001
From: Test Author <author@example.org>
Date: Sat, 28 Nov 2026 01:27:20 +0000
Subject: [PATCH] kernel: add d

---
diff --git a/kernel/d.c b/kernel/d.c
new file mode 100644
--- /dev/null
+++ b/kernel/d.c
@@ -0,0 +1 @@
+int d;
-- 
2.47.3
";

/// `git -C dir args`, as a user with an identity would run it.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=Test User",
            "-c",
            "user.email=user@example.org",
        ])
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn mtime(path: &Path) -> SystemTime {
    fs::metadata(path).unwrap().modified().unwrap()
}

/// A fake source, its series, and a work tree made from them.
struct Made {
    scratch: Scratch,
    patches: PathBuf,
    dir: PathBuf,
}

fn made(name: &str) -> Made {
    let scratch = Scratch::new(name);
    let source = fake_source(&scratch.0);
    let patches = fake_series(&scratch.0, &source);
    let dir = scratch.0.join("linux");
    worktree::create(&source, &patches, &dir, &|_| {}).expect("the work tree is made");
    Made {
        scratch,
        patches,
        dir,
    }
}

#[test]
fn the_work_tree_is_the_source_tagged_then_one_commit_per_patch() {
    let m = made("layout");
    let log = git(
        &m.dir,
        &["log", "--format=%s", &format!("{BASE_TAG}..HEAD")],
    );
    assert_eq!(log, "kernel: add b\nkernel: a starts at one\n");
    assert_eq!(
        git(&m.dir, &["log", "-1", "--format=%an <%ae>", "HEAD~1"]),
        "Test Author <author@example.org>\n",
        "git am keeps each patch's author"
    );
    assert_eq!(
        git(&m.dir, &["log", "-1", "--format=%s", BASE_TAG]),
        "Linux 6.12.117\n"
    );
    assert_eq!(
        fs::read_to_string(m.dir.join("kernel/a.c")).unwrap(),
        "int a = 1;\n"
    );
    assert_eq!(
        fs::read_to_string(m.dir.join("kernel/b.c")).unwrap(),
        "int b;\n"
    );
    // The tarball's files, those a .gitignore names too, are in the base.
    assert_eq!(
        git(&m.dir, &["ls-files", "kernel/built-in.o"]),
        "kernel/built-in.o\n"
    );
    assert_eq!(git(&m.dir, &["status", "--porcelain"]), "");
}

#[test]
fn a_new_file_is_a_change_git_sees_despite_debians_ignore_everything_rule() {
    let m = made("new-file");
    assert_eq!(
        fs::read_to_string(m.dir.join(".gitignore")).unwrap(),
        "*.o\n",
        "the base has the kernel's own .gitignore"
    );
    fs::write(m.dir.join("kernel/yourcall.c"), "int yourcall;\n").unwrap();
    assert_eq!(
        git(&m.dir, &["status", "--porcelain"]),
        "?? kernel/yourcall.c\n"
    );
}

#[test]
fn the_port_link_that_build_rs_adds_is_not_a_change() {
    let m = made("arch-link");
    fs::create_dir_all(m.dir.join("arch")).unwrap();
    std::os::unix::fs::symlink("/nowhere", m.dir.join("arch/lkl")).unwrap();
    assert_eq!(git(&m.dir, &["status", "--porcelain"]), "");
}

#[test]
fn making_it_twice_says_it_exists_and_how_to_start_again() {
    let m = made("twice");
    let source = m.scratch.0.join("linux-source-6.12");
    let err = worktree::create(&source, &m.patches, &m.dir, &|_| {}).unwrap_err();
    assert!(matches!(err, Error::AlreadyMade { .. }), "{err}");
    assert!(err.to_string().contains("rm -rf"), "{err}");
}

#[test]
fn a_directory_that_is_not_empty_and_not_ours_is_refused() {
    let scratch = Scratch::new("not-ours");
    let source = fake_source(&scratch.0);
    let patches = fake_series(&scratch.0, &source);
    let dir = scratch.0.join("taken");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("notes.txt"), "mine\n").unwrap();
    let err = worktree::create(&source, &patches, &dir, &|_| {}).unwrap_err();
    assert!(matches!(err, Error::NotOurs { .. }), "{err}");
    assert!(
        err.to_string().contains(&dir.display().to_string()),
        "{err}"
    );
    assert_eq!(names(&dir), ["notes.txt"], "nothing was written into it");
}

#[test]
fn a_patch_that_does_not_apply_is_named_with_the_way_out() {
    let scratch = Scratch::new("bad-patch");
    let source = fake_source(&scratch.0);
    let patches = fake_series(&scratch.0, &source);
    fs::write(
        patches.join("0003-kernel-c-is-two.patch"),
        PATCH_OF_A_MISSING_FILE,
    )
    .unwrap();
    let dir = scratch.0.join("linux");
    let err = worktree::create(&source, &patches, &dir, &|_| {}).unwrap_err();
    let Error::PatchFailed { patch, .. } = &err else {
        panic!("not a patch failure: {err}");
    };
    assert!(patch.ends_with("0003-kernel-c-is-two.patch"), "{err}");
    assert!(err.to_string().contains("am --continue"), "{err}");
    assert_eq!(
        git(&dir, &["log", "-1", "--format=%s"]),
        "kernel: add b\n",
        "the patches before it are applied"
    );
}

#[test]
fn a_stopped_patch_skipped_leaves_the_patches_after_it_to_apply() {
    let scratch = Scratch::new("skip-patch");
    let source = fake_source(&scratch.0);
    let patches = fake_series(&scratch.0, &source);
    fs::write(
        patches.join("0003-kernel-c-is-two.patch"),
        PATCH_OF_A_MISSING_FILE,
    )
    .unwrap();
    fs::write(patches.join("0004-kernel-add-d.patch"), PATCH_OF_A_NEW_FILE).unwrap();
    let dir = scratch.0.join("linux");
    let err = worktree::create(&source, &patches, &dir, &|_| {}).unwrap_err();
    let Error::PatchFailed { patch, .. } = &err else {
        panic!("not a patch failure: {err}");
    };
    assert!(patch.ends_with("0003-kernel-c-is-two.patch"), "{err}");
    // The user drops it; git am goes on with the rest of the series, which
    // an export then keeps.
    git(&dir, &["am", "--skip"]);
    assert_eq!(git(&dir, &["log", "-1", "--format=%s"]), "kernel: add d\n");
    assert!(dir.join("kernel/d.c").is_file());
}

#[test]
fn a_detached_head_or_an_unfinished_rebase_is_refused() {
    let m = made("detached");
    git(&m.dir, &["checkout", "-q", "--detach", "HEAD~1"]);
    let err = worktree::export(&m.dir, &m.patches, false).unwrap_err();
    assert!(matches!(err, Error::Detached { .. }), "{err}");
    assert!(err.to_string().contains("checkout -"), "{err}");
    git(&m.dir, &["checkout", "-q", "-"]);
    fs::create_dir(m.dir.join(".git/rebase-merge")).unwrap();
    let err = worktree::export(&m.dir, &m.patches, false).unwrap_err();
    assert!(matches!(err, Error::AmInProgress { .. }), "{err}");
    assert_eq!(names(&m.patches).len(), 2, "nothing exported");
}

#[test]
fn a_new_file_that_git_status_is_told_to_hide_is_still_refused() {
    let m = made("hidden-untracked");
    git(&m.dir, &["config", "status.showUntrackedFiles", "no"]);
    fs::write(m.dir.join("kernel/yourcall.c"), "int yourcall;\n").unwrap();
    let err = worktree::export(&m.dir, &m.patches, false).unwrap_err();
    assert!(matches!(err, Error::Uncommitted { .. }), "{err}");
    assert!(err.to_string().contains("kernel/yourcall.c"), "{err}");
}

#[test]
fn the_users_format_patch_configuration_changes_no_patch() {
    let m = made("format-config");
    for (key, value) in [
        ("format.coverLetter", "true"),
        ("format.signOff", "true"),
        ("format.thread", "shallow"),
        ("format.to", "someone@example.org"),
        ("format.headers", "X-Test: yes"),
        ("format.suffix", ".diff"),
    ] {
        git(&m.dir, &["config", key, value]);
    }
    let exported = worktree::export(&m.dir, &m.patches, false).unwrap();
    assert_eq!(exported.kept.len(), 2, "{exported:?}");
    assert!(exported.written.is_empty() && exported.removed.is_empty());
    assert_eq!(names(&m.patches).len(), 2, "no cover letter");
}

#[test]
fn exporting_an_unchanged_series_touches_no_file() {
    let m = made("unchanged");
    let before: Vec<_> = names(&m.patches)
        .iter()
        .map(|n| (n.clone(), mtime(&m.patches.join(n))))
        .collect();
    let exported = worktree::export(&m.dir, &m.patches, false).unwrap();
    assert_eq!(exported.kept.len(), 2);
    assert!(exported.written.is_empty() && exported.removed.is_empty());
    let after: Vec<_> = names(&m.patches)
        .iter()
        .map(|n| (n.clone(), mtime(&m.patches.join(n))))
        .collect();
    assert_eq!(before, after);
}

#[test]
fn a_new_commit_becomes_the_next_patch_and_the_others_stay() {
    let m = made("new-commit");
    let first = m.patches.join("0001-kernel-a-starts-at-one.patch");
    let first_text = fs::read_to_string(&first).unwrap();
    fs::write(m.dir.join("kernel/yourcall.c"), "int yourcall;\n").unwrap();
    git(&m.dir, &["add", "-A"]);
    git(&m.dir, &["commit", "-q", "-m", "kernel: add yourcall"]);
    let exported = worktree::export(&m.dir, &m.patches, false).unwrap();
    assert_eq!(exported.kept.len(), 2);
    assert_eq!(
        exported.written,
        [m.patches.join("0003-kernel-add-yourcall.patch")]
    );
    assert_eq!(
        names(&m.patches),
        [
            "0001-kernel-a-starts-at-one.patch",
            "0002-kernel-add-b.patch",
            "0003-kernel-add-yourcall.patch"
        ]
    );
    assert_eq!(fs::read_to_string(&first).unwrap(), first_text);
    let new = fs::read_to_string(m.patches.join("0003-kernel-add-yourcall.patch")).unwrap();
    assert!(new.contains("+int yourcall;"), "{new}");
    // Exporting again changes nothing.
    let again = worktree::export(&m.dir, &m.patches, false).unwrap();
    assert_eq!((again.kept.len(), again.written.len()), (3, 0));
}

#[test]
fn an_amended_patch_is_rewritten_under_its_own_name_and_a_dropped_one_removed() {
    let m = made("amend");
    // Rewrite history: 0001 changes, 0002 goes.
    git(&m.dir, &["reset", "-q", "--hard", "HEAD~1"]);
    fs::write(m.dir.join("kernel/a.c"), "int a = 2;\n").unwrap();
    git(&m.dir, &["commit", "-q", "-a", "--amend", "--no-edit"]);
    let exported = worktree::export(&m.dir, &m.patches, false).unwrap();
    let first = m.patches.join("0001-kernel-a-starts-at-one.patch");
    assert_eq!(exported.written, std::slice::from_ref(&first));
    assert_eq!(
        exported.removed,
        [m.patches.join("0002-kernel-add-b.patch")]
    );
    assert_eq!(names(&m.patches), ["0001-kernel-a-starts-at-one.patch"]);
    assert!(fs::read_to_string(&first).unwrap().contains("+int a = 2;"));
}

#[test]
fn uncommitted_changes_are_refused_naming_the_files() {
    let m = made("uncommitted");
    fs::write(m.dir.join("kernel/yourcall.c"), "int yourcall;\n").unwrap();
    let err = worktree::export(&m.dir, &m.patches, false).unwrap_err();
    assert!(matches!(err, Error::Uncommitted { .. }), "{err}");
    assert!(err.to_string().contains("kernel/yourcall.c"), "{err}");
    assert!(err.to_string().contains("commit"), "{err}");
    assert_eq!(names(&m.patches).len(), 2);
}

#[test]
fn a_series_changed_since_the_work_tree_was_made_is_kept_unless_forced() {
    let m = made("drift");
    let second = m.patches.join("0002-kernel-add-b.patch");
    let edited = fs::read_to_string(&second)
        .unwrap()
        .replace("Why: b.", "Why: b is needed.");
    fs::write(&second, &edited).unwrap();
    let err = worktree::export(&m.dir, &m.patches, false).unwrap_err();
    assert!(matches!(err, Error::PatchesChanged { .. }), "{err}");
    assert!(
        err.to_string().contains("0002-kernel-add-b.patch changed"),
        "{err}"
    );
    // Brought into the work tree, the change is still a difference from
    // the recorded series: the way out says to force the export then.
    assert!(
        err.to_string().contains("then export with --force"),
        "{err}"
    );
    assert_eq!(fs::read_to_string(&second).unwrap(), edited);
    let forced = worktree::export(&m.dir, &m.patches, true).unwrap();
    assert_eq!(forced.written, std::slice::from_ref(&second));
    assert!(!fs::read_to_string(&second).unwrap().contains("b is needed"));
}

#[test]
fn exporting_a_directory_that_is_not_a_work_tree_says_how_to_make_one() {
    let scratch = Scratch::new("not-a-worktree");
    let err = worktree::export(&scratch.0, &scratch.0, false).unwrap_err();
    assert!(matches!(err, Error::NotAWorktree { .. }), "{err}");
    assert!(err.to_string().contains("lkl-harness worktree"), "{err}");
}

#[test]
fn the_command_refuses_a_directory_that_is_not_ours_before_touching_it() {
    let scratch = Scratch::new("cli");
    fs::write(scratch.0.join("notes.txt"), "mine\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lkl-harness"))
        .arg("worktree")
        .arg(&scratch.0)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("is not a work tree made by"), "{stderr}");
    assert_eq!(names(&scratch.0), ["notes.txt"]);
}

#[test]
fn an_interrupted_make_is_not_taken_for_a_finished_work_tree() {
    let scratch = Scratch::new("interrupted");
    let source = fake_source(&scratch.0);
    let patches = fake_series(&scratch.0, &source);
    let dir = scratch.0.join("linux");
    // Interrupted (a panic here, a Ctrl-C for a user) after the copy of
    // the source, before its commit.
    let interrupted = std::panic::catch_unwind(|| {
        worktree::create(&source, &patches, &dir, &|message| {
            assert!(!message.starts_with("git add"), "interrupted at: {message}");
        })
    });
    assert!(interrupted.is_err(), "the make went through");
    for err in [
        worktree::create(&source, &patches, &dir, &|_| {}).unwrap_err(),
        worktree::export(&dir, &patches, false).unwrap_err(),
    ] {
        assert!(matches!(err, Error::Unfinished { .. }), "{err}");
        assert!(err.to_string().contains("did not finish"), "{err}");
        assert!(err.to_string().contains("rm -rf"), "{err}");
    }
    assert_eq!(names(&patches).len(), 2, "nothing exported");
    // Made again from scratch, it is a work tree like any other.
    fs::remove_dir_all(&dir).unwrap();
    worktree::create(&source, &patches, &dir, &|_| {}).unwrap();
    let exported = worktree::export(&dir, &patches, false).unwrap();
    assert_eq!(exported.kept.len(), 2, "{exported:?}");
}

#[test]
fn a_write_that_fails_leaves_the_series_as_it_was() {
    let m = made("failed-write");
    // Two patches to write: 0001 amended, and a new 0002 in place of b.
    git(&m.dir, &["reset", "-q", "--hard", "HEAD~1"]);
    fs::write(m.dir.join("kernel/a.c"), "int a = 2;\n").unwrap();
    git(&m.dir, &["commit", "-q", "-a", "--amend", "--no-edit"]);
    fs::write(m.dir.join("kernel/yourcall.c"), "int yourcall;\n").unwrap();
    git(&m.dir, &["add", "-A"]);
    git(&m.dir, &["commit", "-q", "-m", "kernel: add yourcall"]);
    let before: Vec<_> = names(&m.patches)
        .iter()
        .map(|n| {
            let path = m.patches.join(n);
            (n.clone(), fs::read(&path).unwrap(), mtime(&path))
        })
        .collect();
    // The second write fails (as on a full disk): its file is taken by a
    // directory.
    let blocker = m.patches.join(".0002-kernel-add-yourcall.patch.partial");
    fs::create_dir(&blocker).unwrap();
    let err = worktree::export(&m.dir, &m.patches, false).unwrap_err();
    assert!(matches!(err, Error::Io { what: "write", .. }), "{err}");
    fs::remove_dir(&blocker).unwrap();
    let after: Vec<_> = names(&m.patches)
        .iter()
        .map(|n| {
            let path = m.patches.join(n);
            (n.clone(), fs::read(&path).unwrap(), mtime(&path))
        })
        .collect();
    assert!(
        before == after,
        "the series changed: {:?}",
        names(&m.patches)
    );
    // Once the disk has room, the same export goes through.
    let exported = worktree::export(&m.dir, &m.patches, false).unwrap();
    assert_eq!(exported.written.len(), 2, "{exported:?}");
    assert_eq!(
        names(&m.patches),
        [
            "0001-kernel-a-starts-at-one.patch",
            "0002-kernel-add-yourcall.patch"
        ]
    );
}

#[test]
fn two_old_patches_with_one_number_leave_no_stale_copy() {
    let scratch = Scratch::new("same-number");
    let source = fake_source(&scratch.0);
    let patches = fake_series(&scratch.0, &source);
    // A second 0002, which sorts (and applies) before 0002-kernel-add-b.
    fs::write(
        patches.join("0002-a-kernel-add-d.patch"),
        PATCH_OF_A_NEW_FILE,
    )
    .unwrap();
    let dir = scratch.0.join("linux");
    worktree::create(&source, &patches, &dir, &|_| {}).unwrap();
    let exported = worktree::export(&dir, &patches, false).unwrap();
    assert_eq!(
        names(&patches),
        [
            "0001-kernel-a-starts-at-one.patch",
            "0002-kernel-add-d.patch",
            "0003-kernel-add-b.patch"
        ],
        "{exported:?}"
    );
    assert_eq!(exported.kept.len(), 1, "{exported:?}");
    assert_eq!(exported.removed.len(), 2, "{exported:?}");
}

#[test]
fn commands_in_messages_quote_a_path_with_a_space() {
    let scratch = Scratch::new("space");
    let source = fake_source(&scratch.0);
    let patches = fake_series(&scratch.0, &source);
    let dir = scratch.0.join("my linux");
    worktree::create(&source, &patches, &dir, &|_| {}).unwrap();
    let err = worktree::create(&source, &patches, &dir, &|_| {}).unwrap_err();
    let quoted = format!("'{}'", dir.display());
    assert!(
        err.to_string().contains(&format!("rm -rf {quoted})")),
        "{err}"
    );
    assert_eq!(worktree::sh(Path::new("/tmp/it's")), r"'/tmp/it'\''s'");
    assert_eq!(worktree::sh(Path::new("/tmp/plain-1.x")), "/tmp/plain-1.x");
}
