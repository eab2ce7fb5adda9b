//! Storage pool and volume operations: every libvirt call of
//! `StorageService` except the volume transfers (`ops::volume_transfer`),
//! and the rollback of a half-done pool define. Each function takes a
//! validated key, looks its object up itself and answers with the plain
//! facts it read ([`PoolFacts`], [`VolumeFacts`]), which `convert::storage`
//! turns into messages.

use std::collections::HashSet;

use super::Connect;
use virt::{storage_pool::StoragePool, storage_vol::StorageVol, sys};

use super::PriorDefinition;
use crate::{error::Error, render::storage as render, xml_query};

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

/// What the server reads of a pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolFacts {
    /// The configured host's name.
    pub host: String,
    /// The pool's name.
    pub name: String,
    /// Its UUID.
    pub uuid: String,
    /// libvirt's virStoragePoolState.
    pub state: u32,
    /// libvirt's type name (`<pool type=...>`).
    pub type_name: String,
    /// Has a persistent definition.
    pub persistent: bool,
    /// Starts with the daemon.
    pub autostart: bool,
    /// Bytes in total.
    pub capacity: u64,
    /// Bytes allocated.
    pub allocation: u64,
    /// Bytes free.
    pub available: u64,
    /// `<target><path>`, or empty.
    pub target_path: String,
}

/// Reads a pool's facts.
pub fn pool_facts(p: &StoragePool, host: &str) -> Result<PoolFacts, Error> {
    let info = p.info()?;
    let xml = p.xml_desc(0)?;
    Ok(PoolFacts {
        host: host.to_owned(),
        name: p.name()?,
        uuid: p.uuid_string()?,
        state: info.state,
        type_name: xml_query::attr(&xml, &["pool"], "type").unwrap_or_default(),
        persistent: p.is_persistent()?,
        autostart: p.autostart()?,
        capacity: info.capacity,
        allocation: info.allocation,
        available: info.available,
        target_path: xml_query::text(&xml, &["pool", "target", "path"]).unwrap_or_default(),
    })
}

/// What the server reads of a volume.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeFacts {
    /// The configured host's name.
    pub host: String,
    /// The pool's name.
    pub pool: String,
    /// The volume's name.
    pub name: String,
    /// libvirt's key.
    pub key: String,
    /// The path on the host.
    pub path: String,
    /// libvirt's virStorageVolType.
    pub kind: u32,
    /// libvirt's format name (`<target><format type=...>`), if any.
    pub format: Option<String>,
    /// Virtual size in bytes.
    pub capacity: u64,
    /// Allocated bytes.
    pub allocation: u64,
    /// `<backingStore><path>`, or empty.
    pub backing_store_path: String,
}

/// Reads a volume's facts.
pub fn volume_facts(v: &StorageVol, host: &str) -> Result<VolumeFacts, Error> {
    let info = v.info()?;
    let xml = v.xml_desc(0)?;
    let pool = v.lookup_storage_pool()?.name()?;
    Ok(VolumeFacts {
        host: host.to_owned(),
        pool,
        name: v.name()?,
        key: v.key()?,
        path: v.path()?,
        kind: info.kind,
        format: xml_query::attr(&xml, &["volume", "target", "format"], "type"),
        capacity: info.capacity,
        allocation: info.allocation,
        backing_store_path: xml_query::text(&xml, &["volume", "backingStore", "path"])
            .unwrap_or_default(),
    })
}

/// The pools of a host that match libvirt's list `flags`; pools that
/// vanish while they are read are left out.
pub fn list_pools(conn: &Connect, host: &str, flags: u32) -> Result<Vec<PoolFacts>, Error> {
    conn.list_all_storage_pools(flags)?
        .iter()
        .map(|p| super::unless_vanished(pool_facts(p, host)))
        .filter_map(Result::transpose)
        .collect()
}

/// A pool's facts.
pub fn get_pool(conn: &Connect, key: &PoolKey, host: &str) -> Result<PoolFacts, Error> {
    pool_facts(&lookup_pool(conn, key)?, host)
}

/// A pool's XML with libvirt's XML `flags`.
pub fn pool_xml(conn: &Connect, key: &PoolKey, flags: u32) -> Result<String, Error> {
    Ok(lookup_pool(conn, key)?.xml_desc(flags)?)
}

/// Looks the pool up, applies one change to it, and reads it back: the
/// shape of every call that changes a pool and answers it.
fn changed_pool(
    conn: &Connect,
    key: &PoolKey,
    host: &str,
    change: impl FnOnce(&StoragePool) -> Result<(), virt::error::Error>,
) -> Result<PoolFacts, Error> {
    let p = lookup_pool(conn, key)?;
    change(&p)?;
    pool_facts(&p, host)
}

/// Builds a pool's storage with libvirt's build `flags`.
pub fn build_pool(
    conn: &Connect,
    key: &PoolKey,
    host: &str,
    flags: u32,
) -> Result<PoolFacts, Error> {
    changed_pool(conn, key, host, |p| {
        p.build(flags)?;
        Ok(())
    })
}

/// Starts a pool with libvirt's create `flags`.
pub fn start_pool(
    conn: &Connect,
    key: &PoolKey,
    host: &str,
    flags: u32,
) -> Result<PoolFacts, Error> {
    changed_pool(conn, key, host, |p| {
        p.create(flags)?;
        Ok(())
    })
}

