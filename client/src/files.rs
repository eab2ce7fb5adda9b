//! Moving bytes between local files and the server's streams: volume upload
//! and download, guest files through the agent, screenshots, and a guest
//! command's output as a stream.
//!
//! Every transfer reports [`Progress`] to a callback as bytes move, computes
//! the SHA-256 of what it moved and returns it in a [`Transfer`]; where the
//! server reports a checksum (volumes) a different one is
//! [`ClientError::ChecksumMismatch`]. A file is written under a temporary
//! name beside its destination and renamed into place only once the
//! transfer is complete and checked, so a failure never leaves a half file;
//! an existing destination is kept (`AlreadyExists`) unless the call says
//! `overwrite`.
//!
//! ```no_run
//! # async fn demo(client: libvirt_grpc_client::Client) -> Result<(), libvirt_grpc_client::ClientError> {
//! use libvirt_grpc_client::{DownloadOptions, Progress};
//! let vol = client.volume_ref("default", "disk.qcow2");
//! let t = client
//!     .download_volume(vol, "disk.qcow2", DownloadOptions::default(), |p: Progress| {
//!         eprint!("\r{} of {:?} bytes", p.done, p.total);
//!     })
//!     .await?;
//! println!("{} bytes, sha256 {}", t.bytes, t.sha256);
//! # Ok(()) }
//! ```

use std::{
    path::{Path, PathBuf},
    pin::Pin,
    task::{Context, Poll},
};

use libvirt_grpc::v1;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_stream::Stream;

use crate::{Client, ClientError};

/// Bytes per upload chunk: a quarter of the server's 4 MiB limit per
/// `UploadStorageVolumeRequest.chunk`, so a chunk never nears it.
const UPLOAD_CHUNK: usize = 1 << 20;
/// Bytes per guest file write message (the server takes any size).
const GUEST_WRITE_CHUNK: usize = 1 << 20;
/// The most `ReadGuestFile` / `WriteGuestFile` move in one call; larger
/// files take several calls.
const GUEST_CALL_LIMIT: u64 = 64 << 20;
/// Messages of an upload buffered ahead of the network.
const UPLOAD_QUEUE: usize = 4;

/// How far a transfer is: `done` bytes of `total` (when known).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes moved so far.
    pub done: u64,
    /// Bytes the transfer will move, when known up front.
    pub total: Option<u64>,
}

/// What a finished transfer moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// Bytes moved.
    pub bytes: u64,
    /// SHA-256 of those bytes, as 64 lowercase hex digits (computed here;
    /// for volumes also checked against the server's).
    pub sha256: String,
}

/// How [`Client::upload_volume`] writes.
#[derive(Debug, Clone, Default)]
pub struct UploadOptions {
    /// Create the volume first from this spec (the volume must not exist;
    /// an empty name takes the reference's, a capacity of 0 the file's
    /// size). On any failure the server deletes it again.
    pub create: Option<v1::StorageVolumeSpec>,
    /// Byte offset in the volume to start writing at.
    pub offset_bytes: u64,
    /// Read the file once more before sending, so the server gets its
    /// SHA-256 up front and verifies it before committing (for an upload
    /// with `create`, a mismatch then leaves no volume behind). Without it
    /// the server's checksum is compared after the upload.
    pub verify_before_commit: bool,
}

/// What [`Client::upload_volume`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeUpload {
    /// The bytes sent and their SHA-256 (the server's matched).
    pub transfer: Transfer,
    /// The volume after the upload.
    pub volume: Option<v1::StorageVolume>,
    /// Whether the upload created the volume.
    pub created: bool,
}

/// Which bytes [`Client::download_volume`] reads and where they may go.
#[derive(Debug, Clone, Copy, Default)]
pub struct DownloadOptions {
    /// Replace the destination file when it exists; false: such a call
    /// fails with `AlreadyExists` before anything is read.
    pub overwrite: bool,
    /// Byte offset in the volume to start reading at.
    pub offset_bytes: u64,
    /// Bytes to read; 0 means to the end.
    pub length_bytes: u64,
}

/// The destination of a download: a temporary file beside `dest`, renamed
/// onto it by [`PartFile::commit`]; dropped uncommitted, it is removed.
struct PartFile {
    dest: PathBuf,
    tmp: PathBuf,
    file: Option<tokio::fs::File>,
    overwrite: bool,
    hash: Sha256,
    bytes: u64,
}

