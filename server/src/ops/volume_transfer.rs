//! The volume transfer engines: the blocking halves of volume upload and
//! download, run on the host's slow lane.
//!
//! Each engine looks the volume up once and holds it and its libvirt stream
//! for the whole transfer; chunks only move bytes. The engines know nothing
//! of gRPC: the upload engine takes [`UploadItem`]s from a channel and
//! answers an [`UploadOutcome`], the download engine sends
//! [`DownloadItem`]s into one, and the service maps both to messages.
//!
//! Guarantees: both hash what they move (SHA-256); any upload failure
//! aborts the libvirt stream and deletes a volume the upload created; a
//! download whose receiver went away aborts its libvirt stream.

use super::Connect;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use virt::{storage_vol::StorageVol, stream::Stream, sys};

use super::storage::{lookup_pool, lookup_volume, volume_facts, VolumeFacts, VolumeKey};
use crate::error::Error;

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the async side of an upload hands the engine.
#[derive(Debug)]
pub enum UploadItem {
    /// The next bytes.
    Chunk(Vec<u8>),
    /// The client finished sending.
    End,
}

/// What an upload asks for, validated (the volume is the key it runs with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadPlan {
    /// Where to start writing.
    pub offset: u64,
    /// The exact byte count, or 0 for any.
    pub length: u64,
    /// The expected SHA-256 (lowercase hex), if any.
    pub sha256: Option<String>,
    /// Volume XML to create first, if asked.
    pub create_xml: Option<String>,
}

/// How an upload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadOutcome {
    /// The volume after the upload.
    pub volume: VolumeFacts,
    /// Bytes written.
    pub written: u64,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
    /// The upload created the volume.
    pub created: bool,
}

/// Blocking: runs an upload into the volume `key` fed by `rx`. A closed
/// channel without `End` means the client stream broke. On any failure the
/// libvirt stream is aborted, and a volume this call created is deleted
/// again.
pub fn upload(
    conn: &Connect,
    key: &VolumeKey,
    host: &str,
    plan: &UploadPlan,
    rx: &mut mpsc::Receiver<UploadItem>,
) -> Result<UploadOutcome, Error> {
    let (vol, created) = match &plan.create_xml {
        Some(xml) => {
            let pool = lookup_pool(conn, &key.pool)?;
            (StorageVol::create_xml(&pool, xml, 0)?, true)
        }
        None => (lookup_volume(conn, key)?, false),
    };
    let result = upload_into(conn, &vol, plan, rx).and_then(|(written, sha256)| {
        Ok(UploadOutcome {
            volume: volume_facts(&vol, host)?,
            written,
            sha256,
            created,
        })
    });
    if result.is_err() && created {
        if let Err(de) = vol.delete(0) {
            tracing::warn!(error = %de, "cannot delete the volume of a failed upload");
        }
    }
    result
}

fn upload_into(
    conn: &Connect,
    vol: &StorageVol,
    plan: &UploadPlan,
    rx: &mut mpsc::Receiver<UploadItem>,
) -> Result<(u64, String), Error> {
    let stream = Stream::new(conn, 0)?;
    vol.upload(&stream, plan.offset, plan.length, 0)?;
    let mut hasher = Sha256::new();
    let mut written: u64 = 0;
    let outcome: Result<(), Error> = loop {
        match rx.blocking_recv() {
            Some(UploadItem::Chunk(data)) => {
                written += data.len() as u64;
                if plan.length > 0 && written > plan.length {
                    break Err(Error::invalid(
                        "chunk",
                        format!("more bytes than the announced length {}", plan.length),
                    ));
                }
                hasher.update(&data);
                if let Err(e) = send_all(&stream, &data) {
                    break Err(e);
                }
            }
            Some(UploadItem::End) => break Ok(()),
            None => {
                break Err(Error::FailedPrecondition(
                    "the upload stream ended before it was complete".into(),
                ))
            }
        }
    };
    let sha = hex(&hasher.finalize());
    let outcome = outcome.and_then(|()| {
        if plan.length > 0 && written != plan.length {
            return Err(Error::invalid(
                "length",
                format!("announced {} bytes but received {written}", plan.length),
            ));
        }
        match &plan.sha256 {
            Some(want) if *want != sha => Err(Error::invalid(
                "sha256",
                format!("expected {want} but the received bytes hash to {sha}"),
            )),
            _ => Ok(()),
        }
    });
    match outcome {
        Ok(()) => {
            stream.finish()?;
            Ok((written, sha))
        }
        Err(e) => {
            let _ = stream.abort();
            Err(e)
        }
    }
}

