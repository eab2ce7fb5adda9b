//! `StorageService`: pools, volumes, and volume upload/download streams.
//!
//! Each handler validates its request (`convert::storage`), resolves the
//! reference (`services::resolve::Target`), runs one `ops::storage`
//! function on the host's pool and converts the answer.
//!
//! Transfers run one engine of `ops::volume_transfer` on the host's slow
//! lane, in one blocking task each. A bounded channel (a few chunks deep)
//! sits between the gRPC stream and the engine, so bytes flow through
//! without the server ever holding a whole volume in memory, and a slow
//! side slows the other down. An upload takes its slow-lane slot only once
//! its first chunk arrived, and a client that then sends nothing for the
//! idle timeout is cut off (ABORTED), which frees the slot.

use std::{
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use futures::{Stream, StreamExt};
use libvirt_grpc::v1::{self, storage_service_server::StorageService};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{deadline, next_message, ok, paging, resolve::Target, DEFAULT_STREAM_IDLE};
use crate::{
    auth::{Caller, Role},
    confine::{Confinement, Reach},
    convert::storage::{
        self as convert, CloneVolume, CreatePool, DefinePool, FindSources, PoolListFlags,
        PoolSource, Resize,
    },
    error::Error,
    ops::{
        lookup,
        storage::{self as ops, PoolKey, VolumeKey},
        volume_transfer::{self as transfer, UploadItem},
    },
    pool::{Hosts, Lane},
};

/// Chunks buffered between the gRPC stream and the transfer engine.
const TRANSFER_QUEUE: usize = 4;
/// Largest upload chunk accepted.
const MAX_CHUNK: usize = 4 << 20;

/// The `StorageService` implementation.
#[derive(Debug, Clone)]
pub struct StorageApi {
    hosts: Hosts,
    confinement: Arc<Confinement>,
    stream_idle: Duration,
}

impl StorageApi {
    /// A service over `hosts`, its host paths confined to
    /// [`crate::confine::DEFAULT_ROOT`].
    pub fn new(hosts: Hosts) -> Self {
        StorageApi {
            hosts,
            confinement: Arc::default(),
            stream_idle: DEFAULT_STREAM_IDLE,
        }
    }

    /// How long an upload waits for the client's next message.
    pub fn with_stream_idle_timeout(mut self, idle: Duration) -> Self {
        self.stream_idle = idle;
        self
    }

    /// Confines pool target paths (and, below admin, every host path of
    /// pool and volume XML) to these roots.
    pub fn with_confinement(mut self, c: Arc<Confinement>) -> Self {
        self.confinement = c;
        self
    }

    fn pool(&self, r: Option<&v1::StoragePoolRef>) -> Result<Target<PoolKey>, Error> {
        Target::resolve(&self.hosts, r, "pool")
    }

    /// Confines a pool definition: its target path for every caller (a
    /// pool's directory is a path the caller names), every other host path
    /// of its XML below admin.
    fn confine_pool(
        &self,
        source: Option<PoolSource<'_>>,
        xml: &str,
        role: Role,
        reach: Reach,
    ) -> Result<(), Error> {
        let field = match source {
            Some(PoolSource::Spec(s)) => {
                if !s.target_path.is_empty() {
                    self.confinement
                        .check_path("spec.target_path", &s.target_path, reach)?;
                }
                "spec"
            }
            _ => {
                self.confinement.check_pool_xml_target("xml", xml, reach)?;
                "xml"
            }
        };
        self.confinement.check_xml(field, xml, role, reach)
    }

    fn volume(
        &self,
        r: Option<&v1::StorageVolumeRef>,
        field: &str,
    ) -> Result<Target<VolumeKey>, Error> {
        Target::resolve(&self.hosts, r, field)
    }
}

/// The next item of an upload stream: a chunk, or the end of the stream.
async fn next_upload_item(
    inbound: &mut Streaming<v1::UploadStorageVolumeRequest>,
    idle: Duration,
    deadline: Option<tokio::time::Instant>,
) -> Result<UploadItem, Status> {
    use v1::upload_storage_volume_request::Item;
    match next_message(inbound, idle, deadline).await? {
        Some(v1::UploadStorageVolumeRequest {
            item: Some(Item::Chunk(data)),
        }) => {
            if data.len() > MAX_CHUNK {
                return Err(Error::invalid(
                    "chunk",
                    format!("{} bytes; the limit is {MAX_CHUNK}", data.len()),
                )
                .into());
            }
            Ok(UploadItem::Chunk(data))
        }
        Some(_) => Err(Error::invalid("item", "only the first message may carry a target").into()),
        None => Ok(UploadItem::End),
    }
}

type DownloadStream =
    Pin<Box<dyn Stream<Item = Result<v1::DownloadStorageVolumeResponse, Status>> + Send + 'static>>;

/// A pool answer.
fn pool_msg(f: ops::PoolFacts) -> Option<v1::StoragePool> {
    Some(f.into())
}

/// A volume answer.
fn volume_msg(f: ops::VolumeFacts) -> Option<v1::StorageVolume> {
    Some(f.into())
}

#[tonic::async_trait]
impl StorageService for StorageApi {
    #[tracing::instrument(skip_all, fields(host, target))]
    async fn list_storage_pools(
        &self,
        req: Request<v1::ListStoragePoolsRequest>,
    ) -> Result<Response<v1::ListStoragePoolsResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let PoolListFlags(flags) = PoolListFlags::try_from(&r)?;
        let pool = self.hosts.get(&r.host)?;
        let host = pool.name().to_owned();
        let items = pool
            .run(Lane::Quick, dl, move |c| ops::list_pools(c, &host, flags))
            .await?;
        let (pools, next_page_token) =
            paging::page_by_name(items, |p| p.name.as_str(), r.page_size, &r.page_token)?;
        ok(v1::ListStoragePoolsResponse {
            pools: pools.into_iter().map(Into::into).collect(),
            next_page_token,
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_storage_pool(
        &self,
        req: Request<v1::GetStoragePoolRequest>,
    ) -> Result<Response<v1::GetStoragePoolResponse>, Status> {
        let dl = deadline(&req);
        let t = self.pool(req.get_ref().pool.as_ref())?;
        let p = t.run(Lane::Quick, dl, ops::get_pool).await?;
        ok(v1::GetStoragePoolResponse { pool: pool_msg(p) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_storage_pool_xml(
        &self,
        req: Request<v1::GetStoragePoolXmlRequest>,
    ) -> Result<Response<v1::GetStoragePoolXmlResponse>, Status> {
        let dl = deadline(&req);
        let flags = convert::pool_xml_flags(req.get_ref().inactive);
        let t = self.pool(req.get_ref().pool.as_ref())?;
        let xml = t
            .run(Lane::Quick, dl, move |c, k, _| ops::pool_xml(c, k, flags))
            .await?;
        ok(v1::GetStoragePoolXmlResponse { xml })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn define_storage_pool(
        &self,
        req: Request<v1::DefineStoragePoolRequest>,
    ) -> Result<Response<v1::DefineStoragePoolResponse>, Status> {
        let role = Caller::of(&req).role;
        let dl = deadline(&req);
        let r = req.into_inner();
        let def = DefinePool::try_from(&r)?;
        let pool = self.hosts.get(&r.host)?;
        self.confine_pool(
            r.source.as_ref().map(PoolSource::from),
            &def.xml,
            role,
            Reach::of_uri(pool.uri()),
        )?;
        let host = pool.name().to_owned();
        let p = pool
            .run(Lane::Slow, dl, move |c| {
                ops::define_pool(c, &host, &def.xml, def.steps)
            })
            .await?;
        crate::auth::audit::note_target(&p.host, &p.name);
        ok(v1::DefineStoragePoolResponse { pool: pool_msg(p) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn build_storage_pool(
        &self,
        req: Request<v1::BuildStoragePoolRequest>,
    ) -> Result<Response<v1::BuildStoragePoolResponse>, Status> {
        let dl = deadline(&req);
        let r = req.get_ref();
        let mut v = crate::validate::Violations::default();
        let flags = v.check(convert::build_flags("mode", r.mode));
        let t = v.check(self.pool(r.pool.as_ref()));
        let (flags, t) = v.done(flags.zip(t))?;
        let p = t
            .run(Lane::Slow, dl, move |c, k, h| {
                ops::build_pool(c, k, h, flags)
            })
            .await?;
        ok(v1::BuildStoragePoolResponse { pool: pool_msg(p) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn start_storage_pool(
        &self,
        req: Request<v1::StartStoragePoolRequest>,
    ) -> Result<Response<v1::StartStoragePoolResponse>, Status> {
        let dl = deadline(&req);
        let flags = convert::start_flags(req.get_ref().build);
        let t = self.pool(req.get_ref().pool.as_ref())?;
        let p = t
            .run(Lane::Quick, dl, move |c, k, h| {
                ops::start_pool(c, k, h, flags)
            })
            .await?;
        ok(v1::StartStoragePoolResponse { pool: pool_msg(p) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn stop_storage_pool(
        &self,
        req: Request<v1::StopStoragePoolRequest>,
    ) -> Result<Response<v1::StopStoragePoolResponse>, Status> {
        let dl = deadline(&req);
        let t = self.pool(req.get_ref().pool.as_ref())?;
        let p = t.run(Lane::Quick, dl, ops::stop_pool).await?;
        ok(v1::StopStoragePoolResponse { pool: pool_msg(p) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn delete_storage_pool(
        &self,
        req: Request<v1::DeleteStoragePoolRequest>,
    ) -> Result<Response<v1::DeleteStoragePoolResponse>, Status> {
        let dl = deadline(&req);
        let t = self.pool(req.get_ref().pool.as_ref())?;
        let p = t.run(Lane::Quick, dl, ops::delete_pool).await?;
        ok(v1::DeleteStoragePoolResponse { pool: pool_msg(p) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn undefine_storage_pool(
        &self,
        req: Request<v1::UndefineStoragePoolRequest>,
    ) -> Result<Response<v1::UndefineStoragePoolResponse>, Status> {
        let dl = deadline(&req);
        let t = self.pool(req.get_ref().pool.as_ref())?;
        t.run(Lane::Quick, dl, |c, k, _| ops::undefine_pool(c, k))
            .await?;
        ok(v1::UndefineStoragePoolResponse {})
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn refresh_storage_pool(
        &self,
        req: Request<v1::RefreshStoragePoolRequest>,
    ) -> Result<Response<v1::RefreshStoragePoolResponse>, Status> {
        let dl = deadline(&req);
        let t = self.pool(req.get_ref().pool.as_ref())?;
        let p = t.run(Lane::Quick, dl, ops::refresh_pool).await?;
        ok(v1::RefreshStoragePoolResponse { pool: pool_msg(p) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn set_storage_pool_autostart(
        &self,
        req: Request<v1::SetStoragePoolAutostartRequest>,
    ) -> Result<Response<v1::SetStoragePoolAutostartResponse>, Status> {
        let dl = deadline(&req);
        let on = req.get_ref().autostart;
        let t = self.pool(req.get_ref().pool.as_ref())?;
        let p = t
            .run(Lane::Quick, dl, move |c, k, h| {
                ops::set_pool_autostart(c, k, h, on)
            })
            .await?;
        ok(v1::SetStoragePoolAutostartResponse { pool: pool_msg(p) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn find_storage_pool_sources(
        &self,
        req: Request<v1::FindStoragePoolSourcesRequest>,
    ) -> Result<Response<v1::FindStoragePoolSourcesResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let find = FindSources::try_from(&r)?;
        let pool = self.hosts.get(&r.host)?;
        let xml = pool
            .run(Lane::Slow, dl, move |c| {
                ops::find_pool_sources(c, find.type_name, find.source_xml.as_deref())
            })
            .await?;
        ok(v1::FindStoragePoolSourcesResponse { xml })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn list_storage_volumes(
        &self,
        req: Request<v1::ListStorageVolumesRequest>,
    ) -> Result<Response<v1::ListStorageVolumesResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let t = self.pool(r.pool.as_ref())?;
        let items = t.run(Lane::Quick, dl, ops::list_volumes).await?;
        let (volumes, next_page_token) =
            paging::page_by_name(items, |v| v.name.as_str(), r.page_size, &r.page_token)?;
        ok(v1::ListStorageVolumesResponse {
            volumes: volumes.into_iter().map(Into::into).collect(),
            next_page_token,
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_storage_volume(
        &self,
        req: Request<v1::GetStorageVolumeRequest>,
    ) -> Result<Response<v1::GetStorageVolumeResponse>, Status> {
        let dl = deadline(&req);
        let t = self.volume(req.get_ref().volume.as_ref(), "volume")?;
        let v = t.run(Lane::Quick, dl, ops::get_volume).await?;
        ok(v1::GetStorageVolumeResponse {
            volume: volume_msg(v),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_storage_volume_xml(
        &self,
        req: Request<v1::GetStorageVolumeXmlRequest>,
    ) -> Result<Response<v1::GetStorageVolumeXmlResponse>, Status> {
        let dl = deadline(&req);
        let t = self.volume(req.get_ref().volume.as_ref(), "volume")?;
        let xml = t
            .run(Lane::Quick, dl, |c, k, _| ops::volume_xml(c, k))
            .await?;
        ok(v1::GetStorageVolumeXmlResponse { xml })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn create_storage_volume(
        &self,
        req: Request<v1::CreateStorageVolumeRequest>,
    ) -> Result<Response<v1::CreateStorageVolumeResponse>, Status> {
        use v1::create_storage_volume_request::Source;
        let role = Caller::of(&req).role;
        let dl = deadline(&req);
        let r = req.into_inner();
        let mut v = crate::validate::Violations::default();
        let xml = v.check(convert::volume_xml(r.source.as_ref()));
        let t = v.check(self.pool(r.pool.as_ref()));
        let (xml, t) = v.done(xml.zip(t))?;
        let field = match r.source {
            Some(Source::Spec(_)) => "spec",
            _ => "xml",
        };
        self.confinement
            .check_xml(field, &xml, role, Reach::of_uri(t.pool.uri()))?;
        let vol = t
            .run(Lane::Slow, dl, move |c, k, h| {
                ops::create_volume(c, k, h, &xml)
            })
            .await?;
        ok(v1::CreateStorageVolumeResponse {
            volume: volume_msg(vol),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn clone_storage_volume(
        &self,
        req: Request<v1::CloneStorageVolumeRequest>,
    ) -> Result<Response<v1::CloneStorageVolumeResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let mut v = crate::validate::Violations::default();
        let clone = v.check(CloneVolume::try_from(&r));
        let t = v.check(self.volume(r.source.as_ref(), "source"));
        let (clone, t) = v.done(clone.zip(t))?;
        let vol = t
            .run(Lane::Slow, dl, move |c, k, h| {
                ops::clone_volume(c, k, h, &clone.name, clone.format)
            })
            .await?;
        ok(v1::CloneStorageVolumeResponse {
            volume: volume_msg(vol),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn delete_storage_volume(
        &self,
        req: Request<v1::DeleteStorageVolumeRequest>,
    ) -> Result<Response<v1::DeleteStorageVolumeResponse>, Status> {
        let dl = deadline(&req);
        let t = self.volume(req.get_ref().volume.as_ref(), "volume")?;
        t.run(Lane::Quick, dl, |c, k, _| ops::delete_volume(c, k))
            .await?;
        ok(v1::DeleteStorageVolumeResponse {})
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn wipe_storage_volume(
        &self,
        req: Request<v1::WipeStorageVolumeRequest>,
    ) -> Result<Response<v1::WipeStorageVolumeResponse>, Status> {
        let dl = deadline(&req);
        let t = self.volume(req.get_ref().volume.as_ref(), "volume")?;
        let v = t.run(Lane::Slow, dl, ops::wipe_volume).await?;
        ok(v1::WipeStorageVolumeResponse {
            volume: volume_msg(v),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn resize_storage_volume(
        &self,
        req: Request<v1::ResizeStorageVolumeRequest>,
    ) -> Result<Response<v1::ResizeStorageVolumeResponse>, Status> {
        let dl = deadline(&req);
        let r = req.get_ref();
        let mut v = crate::validate::Violations::default();
        let resize = v.check(Resize::try_from(r));
        let t = v.check(self.volume(r.volume.as_ref(), "volume"));
        let (resize, t) = v.done(resize.zip(t))?;
        let vol = t
            .run(Lane::Slow, dl, move |c, k, h| {
                ops::resize_volume(c, k, h, resize.capacity, resize.flags)
            })
            .await?;
        ok(v1::ResizeStorageVolumeResponse {
            volume: volume_msg(vol),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn lookup_storage_volume_by_key(
        &self,
        req: Request<v1::LookupStorageVolumeByKeyRequest>,
    ) -> Result<Response<v1::LookupStorageVolumeByKeyResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let mut v = crate::validate::Violations::default();
        let pool = v.check(self.hosts.get(&r.host).map(Arc::clone));
        v.check(convert::volume_lookup_key("key", &r.key));
        let pool = v.done(pool)?;
        let host = pool.name().to_owned();
        let vol = pool
            .run(Lane::Quick, dl, move |c| {
                lookup::volume_by_key(c, &host, &r.key)
            })
            .await?;
        ok(v1::LookupStorageVolumeByKeyResponse {
            volume: volume_msg(vol),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn lookup_storage_volume_by_path(
        &self,
        req: Request<v1::LookupStorageVolumeByPathRequest>,
    ) -> Result<Response<v1::LookupStorageVolumeByPathResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let mut v = crate::validate::Violations::default();
        let pool = v.check(self.hosts.get(&r.host).map(Arc::clone));
        v.check(convert::volume_lookup_path("path", &r.path));
        let pool = v.done(pool)?;
        let host = pool.name().to_owned();
        let vol = pool
            .run(Lane::Quick, dl, move |c| {
                lookup::volume_by_path(c, &host, &r.path)
            })
            .await?;
        ok(v1::LookupStorageVolumeByPathResponse {
            volume: volume_msg(vol),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn lookup_storage_pool_by_volume(
        &self,
        req: Request<v1::LookupStoragePoolByVolumeRequest>,
    ) -> Result<Response<v1::LookupStoragePoolByVolumeResponse>, Status> {
        let dl = deadline(&req);
        let t = self.volume(req.get_ref().volume.as_ref(), "volume")?;
        let p = t.run(Lane::Quick, dl, lookup::pool_of_volume).await?;
        ok(v1::LookupStoragePoolByVolumeResponse { pool: pool_msg(p) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn create_storage_pool(
        &self,
        req: Request<v1::CreateStoragePoolRequest>,
    ) -> Result<Response<v1::CreateStoragePoolResponse>, Status> {
        let role = Caller::of(&req).role;
        let dl = deadline(&req);
        let r = req.into_inner();
        let mut v = crate::validate::Violations::default();
        let new = v.check(CreatePool::try_from(&r));
        let pool = v.check(self.hosts.get(&r.host).map(Arc::clone));
        let (new, pool) = v.done(new.zip(pool))?;
        self.confine_pool(
            r.source.as_ref().map(PoolSource::from),
            &new.xml,
            role,
            Reach::of_uri(pool.uri()),
        )?;
        let host = pool.name().to_owned();
        let p = pool
            .run(Lane::Slow, dl, move |c| {
                ops::create_pool(c, &host, &new.xml, new.flags)
            })
            .await?;
        crate::auth::audit::note_target(&p.host, &p.name);
        ok(v1::CreateStoragePoolResponse { pool: pool_msg(p) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn upload_storage_volume(
        &self,
        req: Request<Streaming<v1::UploadStorageVolumeRequest>>,
    ) -> Result<Response<v1::UploadStorageVolumeResponse>, Status> {
        use v1::upload_storage_volume_request::Item;
        let role = Caller::of(&req).role;
        let dl = deadline(&req);
        let idle = self.stream_idle;
        let mut inbound = req.into_inner();
        let first = next_message(&mut inbound, idle, dl).await?;
        let Some(Item::Target(t)) = first.and_then(|m| m.item) else {
            return Err(Error::invalid("target", "the first message must carry the target").into());
        };
        let mut v = crate::validate::Violations::default();
        let target = v.check(self.volume(t.volume.as_ref(), "target.volume"));
        let plan = v.check(convert::upload_plan(t));
        let (target, plan) = v.done(target.zip(plan))?;
        if let Some(xml) = &plan.create_xml {
            self.confinement.check_xml(
                "target.create",
                xml,
                role,
                Reach::of_uri(target.pool.uri()),
            )?;
        }
        // No slow-lane slot until the first chunk (or the end) arrived: a
        // client that names a target and then stalls holds nothing.
        let opening = next_upload_item(&mut inbound, idle, dl).await?;
        let mut ended = matches!(opening, UploadItem::End);
        let (tx, mut rx) = mpsc::channel::<UploadItem>(TRANSFER_QUEUE);
        tx.try_send(opening)
            .map_err(|_| Error::internal("the upload queue refused its first item"))?;
        let started = Arc::new(AtomicBool::new(false));
        let running = Arc::clone(&started);
        let transfer = target.run(Lane::Slow, dl, move |c, k, h| {
            running.store(true, Ordering::Release);
            transfer::upload(c, k, h, &plan, &mut rx)
        });
        // Feeds the engine; dropping `tx` without `End` (the client
        // broke off, or stalled past the idle timeout) makes it abort the
        // libvirt stream and delete a volume it created, which ends the
        // transfer and frees its slow-lane slot.
        let feed = async move {
            while !ended {
                let item = next_upload_item(&mut inbound, idle, dl).await?;
                ended = matches!(item, UploadItem::End);
                if tx.send(item).await.is_err() {
                    break;
                }
            }
            Ok::<(), Status>(())
        };
        // The transfer decides when the call ends, so that the answer comes
        // after its cleanup (a created volume is gone when the client hears
        // of the failure). A client that stalls is cut off at the idle
        // timeout or the deadline even though its stream never ends.
        tokio::pin!(transfer, feed);
        let mut fed: Option<Result<(), Status>> = None;
        let result = loop {
            tokio::select! {
                r = &mut transfer => break r,
                f = &mut feed, if fed.is_none() => match f {
                    // Still queued for a slot, so nothing was created: answer
                    // now. Should it start after all, it finds the stream
                    // broken and cleans up after itself.
                    Err(status) if !started.load(Ordering::Acquire) => return Err(status),
                    f => fed = Some(f),
                },
            }
        };
        match (result, fed) {
            (Ok(r), _) => ok(r.into()),
            // The client's own error explains the failure better than the
            // "ended early" the blocking side saw.
            (Err(_), Some(Err(status))) => Err(status),
            (Err(e), _) => Err(e.into()),
        }
    }

    type DownloadStorageVolumeStream = DownloadStream;

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn download_storage_volume(
        &self,
        req: Request<v1::DownloadStorageVolumeRequest>,
    ) -> Result<Response<Self::DownloadStorageVolumeStream>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let mut v = crate::validate::Violations::default();
        let target = v.check(self.volume(r.volume.as_ref(), "volume"));
        v.check(crate::render::storage::transfer_range(
            r.offset_bytes,
            r.length_bytes,
        ));
        let target = v.done(target)?;
        let (tx, rx) = mpsc::channel(TRANSFER_QUEUE);
        let (offset, length) = (r.offset_bytes, r.length_bytes);
        // The engine's own failure goes into the stream after its items.
        let err_tx = tx.clone();
        tokio::spawn(async move {
            let res = target
                .run(Lane::Slow, dl, move |c, k, h| {
                    transfer::download(c, k, h, offset, length, &tx)
                })
                .await;
            if let Err(e) = res {
                let _ = err_tx.send(Err(e)).await;
            }
        });
        let mut stream = ReceiverStream::new(rx)
            .map(|item| item.map(Into::into).map_err(Status::from))
            .peekable();
        // Surface an immediate failure (no such volume, no driver support)
        // as the call's status rather than as the first stream item.
        if let Some(Err(_)) = Pin::new(&mut stream).peek().await {
            if let Some(Err(status)) = stream.next().await {
                return Err(status);
            }
        }
        ok(Box::pin(stream) as DownloadStream)
    }
}