impl PartFile {
    async fn create(dest: &Path, overwrite: bool) -> Result<PartFile, ClientError> {
        if !overwrite && tokio::fs::symlink_metadata(dest).await.is_ok() {
            return Err(io_error(
                "create",
                dest,
                std::io::Error::new(std::io::ErrorKind::AlreadyExists, "the file exists"),
            ));
        }
        let name = dest
            .file_name()
            .ok_or_else(|| {
                io_error(
                    "create",
                    dest,
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"),
                )
            })?
            .to_string_lossy()
            .into_owned();
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let tmp = dir.join(format!(".{name}.part-{}-{:x}", std::process::id(), nonce()));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .await
            .map_err(|e| io_error("create", &tmp, e))?;
        Ok(PartFile {
            dest: dest.to_owned(),
            tmp,
            file: Some(file),
            overwrite,
            hash: Sha256::new(),
            bytes: 0,
        })
    }

    async fn write(&mut self, data: &[u8]) -> Result<(), ClientError> {
        let Some(file) = self.file.as_mut() else {
            return Err(ClientError::Protocol("write after commit".into()));
        };
        file.write_all(data)
            .await
            .map_err(|e| io_error("write", &self.tmp, e))?;
        self.hash.update(data);
        self.bytes += data.len() as u64;
        Ok(())
    }

    fn sha256(&self) -> String {
        hex(&self.hash.clone().finalize())
    }

    /// Flushes, syncs and moves the file into place; without `overwrite`
    /// an existing destination (even one that appeared meanwhile) is kept.
    async fn commit(mut self) -> Result<Transfer, ClientError> {
        let transfer = Transfer {
            bytes: self.bytes,
            sha256: self.sha256(),
        };
        if let Some(mut file) = self.file.take() {
            file.flush()
                .await
                .map_err(|e| io_error("write", &self.tmp, e))?;
            file.sync_all()
                .await
                .map_err(|e| io_error("write", &self.tmp, e))?;
        }
        if self.overwrite {
            tokio::fs::rename(&self.tmp, &self.dest)
                .await
                .map_err(|e| io_error("rename onto", &self.dest, e))?;
        } else {
            // A hard link fails when the destination exists, which a
            // rename would replace; the temporary name goes afterwards.
            tokio::fs::hard_link(&self.tmp, &self.dest)
                .await
                .map_err(|e| io_error("create", &self.dest, e))?;
            let _ = tokio::fs::remove_file(&self.tmp).await;
        }
        // Committed: nothing left for Drop to remove.
        self.tmp = PathBuf::new();
        Ok(transfer)
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> ClientError {
    ClientError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

fn protocol(what: impl Into<String>) -> ClientError {
    ClientError::Protocol(what.into())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A random number for temporary names (std's per-process random keys).
pub(crate) fn nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

async fn open(path: &Path) -> Result<(tokio::fs::File, u64), ClientError> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| io_error("open", path, e))?;
    let len = file
        .metadata()
        .await
        .map_err(|e| io_error("read", path, e))?
        .len();
    Ok((file, len))
}

/// Reads up to `buf.len()` bytes, fewer only at the end of the file.
async fn read_full(
    file: &mut tokio::fs::File,
    buf: &mut [u8],
    path: &Path,
) -> Result<usize, ClientError> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]).await {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error("read", path, e)),
        }
    }
    Ok(n)
}

async fn hash_file(path: &Path) -> Result<(u64, String), ClientError> {
    let (mut file, _) = open(path).await?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; UPLOAD_CHUNK];
    let mut total = 0u64;
    loop {
        let n = read_full(&mut file, &mut buf, path).await?;
        if n == 0 {
            return Ok((total, hex(&hash.finalize())));
        }
        hash.update(&buf[..n]);
        total += n as u64;
    }
}

/// A local file being sent: reads it in chunks, hashes every byte sent and
/// reports progress over the whole transfer (which may take several calls).
struct FileSource<'a> {
    path: &'a Path,
    file: tokio::fs::File,
    hash: Sha256,
    done: u64,
    total: u64,
    progress: &'a mut dyn FnMut(Progress),
}