fn send_all(stream: &Stream, mut data: &[u8]) -> Result<(), Error> {
    while !data.is_empty() {
        let n = stream.send(data)?;
        if n <= 0 {
            return Err(Error::internal("the libvirt stream accepted no bytes"));
        }
        data = data.get(n as usize..).unwrap_or_default();
    }
    Ok(())
}

/// Size of a download chunk.
pub const DOWNLOAD_CHUNK: usize = 256 * 1024;

/// One item a download yields, in order: `Started`, `Chunk`s, `Finished`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownloadItem {
    /// The transfer began.
    Started {
        /// The volume being read.
        volume: VolumeFacts,
        /// Bytes expected.
        expected: u64,
    },
    /// The next bytes.
    Chunk {
        /// Offset of `data` relative to the requested offset.
        offset: u64,
        /// The bytes.
        data: Vec<u8>,
    },
    /// The transfer is complete.
    Finished {
        /// Bytes sent in total.
        total: u64,
        /// SHA-256 of all bytes, lowercase hex.
        sha256: String,
    },
}

/// Blocking: streams the bytes of volume `key` from `offset` (`length`
/// bytes, 0: to the end) into `tx`. A receiver that went away (the client
/// left) ends the transfer early with `Ok`, after aborting the libvirt
/// stream.
pub fn download(
    conn: &Connect,
    key: &VolumeKey,
    host: &str,
    offset: u64,
    length: u64,
    tx: &mpsc::Sender<Result<DownloadItem, Error>>,
) -> Result<(), Error> {
    let vol = lookup_volume(conn, key)?;
    let volume = volume_facts(&vol, host)?;
    let stream = Stream::new(conn, 0)?;
    vol.download(&stream, offset, length, 0)?;
    // The physical size (a file volume's file size) is what a download of
    // the whole volume returns; drivers without it fall back to capacity.
    let size = vol
        .info_flags(sys::VIR_STORAGE_VOL_GET_PHYSICAL)
        .map(|i| i.allocation)
        .unwrap_or(volume.capacity);
    let expected = if length > 0 {
        length
    } else {
        size.saturating_sub(offset)
    };
    // The receiver went away (the client left): abort, and end without
    // an error nobody would read.
    let gone = |stream: Stream| {
        let _ = stream.abort();
        Ok(())
    };
    if tx
        .blocking_send(Ok(DownloadItem::Started { volume, expected }))
        .is_err()
    {
        return gone(stream);
    }
    let mut hasher = Sha256::new();
    let mut total: u64 = 0;
    let mut buf = vec![0u8; DOWNLOAD_CHUNK];
    loop {
        let n = match stream.recv(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                let _ = stream.abort();
                return Err(e.into());
            }
        };
        if n <= 0 {
            break;
        }
        let data = buf.get(..n as usize).unwrap_or_default().to_vec();
        hasher.update(&data);
        let chunk = DownloadItem::Chunk {
            offset: total,
            data,
        };
        total += n as u64;
        if tx.blocking_send(Ok(chunk)).is_err() {
            return gone(stream);
        }
    }
    stream.finish()?;
    let _ = tx.blocking_send(Ok(DownloadItem::Finished {
        total,
        sha256: hex(&hasher.finalize()),
    }));
    Ok(())
}