/// Stops a pool (virStoragePoolDestroy). A transient pool is gone once
/// stopped: its facts are then what was read before, inactive and not
/// persistent.
pub fn stop_pool(conn: &Connect, key: &PoolKey, host: &str) -> Result<PoolFacts, Error> {
    let p = lookup_pool(conn, key)?;
    let before = pool_facts(&p, host)?;
    p.destroy()?;
    match conn.lookup_storage_pool_by_uuid_string(&before.uuid) {
        Ok(p) => pool_facts(&p, host),
        Err(e) if crate::error::is_not_found(&e) => Ok(PoolFacts {
            state: sys::VIR_STORAGE_POOL_INACTIVE,
            persistent: false,
            autostart: false,
            capacity: 0,
            allocation: 0,
            available: 0,
            ..before
        }),
        Err(e) => Err(e.into()),
    }
}

/// Creates and starts a transient pool from XML (virStoragePoolCreateXML,
/// `flags`: VIR_STORAGE_POOL_CREATE_*). libvirt itself forgets a pool whose
/// start fails, so there is nothing to undo.
pub fn create_pool(conn: &Connect, host: &str, xml: &str, flags: u32) -> Result<PoolFacts, Error> {
    pool_facts(&conn.create_storage_pool_xml(xml, flags)?, host)
}

/// Deletes a pool's storage; the definition stays.
pub fn delete_pool(conn: &Connect, key: &PoolKey, host: &str) -> Result<PoolFacts, Error> {
    changed_pool(conn, key, host, |p| {
        p.delete(0)?;
        Ok(())
    })
}

/// Removes a pool's definition.
pub fn undefine_pool(conn: &Connect, key: &PoolKey) -> Result<(), Error> {
    Ok(lookup_pool(conn, key)?.undefine()?)
}

/// Rescans a pool's volumes.
pub fn refresh_pool(conn: &Connect, key: &PoolKey, host: &str) -> Result<PoolFacts, Error> {
    changed_pool(conn, key, host, |p| {
        p.refresh(0)?;
        Ok(())
    })
}

/// Sets a pool's autostart.
pub fn set_pool_autostart(
    conn: &Connect,
    key: &PoolKey,
    host: &str,
    on: bool,
) -> Result<PoolFacts, Error> {
    changed_pool(conn, key, host, |p| {
        p.set_autostart(on)?;
        Ok(())
    })
}

/// libvirt's `<sources>` document for a pool type (its libvirt name).
pub fn find_pool_sources(
    conn: &Connect,
    type_name: &str,
    source_xml: Option<&str>,
) -> Result<String, Error> {
    Ok(conn.find_storage_pool_sources(type_name, source_xml, 0)?)
}

/// The volumes of a pool; volumes that vanish while they are read are left
/// out.
pub fn list_volumes(conn: &Connect, key: &PoolKey, host: &str) -> Result<Vec<VolumeFacts>, Error> {
    lookup_pool(conn, key)?
        .list_all_volumes(0)?
        .iter()
        .map(|v| super::unless_vanished(volume_facts(v, host)))
        .filter_map(Result::transpose)
        .collect()
}

/// A volume's facts.
pub fn get_volume(conn: &Connect, key: &VolumeKey, host: &str) -> Result<VolumeFacts, Error> {
    volume_facts(&lookup_volume(conn, key)?, host)
}

/// A volume's XML.
pub fn volume_xml(conn: &Connect, key: &VolumeKey) -> Result<String, Error> {
    Ok(lookup_volume(conn, key)?.xml_desc(0)?)
}

/// Creates a volume from XML in a pool.
pub fn create_volume(
    conn: &Connect,
    key: &PoolKey,
    host: &str,
    xml: &str,
) -> Result<VolumeFacts, Error> {
    let p = lookup_pool(conn, key)?;
    let v = StorageVol::create_xml(&p, xml, 0)?;
    volume_facts(&v, host)
}

/// Copies a volume into a new one `name` in the same pool, with `format`
/// (libvirt's name) or the source's.
pub fn clone_volume(
    conn: &Connect,
    key: &VolumeKey,
    host: &str,
    name: &str,
    format: Option<&str>,
) -> Result<VolumeFacts, Error> {
    let src = lookup_volume(conn, key)?;
    let info = src.info()?;
    let source_format = || -> Result<Option<String>, Error> {
        Ok(xml_query::attr(
            &src.xml_desc(0)?,
            &["volume", "target", "format"],
            "type",
        ))
    };
    let format = match format {
        // libvirt makes a ploop volume only out of another ploop volume
        // (and would answer an internal error before copying anything).
        Some("ploop") if source_format()?.as_deref() != Some("ploop") => {
            return Err(Error::invalid(
                "format",
                "a PLOOP volume can only be cloned from a PLOOP volume",
            ))
        }
        Some(f) => Some(f.to_owned()),
        None => source_format()?,
    };
    let xml = render::render_clone(name, info.capacity, format.as_deref())?;
    let pool = src.lookup_storage_pool()?;
    let v = StorageVol::create_xml_from(&pool, &xml, &src, 0)?;
    volume_facts(&v, host)
}

/// Deletes a volume and its data.
pub fn delete_volume(conn: &Connect, key: &VolumeKey) -> Result<(), Error> {
    Ok(lookup_volume(conn, key)?.delete(0)?)
}

/// Overwrites a volume with zeros.
pub fn wipe_volume(conn: &Connect, key: &VolumeKey, host: &str) -> Result<VolumeFacts, Error> {
    let v = lookup_volume(conn, key)?;
    v.wipe(0)?;
    volume_facts(&v, host)
}

/// Resizes a volume with libvirt's resize `flags`.
pub fn resize_volume(
    conn: &Connect,
    key: &VolumeKey,
    host: &str,
    capacity: u64,
    flags: u32,
) -> Result<VolumeFacts, Error> {
    let v = lookup_volume(conn, key)?;
    v.resize(capacity, flags)?;
    volume_facts(&v, host)
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
) -> Result<PoolFacts, Error> {
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
) -> Result<PoolFacts, Error> {
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
    pool_facts(p, host)
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