impl FileSource<'_> {
    /// Sends the next `part` bytes on `tx` (each chunk built by `wrap`);
    /// stops early when the receiver is gone (the call failed: its status
    /// tells why) and returns the bytes sent. A file that shrank meanwhile
    /// is an error; one that grew is cut at the length announced.
    async fn send<M>(
        &mut self,
        part: u64,
        chunk: usize,
        tx: tokio::sync::mpsc::Sender<M>,
        wrap: impl Fn(Vec<u8>) -> M,
    ) -> Result<u64, ClientError> {
        let mut sent = 0u64;
        while sent < part {
            let want = usize::try_from((part - sent).min(chunk as u64)).unwrap_or(chunk);
            let mut buf = vec![0u8; want];
            let n = read_full(&mut self.file, &mut buf, self.path).await?;
            if n < want {
                return Err(io_error(
                    "read",
                    self.path,
                    std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the file shrank during the transfer",
                    ),
                ));
            }
            self.hash.update(&buf);
            if tx.send(wrap(buf)).await.is_err() {
                break;
            }
            sent += n as u64;
            self.done += n as u64;
            (self.progress)(Progress {
                done: self.done,
                total: Some(self.total),
            });
        }
        Ok(sent)
    }

    fn sha256(&self) -> String {
        hex(&self.hash.clone().finalize())
    }
}

impl Client {
    /// A reference to the volume `name` of pool `pool` on the default host.
    pub fn volume_ref(&self, pool: &str, name: &str) -> v1::StorageVolumeRef {
        v1::StorageVolumeRef {
            pool: Some(v1::StoragePoolRef {
                host: self.default_host.clone(),
                key: Some(v1::storage_pool_ref::Key::Name(pool.to_owned())),
            }),
            name: name.to_owned(),
        }
    }

    /// Writes the file at `path` into `volume` (`UploadStorageVolume`) in
    /// 1 MiB chunks, telling `progress` after each; the exact length is
    /// announced, so a stream cut short fails on the server. The SHA-256
    /// of the bytes sent must equal the server's, else
    /// [`ClientError::ChecksumMismatch`] (after which a volume this call
    /// created is deleted). Into an existing volume, a failed upload leaves
    /// the bytes already written (the server cannot take them back).
    pub async fn upload_volume(
        &self,
        volume: v1::StorageVolumeRef,
        path: impl AsRef<Path>,
        options: UploadOptions,
        mut progress: impl FnMut(Progress),
    ) -> Result<VolumeUpload, ClientError> {
        use v1::upload_storage_volume_request::Item;
        let path = path.as_ref();
        let expected = if options.verify_before_commit {
            Some(hash_file(path).await?)
        } else {
            None
        };
        let (file, len) = open(path).await?;
        let len = expected.as_ref().map_or(len, |(l, _)| *l);
        let create = options.create.map(|mut spec| {
            if spec.capacity_bytes == 0 {
                spec.capacity_bytes = len.max(1);
            }
            spec
        });
        let target = v1::UploadTarget {
            volume: Some(volume.clone()),
            offset_bytes: options.offset_bytes,
            length_bytes: len,
            sha256: expected.map(|(_, h)| h).unwrap_or_default(),
            create,
        };
        let (tx, rx) = tokio::sync::mpsc::channel(UPLOAD_QUEUE);
        let first = v1::UploadStorageVolumeRequest {
            item: Some(Item::Target(target)),
        };
        if tx.send(first).await.is_err() {
            return Err(protocol("upload stream closed"));
        }
        progress(Progress {
            done: 0,
            total: Some(len),
        });
        let mut source = FileSource {
            path,
            file,
            hash: Sha256::new(),
            done: 0,
            total: len,
            progress: &mut progress,
        };
        let mut storage = self.storage();
        let call = storage
            .upload_storage_volume(self.request(tokio_stream::wrappers::ReceiverStream::new(rx)));
        let send = source.send(len, UPLOAD_CHUNK, tx, |c| v1::UploadStorageVolumeRequest {
            item: Some(Item::Chunk(c)),
        });
        let (answer, sent) = tokio::join!(call, send);
        // The call's status says more than our side of a broken stream.
        let answer = answer?.into_inner();
        let bytes = sent?;
        let sha256 = source.sha256();
        if bytes != len || answer.written_bytes != len {
            return Err(protocol(format!(
                "the server wrote {} of {len} bytes",
                answer.written_bytes
            )));
        }
        if answer.sha256 != sha256 {
            if answer.created {
                let _ = self
                    .storage()
                    .delete_storage_volume(self.request(v1::DeleteStorageVolumeRequest {
                        volume: Some(volume),
                    }))
                    .await;
            }
            return Err(ClientError::ChecksumMismatch {
                local: sha256,
                server: answer.sha256,
            });
        }
        Ok(VolumeUpload {
            transfer: Transfer { bytes, sha256 },
            volume: answer.volume,
            created: answer.created,
        })
    }

