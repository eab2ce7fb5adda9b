//! Handle-style access to storage pools and their volumes:
//! `client.pool("default").volume("disk.img").info().await?`.

use std::path::Path;

use libvirt_grpc::v1;

use crate::{
    required, Client, ClientError, DownloadOptions, Progress, Transfer, UploadOptions, VolumeUpload,
};

/// One storage pool of the client's default host, by name
/// ([`Client::pool`]). Every method is one call; changes answer the pool
/// as read after them.
///
/// ```no_run
/// # async fn demo(client: libvirt_grpc_client::Client) -> Result<(), libvirt_grpc_client::ClientError> {
/// use libvirt_grpc_client::v1;
/// let pool = client.pool("default");
/// let disk = pool.volume("web1.qcow2");
/// disk.create(v1::StorageVolumeSpec {
///     format: v1::StorageVolumeFormat::Qcow2 as i32,
///     capacity_bytes: 10 << 30,
///     ..Default::default()
/// })
/// .await?;
/// for v in pool.volumes().await? {
///     println!("{} {} bytes", v.name, v.capacity_bytes);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PoolHandle {
    client: Client,
    name: String,
}

fn pool(p: Option<v1::StoragePool>) -> Result<v1::StoragePool, ClientError> {
    required(p, "pool")
}

fn volume(v: Option<v1::StorageVolume>) -> Result<v1::StorageVolume, ClientError> {
    required(v, "volume")
}

