//! Storage pool and volume operations, including the blocking halves of
//! volume upload and download.

use std::collections::HashSet;

use libvirt_grpc::v1;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use virt::{
    connect::Connect, storage_pool::StoragePool, storage_vol::StorageVol, stream::Stream, sys,
};

use super::PriorDefinition;
use crate::{error::Error, xml_query};

/// How a request identifies a pool, already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolKey {
    /// By name.
    Name(String),
    /// By canonical UUID.
    Uuid(String),
}

/// Finds a pool.
pub fn lookup_pool(conn: &Connect, key: &PoolKey) -> Result<StoragePool, Error> {
    Ok(match key {
        PoolKey::Name(n) => conn.lookup_storage_pool_by_name(n)?,
        PoolKey::Uuid(u) => conn.lookup_storage_pool_by_uuid_string(u)?,
    })
}

/// How a request identifies a volume, already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeKey {
    /// The pool holding it.
    pub pool: PoolKey,
    /// Its name within the pool.
    pub name: String,
}

/// Finds a volume in a pool.
pub fn lookup_volume(conn: &Connect, key: &VolumeKey) -> Result<StorageVol, Error> {
    let p = lookup_pool(conn, &key.pool)?;
    Ok(p.lookup_storage_vol_by_name(&key.name)?)
}

fn pool_state(s: u32) -> v1::StoragePoolState {
    use v1::StoragePoolState as S;
    match s {
        sys::VIR_STORAGE_POOL_INACTIVE => S::Inactive,
        sys::VIR_STORAGE_POOL_BUILDING => S::Building,
        sys::VIR_STORAGE_POOL_RUNNING => S::Running,
        sys::VIR_STORAGE_POOL_DEGRADED => S::Degraded,
        sys::VIR_STORAGE_POOL_INACCESSIBLE => S::Inaccessible,
        _ => S::Unspecified,
    }
}

/// The proto view of a pool.
pub fn pool_info(p: &StoragePool, host: &str) -> Result<v1::StoragePool, Error> {
    let info = p.info()?;
    let xml = p.xml_desc(0)?;
    Ok(v1::StoragePool {
        host: host.to_owned(),
        name: p.name()?,
        uuid: p.uuid_string()?,
        state: pool_state(info.state) as i32,
        r#type: xml_query::attr(&xml, &["pool"], "type").unwrap_or_default(),
        persistent: p.is_persistent()?,
        autostart: p.autostart()?,
        capacity_bytes: info.capacity,
        allocation_bytes: info.allocation,
        available_bytes: info.available,
        target_path: xml_query::text(&xml, &["pool", "target", "path"]).unwrap_or_default(),
    })
}

fn vol_type(t: u32) -> v1::StorageVolumeType {
    use v1::StorageVolumeType as T;
    match t {
        sys::VIR_STORAGE_VOL_FILE => T::File,
        sys::VIR_STORAGE_VOL_BLOCK => T::Block,
        sys::VIR_STORAGE_VOL_DIR => T::Dir,
        sys::VIR_STORAGE_VOL_NETWORK => T::Network,
        sys::VIR_STORAGE_VOL_NETDIR => T::Netdir,
        sys::VIR_STORAGE_VOL_PLOOP => T::Ploop,
        _ => T::Unspecified,
    }
}

/// The proto view of a volume.
pub fn volume_info(v: &StorageVol, host: &str) -> Result<v1::StorageVolume, Error> {
    let info = v.info()?;
    let xml = v.xml_desc(0)?;
    let pool = v.lookup_storage_pool()?.name()?;
    Ok(v1::StorageVolume {
        host: host.to_owned(),
        pool,
        name: v.name()?,
        key: v.key()?,
        path: v.path()?,
        r#type: vol_type(info.kind) as i32,
        format: xml_query::attr(&xml, &["volume", "target", "format"], "type").unwrap_or_default(),
        capacity_bytes: info.capacity,
        allocation_bytes: info.allocation,
        backing_store_path: xml_query::text(&xml, &["volume", "backingStore", "path"])
            .unwrap_or_default(),
    })
}

/// What `DefineStoragePool` asks for beyond the definition itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolSteps {
    /// Make the pool's storage (e.g. its directory) if it needs it.
    pub build: bool,
    /// Have the pool running.
    pub start: bool,
    /// Turn autostart on.
    pub autostart: bool,
}

/// What one define call changed, so that a failure undoes exactly that.
#[derive(Debug, Default)]
struct PoolDone {
    /// This call turned autostart on.
    autostart: bool,
    /// This call's build made storage that was not usable before it.
    built: bool,
    /// This call started the pool.
    started: bool,
}