    /// Reads `volume` (`DownloadStorageVolume`) into a new file at `path`,
    /// telling `progress` after each chunk (`total` is the server's
    /// expected size). The chunks must come in order and the SHA-256 of
    /// what arrived must equal the server's final one, else the call fails
    /// and no file is left at `path`.
    pub async fn download_volume(
        &self,
        volume: v1::StorageVolumeRef,
        path: impl AsRef<Path>,
        options: DownloadOptions,
        mut progress: impl FnMut(Progress),
    ) -> Result<Transfer, ClientError> {
        use v1::download_storage_volume_response::Item;
        let mut out = PartFile::create(path.as_ref(), options.overwrite).await?;
        let mut stream = self
            .storage()
            .download_storage_volume(self.request(v1::DownloadStorageVolumeRequest {
                volume: Some(volume),
                offset_bytes: options.offset_bytes,
                length_bytes: options.length_bytes,
            }))
            .await?
            .into_inner();
        let mut total = None;
        while let Some(msg) = stream.message().await? {
            match msg.item {
                Some(Item::Started(s)) => {
                    total = Some(s.expected_bytes);
                    progress(Progress {
                        done: 0,
                        total: Some(s.expected_bytes),
                    });
                }
                Some(Item::Chunk(c)) => {
                    if total.is_none() {
                        return Err(protocol("a chunk before the download started"));
                    }
                    if c.offset_bytes != out.bytes {
                        return Err(protocol(format!(
                            "a chunk at offset {} where {} was next",
                            c.offset_bytes, out.bytes
                        )));
                    }
                    out.write(&c.data).await?;
                    progress(Progress {
                        done: out.bytes,
                        total,
                    });
                }
                Some(Item::Finished(f)) => {
                    if f.total_bytes != out.bytes {
                        return Err(protocol(format!(
                            "the server sent {} bytes and counted {}",
                            out.bytes, f.total_bytes
                        )));
                    }
                    let local = out.sha256();
                    if f.sha256 != local {
                        return Err(ClientError::ChecksumMismatch {
                            local,
                            server: f.sha256,
                        });
                    }
                    return out.commit().await;
                }
                None => {}
            }
        }
        Err(protocol("the download ended before its last message"))
    }

    /// Copies the guest file `guest_path` into a new local file at `path`
    /// through the guest agent (`ReadGuestFile`, 64 MiB per call, as many
    /// calls as the file needs). The byte count must be the one the server
    /// announced; the agent reports no checksum, so [`Transfer::sha256`] is
    /// the one computed here. No file is left at `path` on failure.
    pub async fn read_guest_file(
        &self,
        domain: v1::DomainRef,
        guest_path: &str,
        path: impl AsRef<Path>,
        overwrite: bool,
        mut progress: impl FnMut(Progress),
    ) -> Result<Transfer, ClientError> {
        use v1::read_guest_file_response::Item;
        let mut out = PartFile::create(path.as_ref(), overwrite).await?;
        let mut total: Option<u64> = None;
        loop {
            let offset = out.bytes;
            let mut stream = self
                .agents()
                .read_guest_file(self.request(v1::ReadGuestFileRequest {
                    domain: Some(domain.clone()),
                    path: guest_path.to_owned(),
                    offset_bytes: offset,
                    length_bytes: GUEST_CALL_LIMIT,
                }))
                .await?
                .into_inner();
            let mut expected = None;
            while let Some(msg) = stream.message().await? {
                match msg.item {
                    Some(Item::Started(s)) => {
                        expected = Some(s.expected_bytes);
                        if total.is_none() {
                            total = Some(s.file_size_bytes);
                            progress(Progress { done: 0, total });
                        }
                    }
                    Some(Item::Data(d)) => {
                        if expected.is_none() {
                            return Err(protocol("data before the read started"));
                        }
                        out.write(&d).await?;
                        progress(Progress {
                            done: out.bytes,
                            total,
                        });
                    }
                    None => {}
                }
            }
            let Some(expected) = expected else {
                return Err(protocol("the read ended before it started"));
            };
            let got = out.bytes - offset;
            if got != expected {
                return Err(protocol(format!(
                    "the agent sent {got} of {expected} bytes"
                )));
            }
            // A part shorter than a call's limit is the file's end.
            if expected < GUEST_CALL_LIMIT {
                return out.commit().await;
            }
        }
    }