impl PoolHandle {
    pub(crate) fn new(client: Client, name: String) -> Self {
        PoolHandle { client, name }
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The reference every call of this handle sends.
    pub fn pool_ref(&self) -> v1::StoragePoolRef {
        v1::StoragePoolRef {
            host: self.client.default_host.clone(),
            key: Some(v1::storage_pool_ref::Key::Name(self.name.clone())),
        }
    }

    fn pref(&self) -> Option<v1::StoragePoolRef> {
        Some(self.pool_ref())
    }

    /// A handle on its volume `name`.
    pub fn volume(&self, name: impl Into<String>) -> VolumeHandle {
        VolumeHandle {
            pool: self.clone(),
            name: name.into(),
        }
    }

    /// Its state, type and sizes (`GetStoragePool`).
    pub async fn info(&self) -> Result<v1::StoragePool, ClientError> {
        self.client
            .read(|| async {
                let r = self
                    .client
                    .request(v1::GetStoragePoolRequest { pool: self.pref() });
                pool(
                    self.client
                        .storage()
                        .get_storage_pool(r)
                        .await?
                        .into_inner()
                        .pool,
                )
            })
            .await
    }

    /// Its XML: the live one, or with `inactive` the persistent definition.
    pub async fn xml(&self, inactive: bool) -> Result<String, ClientError> {
        self.client
            .read(|| async {
                let r = self.client.request(v1::GetStoragePoolXmlRequest {
                    pool: self.pref(),
                    inactive,
                });
                Ok(self
                    .client
                    .storage()
                    .get_storage_pool_xml(r)
                    .await?
                    .into_inner()
                    .xml)
            })
            .await
    }

    /// Every volume of the (active) pool, following pages; an inactive
    /// pool is `FailedPrecondition`.
    pub async fn volumes(&self) -> Result<Vec<v1::StorageVolume>, ClientError> {
        self.client
            .read(|| async {
                let mut out = Vec::new();
                let mut page_token = String::new();
                loop {
                    let r = self.client.request(v1::ListStorageVolumesRequest {
                        pool: self.pref(),
                        page_size: 0,
                        page_token,
                    });
                    let resp = self
                        .client
                        .storage()
                        .list_storage_volumes(r)
                        .await?
                        .into_inner();
                    out.extend(resp.volumes);
                    if resp.next_page_token.is_empty() {
                        return Ok(out);
                    }
                    page_token = resp.next_page_token;
                }
            })
            .await
    }

    /// Builds its storage (e.g. makes a `dir` pool's directory) the
    /// backend's default way (`BuildStoragePool`).
    pub async fn build(&self) -> Result<v1::StoragePool, ClientError> {
        let r = self.client.request(v1::BuildStoragePoolRequest {
            pool: self.pref(),
            mode: v1::StoragePoolBuildMode::Unspecified as i32,
        });
        pool(
            self.client
                .storage()
                .build_storage_pool(r)
                .await?
                .into_inner()
                .pool,
        )
    }

    /// Starts it, building it first with `build`; a running pool is
    /// `FailedPrecondition`, missing storage `NotFound`.
    pub async fn start(&self, build: bool) -> Result<v1::StoragePool, ClientError> {
        let r = self.client.request(v1::StartStoragePoolRequest {
            pool: self.pref(),
            build,
        });
        pool(
            self.client
                .storage()
                .start_storage_pool(r)
                .await?
                .into_inner()
                .pool,
        )
    }

    /// Stops it (libvirt's destroy); data and definition stay, a transient
    /// pool is gone.
    pub async fn stop(&self) -> Result<v1::StoragePool, ClientError> {
        let r = self
            .client
            .request(v1::StopStoragePoolRequest { pool: self.pref() });
        pool(
            self.client
                .storage()
                .stop_storage_pool(r)
                .await?
                .into_inner()
                .pool,
        )
    }

    /// Deletes its storage (e.g. the directory); the pool must be inactive
    /// and its definition stays.
    pub async fn delete(&self) -> Result<v1::StoragePool, ClientError> {
        let r = self
            .client
            .request(v1::DeleteStoragePoolRequest { pool: self.pref() });
        pool(
            self.client
                .storage()
                .delete_storage_pool(r)
                .await?
                .into_inner()
                .pool,
        )
    }

    /// Removes an inactive pool's definition.
    pub async fn undefine(&self) -> Result<(), ClientError> {
        let r = self
            .client
            .request(v1::UndefineStoragePoolRequest { pool: self.pref() });
        self.client.storage().undefine_storage_pool(r).await?;
        Ok(())
    }

    /// Rescans its volumes and answers its new sizes.
    pub async fn refresh(&self) -> Result<v1::StoragePool, ClientError> {
        let r = self
            .client
            .request(v1::RefreshStoragePoolRequest { pool: self.pref() });
        pool(
            self.client
                .storage()
                .refresh_storage_pool(r)
                .await?
                .into_inner()
                .pool,
        )
    }

    /// Starts it with the host's daemon, or not.
    pub async fn set_autostart(&self, autostart: bool) -> Result<v1::StoragePool, ClientError> {
        let r = self.client.request(v1::SetStoragePoolAutostartRequest {
            pool: self.pref(),
            autostart,
        });
        pool(
            self.client
                .storage()
                .set_storage_pool_autostart(r)
                .await?
                .into_inner()
                .pool,
        )
    }
}

/// One volume of a pool, by name ([`PoolHandle::volume`]). Every method is
/// one call (the transfers one stream).
#[derive(Debug, Clone)]
pub struct VolumeHandle {
    pool: PoolHandle,
    name: String,
}

impl VolumeHandle {
    /// The volume's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its pool.
    pub fn pool(&self) -> &PoolHandle {
        &self.pool
    }

    /// The reference every call of this handle sends.
    pub fn volume_ref(&self) -> v1::StorageVolumeRef {
        v1::StorageVolumeRef {
            pool: self.pool.pref(),
            name: self.name.clone(),
        }
    }

    fn vref(&self) -> Option<v1::StorageVolumeRef> {
        Some(self.volume_ref())
    }

    fn client(&self) -> &Client {
        &self.pool.client
    }

    /// Its type, format, sizes and path (`GetStorageVolume`).
    pub async fn info(&self) -> Result<v1::StorageVolume, ClientError> {
        let c = self.client();
        c.read(|| async {
            let r = c.request(v1::GetStorageVolumeRequest {
                volume: self.vref(),
            });
            volume(c.storage().get_storage_volume(r).await?.into_inner().volume)
        })
        .await
    }

