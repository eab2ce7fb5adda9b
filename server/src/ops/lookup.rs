//! Lookups of storage objects by something other than their reference: a
//! volume by libvirt's key or by its host path, and the pool that holds a
//! volume. Each answers the same facts as `ops::storage`'s getters.

use super::{
    storage::{self, PoolFacts, VolumeFacts, VolumeKey},
    Connect,
};
use crate::error::Error;

/// The volume whose libvirt key is `key` (virStorageVolLookupByKey).
pub fn volume_by_key(conn: &Connect, host: &str, key: &str) -> Result<VolumeFacts, Error> {
    storage::volume_facts(&conn.lookup_storage_vol_by_key(key)?, host)
}

/// The volume at host path `path` (virStorageVolLookupByPath).
pub fn volume_by_path(conn: &Connect, host: &str, path: &str) -> Result<VolumeFacts, Error> {
    storage::volume_facts(&conn.lookup_storage_vol_by_path(path)?, host)
}

/// The pool holding a volume (virStoragePoolLookupByVolume).
pub fn pool_of_volume(conn: &Connect, key: &VolumeKey, host: &str) -> Result<PoolFacts, Error> {
    let v = storage::lookup_volume(conn, key)?;
    storage::pool_facts(&v.lookup_storage_pool()?, host)
}