/// Defines a pool (or replaces the definition of an existing one), then
/// builds, starts and sets autostart as asked. A failure undoes only what
/// this call did:
///
/// - a pool that did not exist before is stopped (if this call started it)
///   and undefined; its storage is deleted only when this call's build made
///   it, i.e. the pool could not start before the build;
/// - a pool that existed keeps running if it ran and keeps its storage; its
///   previous definition and autostart setting are put back.
///
/// On an existing pool `build` and `start` only act when it is inactive: a
/// running pool already has its storage, and its new definition applies at
/// its next start. With both asked, the pool is first started without a
/// build; only when that fails is it built and started again, so storage
/// that already works is never rebuilt and never ours to delete.
pub fn define_pool(
    conn: &Connect,
    host: &str,
    xml: &str,
    steps: PoolSteps,
) -> Result<v1::StoragePool, Error> {
    // Which pools exist, by UUID: whatever the XML says, a define that
    // lands on one of these changed an existing pool, and the undo must
    // never remove it. (Another client defining the same pool between this
    // listing and the define below would go unnoticed; that window is the
    // length of one call.)
    let before = conn
        .list_all_storage_pools(0)?
        .iter()
        .map(StoragePool::uuid_string)
        .collect::<Result<HashSet<_>, _>>()?;
    let prior = prior_pool(conn, xml)?;
    let p = conn.define_storage_pool_xml(xml, 0)?;
    let uuid = p.uuid_string()?;
    let existed = before.contains(&uuid);
    let prior = prior.and_then(|(u, prior)| (u == uuid).then_some(prior));
    let mut done = PoolDone::default();
    match pool_steps(&p, host, steps, &mut done) {
        Ok(info) => Ok(info),
        Err(e) => {
            undo_pool(conn, &p, existed, prior, &done);
            Err(e)
        }
    }
}

/// The UUID and definition of the existing pool the XML names (by name or
/// UUID), if there is one and its definition can be read.
fn prior_pool(conn: &Connect, xml: &str) -> Result<Option<(String, PriorDefinition)>, Error> {
    // A lookup that fails (no such pool, a malformed UUID the define will
    // refuse anyway) finds nothing; the UUID listing still guards the undo.
    let found = xml_query::text(xml, &["pool", "name"])
        .and_then(|n| conn.lookup_storage_pool_by_name(&n).ok())
        .or_else(|| {
            xml_query::text(xml, &["pool", "uuid"])
                .and_then(|u| conn.lookup_storage_pool_by_uuid_string(u.trim()).ok())
        });
    let Some(p) = found else {
        return Ok(None);
    };
    let prior = if p.is_persistent()? {
        match super::config_xml(|f| p.xml_desc(f), sys::VIR_STORAGE_XML_INACTIVE) {
            Some(config) => PriorDefinition::Persistent(config),
            None => return Ok(None),
        }
    } else {
        PriorDefinition::Transient
    };
    Ok(Some((p.uuid_string()?, prior)))
}

fn pool_steps(
    p: &StoragePool,
    host: &str,
    steps: PoolSteps,
    done: &mut PoolDone,
) -> Result<v1::StoragePool, Error> {
    // Before any start, so that a pool this call creates and starts is
    // never left running without its autostart.
    if steps.autostart && !p.autostart()? {
        p.set_autostart(true)?;
        done.autostart = true;
    }
    if !p.is_active()? {
        match (steps.build, steps.start) {
            (true, true) => {
                if let Err(unbuilt) = p.create(0) {
                    tracing::debug!(error = %unbuilt, "pool does not start unbuilt; building it");
                    p.build(0)?;
                    done.built = true;
                    p.create(0)?;
                }
                done.started = true;
            }
            (true, false) => p.build(0)?,
            (false, true) => {
                p.create(0)?;
                done.started = true;
            }
            (false, false) => {}
        }
    }
    pool_info(p, host)
}

/// Best effort: takes back what `done` records. Failures are logged; the
/// caller reports the error that made the call fail.
fn undo_pool(
    conn: &Connect,
    p: &StoragePool,
    existed: bool,
    prior: Option<PriorDefinition>,
    done: &PoolDone,
) {
    let warn = |what: &str, r: Result<(), virt::error::Error>| {
        if let Err(e) = r {
            tracing::warn!(error = %e, "undoing a failed pool define: cannot {what}");
        }
    };
    if done.started {
        warn("stop the pool", p.destroy());
    }
    if !existed {
        if done.built {
            warn("delete the storage it built", p.delete(0));
        }
        warn("undefine the pool", p.undefine());
        return;
    }
    if done.autostart {
        warn("turn autostart off again", p.set_autostart(false));
    }
    match prior {
        Some(PriorDefinition::Persistent(config)) => warn(
            "restore the previous definition",
            conn.define_storage_pool_xml(&config, 0).map(|_| ()),
        ),
        // libvirt refuses to undefine a running pool, so a transient pool
        // keeps the definition it gained.
        Some(PriorDefinition::Transient) => {}
        None => tracing::warn!(
            "undoing a failed pool define: the previous definition of an existing pool is unknown"
        ),
    }
}

