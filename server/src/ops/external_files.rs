//! The host files a call names for libvirt to create (a snapshot's
//! external overlays and memory file, a block copy's destination): looked
//! at before the call, so that a file that exists is never clobbered, and
//! those the call made removed again when it fails. Only a host whose
//! libvirtd runs on this machine can be looked at; a remote one's files are
//! left to libvirt's own checks.

use std::path::PathBuf;

use crate::error::Error;

/// The host files a call names for libvirt to create (a snapshot's
/// overlays and memory file, a block copy's destination): checked before
/// the call, and those the call made removed again when it fails.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExternalFiles {
    /// External disk overlays (`<disks><disk><source file>`).
    pub disks: Vec<String>,
    /// The external memory file (`<memory file>`).
    pub memory: Option<String>,
    /// REUSE_EXT: existing disk files are taken as the overlays.
    pub reuse: bool,
    /// Whether the host's files are this machine's, so that the server can
    /// see them; a remote host's are left to libvirt's own checks.
    pub local: bool,
}

impl ExternalFiles {
    /// The files that do not exist yet (the ones a failure may remove);
    /// `ALREADY_EXISTS` for one that exists and may not be reused.
    fn missing(&self) -> Result<Vec<PathBuf>, Error> {
        if !self.local {
            return Ok(Vec::new());
        }
        let disks = self.disks.iter().map(|d| (d, self.reuse));
        let memory = self.memory.iter().map(|m| (m, false));
        let mut missing = Vec::new();
        for (file, reusable) in disks.chain(memory) {
            match std::fs::symlink_metadata(file) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    missing.push(PathBuf::from(file));
                }
                Err(e) => {
                    return Err(Error::FailedPrecondition(format!(
                        "Cannot inspect snapshot file '{file}': {e}"
                    )))
                }
                Ok(_) if reusable => {}
                Ok(_) => {
                    return Err(Error::AlreadyExists(format!(
                        "Snapshot file '{file}' already exists{}",
                        if self.memory.as_ref() == Some(file) {
                            ""
                        } else {
                            " (reuse_external takes an existing overlay as it is)"
                        }
                    )))
                }
            }
        }
        Ok(missing)
    }

    /// Runs `make`; when it fails, removes those of `missing` that exist
    /// now (this call's files: they did not exist before it).
    pub fn guarded<T>(&self, make: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
        let missing = self.missing()?;
        make().inspect_err(|_| {
            for f in &missing {
                if std::fs::symlink_metadata(f).is_ok() {
                    if let Err(e) = std::fs::remove_file(f) {
                        tracing::warn!(file = %f.display(), error = %e,
                            "a failed snapshot left a file this call created");
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// A fresh directory of this test's own.
    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lvgt-snapfiles-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn files(d: &std::path::Path, disks: &[&str], reuse: bool) -> ExternalFiles {
        ExternalFiles {
            disks: disks
                .iter()
                .map(|n| d.join(n).to_str().unwrap().to_owned())
                .collect(),
            memory: None,
            reuse,
            local: true,
        }
    }

    #[test]
    fn a_failure_removes_only_the_files_this_call_created() {
        let d = scratch("fail");
        std::fs::write(d.join("old.qcow2"), b"kept").unwrap();
        let f = files(&d, &["old.qcow2", "new.qcow2", "never.qcow2"], true);
        let r: Result<(), Error> = f.guarded(|| {
            // What libvirt does before it fails: writes the new overlay and
            // (with REUSE_EXT) reopens the old one.
            std::fs::write(d.join("new.qcow2"), b"made").unwrap();
            std::fs::write(d.join("old.qcow2"), b"kept").unwrap();
            Err(Error::internal("the snapshot failed"))
        });
        assert!(r.is_err());
        assert!(!d.join("new.qcow2").exists());
        assert!(!d.join("never.qcow2").exists());
        assert_eq!(std::fs::read(d.join("old.qcow2")).unwrap(), b"kept");
        // Success keeps what was made.
        f.guarded(|| {
            std::fs::write(d.join("new.qcow2"), b"made").map_err(|e| Error::internal(e.to_string()))
        })
        .unwrap();
        assert!(d.join("new.qcow2").exists());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn an_existing_file_is_refused_before_anything_runs() {
        let d = scratch("exists");
        std::fs::write(d.join("old.qcow2"), b"kept").unwrap();
        let f = files(&d, &["new.qcow2", "old.qcow2"], false);
        let mut ran = false;
        let r: Result<(), Error> = f.guarded(|| {
            ran = true;
            Ok(())
        });
        assert!(matches!(r, Err(Error::AlreadyExists(_))), "{r:?}");
        assert!(!ran);
        assert_eq!(std::fs::read(d.join("old.qcow2")).unwrap(), b"kept");
        // A memory file is never reused.
        let mem = ExternalFiles {
            memory: Some(d.join("old.qcow2").to_str().unwrap().to_owned()),
            ..files(&d, &[], true)
        };
        assert!(matches!(
            mem.guarded(|| Ok(())),
            Err(Error::AlreadyExists(_))
        ));
        // A remote host's files are libvirt's to check.
        let remote = ExternalFiles {
            local: false,
            ..files(&d, &["old.qcow2"], false)
        };
        assert!(remote.guarded(|| Ok(())).is_ok());
        let _ = std::fs::remove_dir_all(&d);
    }
}