    /// Writes the local file at `path` to the guest file `guest_path`
    /// through the guest agent (`WriteGuestFile`, 64 MiB per call, later
    /// calls appending), replacing it unless `append`. The agent's byte
    /// count must match; it reports no checksum, so [`Transfer::sha256`]
    /// is the one of the bytes sent. A failure leaves what was written so
    /// far in the guest.
    pub async fn write_guest_file(
        &self,
        domain: v1::DomainRef,
        path: impl AsRef<Path>,
        guest_path: &str,
        append: bool,
        mut progress: impl FnMut(Progress),
    ) -> Result<Transfer, ClientError> {
        use v1::write_guest_file_request::Item;
        let path = path.as_ref();
        let (file, len) = open(path).await?;
        progress(Progress {
            done: 0,
            total: Some(len),
        });
        let mut source = FileSource {
            path,
            file,
            hash: Sha256::new(),
            done: 0,
            total: len,
            progress: &mut progress,
        };
        // At least one call, so an empty file still replaces the guest's.
        loop {
            let part = (len - source.done).min(GUEST_CALL_LIMIT);
            let (tx, rx) = tokio::sync::mpsc::channel(UPLOAD_QUEUE);
            let first = v1::WriteGuestFileRequest {
                item: Some(Item::Target(v1::WriteGuestFileTarget {
                    domain: Some(domain.clone()),
                    path: guest_path.to_owned(),
                    append: append || source.done > 0,
                })),
            };
            if tx.send(first).await.is_err() {
                return Err(protocol("write stream closed"));
            }
            let mut agents = self.agents();
            let call = agents
                .write_guest_file(self.request(tokio_stream::wrappers::ReceiverStream::new(rx)));
            let send = source.send(part, GUEST_WRITE_CHUNK, tx, |c| v1::WriteGuestFileRequest {
                item: Some(Item::Data(c)),
            });
            let (answer, sent) = tokio::join!(call, send);
            let answer = answer?.into_inner();
            let sent = sent?;
            if sent != part || answer.written_bytes != part {
                return Err(protocol(format!(
                    "the agent wrote {} of {part} bytes",
                    answer.written_bytes
                )));
            }
            if source.done >= len {
                return Ok(Transfer {
                    bytes: source.done,
                    sha256: source.sha256(),
                });
            }
        }
    }

    /// Saves a PNG screenshot of screen `screen` of `domain` to a new file
    /// at `path` (replacing one only with `overwrite`) and returns what the
    /// server said of it; the byte count must be the announced one. No
    /// file is left at `path` on failure.
    pub async fn screenshot_to_file(
        &self,
        domain: v1::DomainRef,
        screen: u32,
        path: impl AsRef<Path>,
        overwrite: bool,
    ) -> Result<v1::ScreenshotInfo, ClientError> {
        use v1::screenshot_domain_response::Item;
        let mut out = PartFile::create(path.as_ref(), overwrite).await?;
        let mut stream = self
            .domains()
            .screenshot_domain(self.request(v1::ScreenshotDomainRequest {
                domain: Some(domain),
                screen,
            }))
            .await?
            .into_inner();
        let mut info = None;
        while let Some(msg) = stream.message().await? {
            match msg.item {
                Some(Item::Info(i)) => info = Some(i),
                Some(Item::Chunk(c)) => out.write(&c).await?,
                None => {}
            }
        }
        let info = info.ok_or_else(|| protocol("no screenshot info"))?;
        if info.size_bytes != out.bytes {
            return Err(protocol(format!(
                "the screenshot has {} of {} bytes",
                out.bytes, info.size_bytes
            )));
        }
        out.commit().await?;
        Ok(info)
    }