    /// Its XML description.
    pub async fn xml(&self) -> Result<String, ClientError> {
        let c = self.client();
        c.read(|| async {
            let r = c.request(v1::GetStorageVolumeXmlRequest {
                volume: self.vref(),
            });
            Ok(c.storage()
                .get_storage_volume_xml(r)
                .await?
                .into_inner()
                .xml)
        })
        .await
    }

    /// Creates it in the pool from `spec` (`CreateStorageVolume`); an
    /// empty `spec.name` takes the handle's.
    pub async fn create(
        &self,
        mut spec: v1::StorageVolumeSpec,
    ) -> Result<v1::StorageVolume, ClientError> {
        if spec.name.is_empty() {
            spec.name = self.name.clone();
        }
        let c = self.client();
        let r = c.request(v1::CreateStorageVolumeRequest {
            pool: self.pool.pref(),
            source: Some(v1::create_storage_volume_request::Source::Spec(spec)),
        });
        volume(
            c.storage()
                .create_storage_volume(r)
                .await?
                .into_inner()
                .volume,
        )
    }

    /// Copies it into a new volume `name` of the same pool, in the same
    /// format (`CloneStorageVolume`).
    pub async fn clone_to(
        &self,
        name: impl Into<String>,
    ) -> Result<v1::StorageVolume, ClientError> {
        let c = self.client();
        let r = c.request(v1::CloneStorageVolumeRequest {
            source: self.vref(),
            name: name.into(),
            format: v1::StorageVolumeFormat::Unspecified as i32,
        });
        volume(
            c.storage()
                .clone_storage_volume(r)
                .await?
                .into_inner()
                .volume,
        )
    }

    /// Deletes it and its data.
    pub async fn delete(&self) -> Result<(), ClientError> {
        let c = self.client();
        let r = c.request(v1::DeleteStorageVolumeRequest {
            volume: self.vref(),
        });
        c.storage().delete_storage_volume(r).await?;
        Ok(())
    }

    /// Overwrites its data with zeros.
    pub async fn wipe(&self) -> Result<v1::StorageVolume, ClientError> {
        let c = self.client();
        let r = c.request(v1::WipeStorageVolumeRequest {
            volume: self.vref(),
        });
        volume(
            c.storage()
                .wipe_storage_volume(r)
                .await?
                .into_inner()
                .volume,
        )
    }

    /// Sets its capacity to `capacity_bytes`, sparse where the backend
    /// allows; a smaller capacity is refused (`InvalidArgument`) unless
    /// `shrink`, which loses data.
    pub async fn resize(
        &self,
        capacity_bytes: u64,
        shrink: bool,
    ) -> Result<v1::StorageVolume, ClientError> {
        let c = self.client();
        let r = c.request(v1::ResizeStorageVolumeRequest {
            volume: self.vref(),
            capacity_bytes,
            delta: false,
            allocate: false,
            shrink,
        });
        volume(
            c.storage()
                .resize_storage_volume(r)
                .await?
                .into_inner()
                .volume,
        )
    }

    /// Writes the local file at `path` into it (see
    /// [`Client::upload_volume`]).
    pub async fn upload(
        &self,
        path: impl AsRef<Path>,
        options: UploadOptions,
        progress: impl FnMut(Progress),
    ) -> Result<VolumeUpload, ClientError> {
        self.client()
            .upload_volume(self.volume_ref(), path, options, progress)
            .await
    }

    /// Reads it into a new local file at `path` (see
    /// [`Client::download_volume`]).
    pub async fn download(
        &self,
        path: impl AsRef<Path>,
        options: DownloadOptions,
        progress: impl FnMut(Progress),
    ) -> Result<Transfer, ClientError> {
        self.client()
            .download_volume(self.volume_ref(), path, options, progress)
            .await
    }
}
