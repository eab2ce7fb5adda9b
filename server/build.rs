//! Records the git revision the server is built from, for `--version`:
//! `LIBVIRT_GRPC_GIT_REVISION` is `git rev-parse --short=12 HEAD`, with
//! `-dirty` when tracked files differ from that commit, or `unknown` when
//! git or the repository is absent (a source tarball).
//!
//! Reruns only when the checked-out commit can have changed (HEAD, the
//! branch it points to, packed refs, the index) or the server's sources
//! change (which can change "dirty"), not on every build.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8(out.stdout).ok()?.trim().to_owned())
}

/// Tells cargo to rerun when git's file `name` (e.g. `HEAD`) changes; in a
/// worktree those files live outside `.git`, so git says where.
fn watch_git_path(dir: &Path, name: &str) {
    let Some(p) = git(dir, &["rev-parse", "--git-path", name]) else {
        return;
    };
    let p = PathBuf::from(p);
    let p = if p.is_absolute() { p } else { dir.join(p) };
    // A path that does not exist would make cargo rerun every time.
    if p.exists() {
        println!("cargo:rerun-if-changed={}", p.display());
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src");
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let revision = match git(&dir, &["rev-parse", "--short=12", "HEAD"]) {
        Some(rev) if !rev.is_empty() => {
            watch_git_path(&dir, "HEAD");
            watch_git_path(&dir, "index");
            watch_git_path(&dir, "packed-refs");
            if let Some(branch) = git(&dir, &["symbolic-ref", "-q", "HEAD"]) {
                watch_git_path(&dir, &branch);
            }
            // `git diff --quiet` exits 1 when tracked files differ from
            // HEAD; unlike `git status` it never rewrites the index.
            let dirty = Command::new("git")
                .args(["diff", "--quiet", "HEAD", "--"])
                .current_dir(&dir)
                .status()
                .map(|s| s.code() == Some(1))
                .unwrap_or(false);
            if dirty {
                format!("{rev}-dirty")
            } else {
                rev
            }
        }
        _ => "unknown".to_owned(),
    };
    println!("cargo:rustc-env=LIBVIRT_GRPC_GIT_REVISION={revision}");
}