    /// Runs a program in the guest (`ExecGuestCommand`) and returns its
    /// output as it arrives, as a stream of [`ExecOutput`]: `Started`,
    /// then `Stdout` / `Stderr` chunks, then `Exited` last. A refused start
    /// is this call's error; a failure later (the request's deadline) is
    /// the stream's last item. Dropping the stream stops reading; the guest
    /// process is not killed (the agent cannot).
    pub async fn exec(
        &self,
        request: v1::ExecGuestCommandRequest,
    ) -> Result<ExecStream, ClientError> {
        let inner = self
            .agents()
            .exec_guest_command(self.request(request))
            .await?
            .into_inner();
        Ok(ExecStream { inner, done: false })
    }
}

/// One item of a guest command's output stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecOutput {
    /// The process runs in the guest with this pid.
    Started {
        /// The guest's process id.
        pid: i64,
    },
    /// A chunk of standard output (at most 32 KiB).
    Stdout(Vec<u8>),
    /// A chunk of standard error (at most 32 KiB).
    Stderr(Vec<u8>),
    /// How the process ended; always the last item.
    Exited(ExecExit),
}

/// How a guest process ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecExit {
    /// The exit code of a process that exited.
    pub code: Option<i32>,
    /// The signal that killed it.
    pub signal: Option<i32>,
    /// The agent cut standard output short.
    pub stdout_truncated: bool,
    /// The agent cut standard error short.
    pub stderr_truncated: bool,
}

/// Everything a guest command printed, gathered by [`ExecStream::output`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecResult {
    /// The guest's process id.
    pub pid: i64,
    /// All of standard output.
    pub stdout: Vec<u8>,
    /// All of standard error.
    pub stderr: Vec<u8>,
    /// How it ended.
    pub exit: ExecExit,
}

/// The output of a guest command as a [`Stream`] of [`ExecOutput`] (see
/// [`Client::exec`]).
#[derive(Debug)]
pub struct ExecStream {
    inner: tonic::Streaming<v1::ExecGuestCommandResponse>,
    done: bool,
}

impl ExecStream {
    /// Reads the stream to its end and gathers the output.
    pub async fn output(mut self) -> Result<ExecResult, ClientError> {
        use tokio_stream::StreamExt;
        let mut r = ExecResult::default();
        while let Some(item) = self.next().await {
            match item? {
                ExecOutput::Started { pid } => r.pid = pid,
                ExecOutput::Stdout(b) => r.stdout.extend_from_slice(&b),
                ExecOutput::Stderr(b) => r.stderr.extend_from_slice(&b),
                ExecOutput::Exited(e) => {
                    r.exit = e;
                    return Ok(r);
                }
            }
        }
        Err(protocol("the command's stream ended before it exited"))
    }
}

impl From<v1::GuestExecExited> for ExecExit {
    fn from(e: v1::GuestExecExited) -> Self {
        use v1::guest_exec_exited::Status;
        ExecExit {
            code: match e.status {
                Some(Status::ExitCode(c)) => Some(c),
                _ => None,
            },
            signal: match e.status {
                Some(Status::Signal(s)) => Some(s),
                _ => None,
            },
            stdout_truncated: e.stdout_truncated,
            stderr_truncated: e.stderr_truncated,
        }
    }
}

impl Stream for ExecStream {
    type Item = Result<ExecOutput, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        use v1::exec_guest_command_response::Item;
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            let msg = match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(protocol(
                        "the command's stream ended before it exited",
                    ))));
                }
                Poll::Ready(Some(Err(status))) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(status.into())));
                }
                Poll::Ready(Some(Ok(msg))) => msg,
            };
            let out = match msg.item {
                Some(Item::Started(s)) => ExecOutput::Started { pid: s.pid },
                Some(Item::Stdout(b)) => ExecOutput::Stdout(b),
                Some(Item::Stderr(b)) => ExecOutput::Stderr(b),
                Some(Item::Exited(e)) => {
                    self.done = true;
                    ExecOutput::Exited(e.into())
                }
                None => continue,
            };
            return Poll::Ready(Some(Ok(out)));
        }
    }
}
