//! The one resolver of references: a `DomainRef`, `StoragePoolRef`,
//! `StorageVolumeRef`, `NetworkRef` or `SnapshotRef` becomes the host's pool
//! and a validated key that `ops` looks the object up by.
//!
//! A handler resolves its reference, then runs one `ops` function with the
//! key on the host's pool:
//!
//! ```ignore
//! let t = Target::resolve(&self.hosts, r.domain.as_ref(), "domain")?;
//! let d = t.run(Lane::Quick, dl, move |c, key, host| ops::start(c, key, host, flags)).await?;
//! ```
//!
//! Resolving records the host and the key on the request's tracing span
//! (fields `host` and `target`).

use std::{fmt::Debug, sync::Arc};

use libvirt_grpc::v1::{
    domain_ref, network_ref, storage_pool_ref, DomainRef, NetworkRef, SnapshotRef, StoragePoolRef,
    StorageVolumeRef,
};
use tokio::time::Instant;

use crate::{
    error::Error,
    ops::{
        domain::DomainKey, network::NetworkKey, snapshot::SnapshotKey, storage::PoolKey,
        storage::VolumeKey, Connect,
    },
    pool::{HostPool, Hosts, Lane},
    render, validate,
};

/// A reference message the server resolves into a host and a key.
pub trait Reference {
    /// The validated key `ops` looks the object up by.
    type Key: Debug + Clone + Send + Sync + 'static;

    /// The configured host the reference names (empty: the default host).
    fn host(&self) -> &str;

    /// The key, or the violations of the reference's fields (`field` is the
    /// request field holding the reference, for violation names).
    fn key(&self, field: &str) -> Result<Self::Key, Error>;
}

/// The object a request names: its host's pool and its key.
#[derive(Debug, Clone)]
pub struct Target<K> {
    /// The host's pool.
    pub pool: Arc<HostPool>,
    /// The validated key.
    pub key: K,
}

impl<K: Debug + Clone + Send + Sync + 'static> Target<K> {
    /// Resolves the reference in request field `field`: every bad field of
    /// it in one `INVALID_ARGUMENT`, an unknown host `NOT_FOUND`.
    pub fn resolve<R>(hosts: &Hosts, r: Option<&R>, field: &str) -> Result<Self, Error>
    where
        R: Reference<Key = K>,
    {
        let r = r.ok_or_else(|| Error::invalid(field, "is required"))?;
        let mut v = validate::Violations::default();
        let pool = v.check(hosts.get(r.host()).map(Arc::clone));
        let key = v.check(r.key(field));
        v.finish()?;
        let (Some(pool), Some(key)) = (pool, key) else {
            return Err(Error::internal("a resolved reference lost its value"));
        };
        let span = tracing::Span::current();
        span.record("host", pool.name());
        span.record("target", tracing::field::debug(&key));
        crate::auth::audit::note_target(pool.name(), &key);
        Ok(Target { pool, key })
    }

    /// [`resolve`](Self::resolve), together with the request's other
    /// checked values: every bad field of both in one `INVALID_ARGUMENT`.
    pub fn resolve_with<R, P>(
        hosts: &Hosts,
        r: Option<&R>,
        field: &str,
        params: Result<P, Error>,
    ) -> Result<(Self, P), Error>
    where
        R: Reference<Key = K>,
    {
        let mut v = validate::Violations::default();
        let t = v.check(Self::resolve(hosts, r, field));
        let p = v.check(params);
        v.done(t.zip(p))
    }

    /// The configured host's name.
    pub fn host(&self) -> &str {
        self.pool.name()
    }

    /// Runs `f` with a connection, the key and the host's name through the
    /// host's pool on `lane`.
    pub async fn run<T, F>(&self, lane: Lane, deadline: Option<Instant>, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Connect, &K, &str) -> Result<T, Error> + Send + 'static,
    {
        let key = self.key.clone();
        let host = self.pool.name().to_owned();
        self.pool
            .run(lane, deadline, move |c| f(c, &key, &host))
            .await
    }
}

/// The name or UUID of a pool or network key.
fn name_or_uuid<K>(
    field: &str,
    key: Option<(&str, bool)>,
    by_name: fn(String) -> K,
    by_uuid: fn(String) -> K,
) -> Result<K, Error> {
    match key {
        None => Err(Error::invalid(field, "set one of name or uuid")),
        Some((n, true)) => {
            validate::required_text(&format!("{field}.name"), n)?;
            Ok(by_name(n.to_owned()))
        }
        Some((u, false)) => Ok(by_uuid(validate::uuid(&format!("{field}.uuid"), u)?)),
    }
}

impl Reference for DomainRef {
    type Key = DomainKey;

    fn host(&self) -> &str {
        &self.host
    }