/// libvirt's list flag for a pool type name.
pub fn pool_type_flag(t: &str) -> Option<u32> {
    Some(match t {
        "dir" => sys::VIR_CONNECT_LIST_STORAGE_POOLS_DIR,
        "fs" => sys::VIR_CONNECT_LIST_STORAGE_POOLS_FS,
        "netfs" => sys::VIR_CONNECT_LIST_STORAGE_POOLS_NETFS,
        "logical" => sys::VIR_CONNECT_LIST_STORAGE_POOLS_LOGICAL,
        "disk" => sys::VIR_CONNECT_LIST_STORAGE_POOLS_DISK,
        "iscsi" => sys::VIR_CONNECT_LIST_STORAGE_POOLS_ISCSI,
        "scsi" => sys::VIR_CONNECT_LIST_STORAGE_POOLS_SCSI,
        "mpath" => sys::VIR_CONNECT_LIST_STORAGE_POOLS_MPATH,
        "rbd" => sys::VIR_CONNECT_LIST_STORAGE_POOLS_RBD,
        "sheepdog" => sys::VIR_CONNECT_LIST_STORAGE_POOLS_SHEEPDOG,
        "gluster" => sys::VIR_CONNECT_LIST_STORAGE_POOLS_GLUSTER,
        "zfs" => sys::VIR_CONNECT_LIST_STORAGE_POOLS_ZFS,
        "vstorage" => sys::VIR_CONNECT_LIST_STORAGE_POOLS_VSTORAGE,
        "iscsi-direct" => sys::VIR_CONNECT_LIST_STORAGE_POOLS_ISCSI_DIRECT,
        _ => return None,
    })
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the async side of an upload hands the blocking side.
#[derive(Debug)]
pub enum UploadItem {
    /// The next bytes.
    Chunk(Vec<u8>),
    /// The client finished sending.
    End,
}

/// What an upload asks for, validated.
#[derive(Debug, Clone)]
pub struct UploadPlan {
    /// The pool.
    pub pool: PoolKey,
    /// The volume's name.
    pub name: String,
    /// Where to start writing.
    pub offset: u64,
    /// The exact byte count, or 0 for any.
    pub length: u64,
    /// The expected SHA-256 (lowercase hex), if any.
    pub sha256: Option<String>,
    /// Volume XML to create first, if asked.
    pub create_xml: Option<String>,
}

/// Blocking: runs an upload fed by `rx`. A closed channel without `End`
/// means the client stream broke. On any failure the libvirt stream is
/// aborted, and a volume this call created is deleted again.
pub fn upload(
    conn: &Connect,
    host: &str,
    plan: &UploadPlan,
    rx: &mut mpsc::Receiver<UploadItem>,
) -> Result<v1::UploadVolumeResponse, Error> {
    let pool = lookup_pool(conn, &plan.pool)?;
    let (vol, created) = match &plan.create_xml {
        Some(xml) => (StorageVol::create_xml(&pool, xml, 0)?, true),
        None => (pool.lookup_storage_vol_by_name(&plan.name)?, false),
    };
    match upload_into(conn, &vol, plan, rx) {
        Ok((written, sha)) => Ok(v1::UploadVolumeResponse {
            volume: Some(volume_info(&vol, host)?),
            bytes_written: written,
            sha256: sha,
            created,
        }),
        Err(e) => {
            if created {
                if let Err(de) = vol.delete(0) {
                    tracing::warn!(error = %de, "cannot delete the volume of a failed upload");
                }
            }
            Err(e)
        }
    }
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

/// Blocking: streams a volume's bytes into `tx`. Returns `Ok(None)` when the
/// receiver went away (the client left), after aborting the libvirt stream.
pub fn download(
    conn: &Connect,
    host: &str,
    pool: &PoolKey,
    name: &str,
    offset: u64,
    length: u64,
    tx: &mpsc::Sender<Result<v1::DownloadVolumeResponse, tonic::Status>>,
) -> Result<Option<()>, Error> {
    use v1::download_volume_response::Msg;
    let vol = lookup_volume(
        conn,
        &VolumeKey {
            pool: pool.clone(),
            name: name.to_owned(),
        },
    )?;
    let info = volume_info(&vol, host)?;
    let stream = Stream::new(conn, 0)?;
    vol.download(&stream, offset, length, 0)?;
    // The physical size (a file volume's file size) is what a download of
    // the whole volume returns; drivers without it fall back to capacity.
    let size = vol
        .info_flags(sys::VIR_STORAGE_VOL_GET_PHYSICAL)
        .map(|i| i.allocation)
        .unwrap_or(info.capacity_bytes);
    let expected = if length > 0 {
        length
    } else {
        size.saturating_sub(offset)
    };
    let started = v1::DownloadVolumeResponse {
        msg: Some(Msg::Started(v1::DownloadStarted {
            volume: Some(info),
            expected_bytes: expected,
        })),
    };
    if tx.blocking_send(Ok(started)).is_err() {
        let _ = stream.abort();
        return Ok(None);
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
        let msg = v1::DownloadVolumeResponse {
            msg: Some(Msg::Chunk(v1::DownloadChunk {
                offset: total,
                data,
            })),
        };
        total += n as u64;
        if tx.blocking_send(Ok(msg)).is_err() {
            let _ = stream.abort();
            return Ok(None);
        }
    }
    stream.finish()?;
    let done = v1::DownloadVolumeResponse {
        msg: Some(Msg::Finished(v1::DownloadFinished {
            total_bytes: total,
            sha256: hex(&hasher.finalize()),
        })),
    };
    let _ = tx.blocking_send(Ok(done));
    Ok(Some(()))
}