    fn key(&self, field: &str) -> Result<DomainKey, Error> {
        use domain_ref::Key;
        match &self.key {
            None => Err(Error::invalid(field, "set one of name, uuid or id")),
            Some(Key::Name(n)) => {
                validate::required_text(&format!("{field}.name"), n)?;
                Ok(DomainKey::Name(n.clone()))
            }
            Some(Key::Uuid(u)) => Ok(DomainKey::Uuid(validate::uuid(
                &format!("{field}.uuid"),
                u,
            )?)),
            Some(Key::Id(id)) => Ok(DomainKey::Id(*id)),
        }
    }
}

impl Reference for StoragePoolRef {
    type Key = PoolKey;

    fn host(&self) -> &str {
        &self.host
    }

    fn key(&self, field: &str) -> Result<PoolKey, Error> {
        use storage_pool_ref::Key;
        let key = match &self.key {
            None => None,
            Some(Key::Name(n)) => Some((n.as_str(), true)),
            Some(Key::Uuid(u)) => Some((u.as_str(), false)),
        };
        name_or_uuid(field, key, PoolKey::Name, PoolKey::Uuid)
    }
}

impl Reference for NetworkRef {
    type Key = NetworkKey;

    fn host(&self) -> &str {
        &self.host
    }

    fn key(&self, field: &str) -> Result<NetworkKey, Error> {
        use network_ref::Key;
        let key = match &self.key {
            None => None,
            Some(Key::Name(n)) => Some((n.as_str(), true)),
            Some(Key::Uuid(u)) => Some((u.as_str(), false)),
        };
        name_or_uuid(field, key, NetworkKey::Name, NetworkKey::Uuid)
    }
}

/// The host of a nested reference, or "" (the default host) without one.
fn nested_host<R: Reference>(r: Option<&R>) -> &str {
    r.map_or("", Reference::host)
}

impl Reference for StorageVolumeRef {
    type Key = VolumeKey;

    fn host(&self) -> &str {
        nested_host(self.pool.as_ref())
    }

    fn key(&self, field: &str) -> Result<VolumeKey, Error> {
        let mut v = validate::Violations::default();
        let pool_field = format!("{field}.pool");
        let pool = v.check(
            self.pool
                .as_ref()
                .ok_or_else(|| Error::invalid(&pool_field, "is required"))
                .and_then(|p| p.key(&pool_field)),
        );
        v.check(render::storage::volume_name(
            &format!("{field}.name"),
            &self.name,
        ));
        v.done(pool.map(|pool| VolumeKey {
            pool,
            name: self.name.clone(),
        }))
    }
}

impl Reference for SnapshotRef {
    type Key = SnapshotKey;

    fn host(&self) -> &str {
        nested_host(self.domain.as_ref())
    }

    fn key(&self, field: &str) -> Result<SnapshotKey, Error> {
        let mut v = validate::Violations::default();
        let domain_field = format!("{field}.domain");
        let domain = v.check(
            self.domain
                .as_ref()
                .ok_or_else(|| Error::invalid(&domain_field, "is required"))
                .and_then(|d| d.key(&domain_field)),
        );
        v.check(validate::required_text(
            &format!("{field}.name"),
            &self.name,
        ));
        v.done(domain.map(|domain| SnapshotKey {
            domain,
            name: self.name.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn fields(e: Error) -> Vec<String> {
        match e {
            Error::InvalidArgument(v) => v.into_iter().map(|v| v.field).collect(),
            other => panic!("not INVALID_ARGUMENT: {other:?}"),
        }
    }

    #[test]
    fn a_volume_ref_reports_every_bad_field() {
        let r = StorageVolumeRef {
            pool: Some(StoragePoolRef {
                host: String::new(),
                key: Some(storage_pool_ref::Key::Uuid("not-a-uuid".into())),
            }),
            name: "a/b".into(),
        };
        assert_eq!(
            fields(r.key("volume").unwrap_err()),
            ["volume.pool.uuid", "volume.name"]
        );
    }

    #[test]
    fn a_snapshot_ref_reports_every_bad_field() {
        let r = SnapshotRef {
            domain: None,
            name: String::new(),
        };
        assert_eq!(
            fields(r.key("snapshot").unwrap_err()),
            ["snapshot.domain", "snapshot.name"]
        );
    }

    #[test]
    fn domain_keys() {
        let by = |k| DomainRef {
            host: String::new(),
            key: Some(k),
        };
        assert_eq!(
            by(domain_ref::Key::Id(3)).key("domain").unwrap(),
            DomainKey::Id(3)
        );
        assert_eq!(
            fields(
                by(domain_ref::Key::Name(String::new()))
                    .key("d")
                    .unwrap_err()
            ),
            ["d.name"]
        );
        let none = DomainRef {
            host: String::new(),
            key: None,
        };
        assert_eq!(fields(none.key("domain").unwrap_err()), ["domain"]);
    }
}
