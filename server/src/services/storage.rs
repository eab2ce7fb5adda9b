//! `StorageService`: pools, volumes, and volume upload/download streams.
//!
//! Transfers run on the host's slow lane inside one blocking task each. A
//! bounded channel (a few chunks deep) sits between the gRPC stream and the
//! blocking libvirt stream, so bytes flow through without the server ever
//! holding a whole volume in memory, and a slow side slows the other down.
//! An upload takes its slow-lane slot only once its first chunk arrived,
//! and a client that then sends nothing for the idle timeout is cut off
//! (ABORTED), which frees the slot.

use std::{
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use futures::{Stream, StreamExt};
use libvirt_grpc::v1::{
    self, storage_pool_ref::Key, storage_service_server::StorageService, StoragePoolRef,
    StorageVolumeRef,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use virt::{connect::Connect, storage_pool::StoragePool, storage_vol::StorageVol, sys};

use super::{deadline, either_flag, flags_of, next_message, ok, paging, DEFAULT_STREAM_IDLE};
use crate::{
    error::Error,
    ops::storage::{self as ops, PoolKey, PoolSteps, UploadItem, UploadPlan},
    pool::{HostPool, Hosts, Lane},
    render::storage as render,
    validate,
};

/// Chunks buffered between the gRPC stream and the libvirt stream.
const TRANSFER_QUEUE: usize = 4;
/// Largest upload chunk accepted.
const MAX_CHUNK: usize = 4 << 20;

/// The `StorageService` implementation.
#[derive(Debug, Clone)]
pub struct StorageApi {
    hosts: Hosts,
    allowed_roots: Vec<std::path::PathBuf>,
    stream_idle: Duration,
}

impl StorageApi {
    /// A service over `hosts` that lets pools live anywhere.
    pub fn new(hosts: Hosts) -> Self {
        StorageApi {
            hosts,
            allowed_roots: Vec::new(),
            stream_idle: DEFAULT_STREAM_IDLE,
        }
    }

    /// How long an upload waits for the client's next message.
    pub fn with_stream_idle_timeout(mut self, idle: Duration) -> Self {
        self.stream_idle = idle;
        self
    }

    /// Restricts pool target paths to these directories (none: anywhere).
    pub fn with_allowed_roots(mut self, roots: Vec<std::path::PathBuf>) -> Self {
        self.allowed_roots = roots;
        self
    }

    /// Checks a pool's target path against the allowed roots. Paths are
    /// compared component by component, without resolving symlinks (the
    /// host may be remote); `..` is already refused.
    fn check_root(&self, field: &str, path: &str) -> Result<(), Error> {
        if self.allowed_roots.is_empty() {
            return Ok(());
        }
        validate::absolute_path(field, path)?;
        if self
            .allowed_roots
            .iter()
            .any(|r| std::path::Path::new(path).starts_with(r))
        {
            return Ok(());
        }
        Err(Error::invalid(
            field,
            format!(
                "'{path}' is outside the allowed storage roots ({})",
                self.allowed_roots
                    .iter()
                    .map(|r| r.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ))
    }

    fn pool_target(
        &self,
        r: Option<&StoragePoolRef>,
    ) -> Result<(std::sync::Arc<HostPool>, PoolKey), Error> {
        let r = r.ok_or_else(|| Error::invalid("pool", "is required"))?;
        let pool = std::sync::Arc::clone(self.hosts.get(&r.host)?);
        let key = match &r.key {
            None => return Err(Error::invalid("pool", "set one of name or uuid")),
            Some(Key::Name(n)) => {
                validate::required_text("pool.name", n)?;
                PoolKey::Name(n.clone())
            }
            Some(Key::Uuid(u)) => PoolKey::Uuid(validate::uuid("pool.uuid", u)?),
        };
        let span = tracing::Span::current();
        span.record("host", pool.name());
        span.record("target", tracing::field::debug(&key));
        Ok((pool, key))
    }

    /// Runs `f` on the pool a request names.
    async fn on_pool<T, F>(
        &self,
        deadline: Option<tokio::time::Instant>,
        r: Option<&StoragePoolRef>,
        f: F,
    ) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Connect, &StoragePool, &str) -> Result<T, Error> + Send + 'static,
    {
        let (pool, key) = self.pool_target(r)?;
        let host = pool.name().to_owned();
        pool.run(Lane::Quick, deadline, move |c| {
            let p = ops::lookup_pool(c, &key)?;
            f(c, &p, &host)
        })
        .await
    }

    /// Runs `f` on the volume a request names.
    async fn on_volume<T, F>(
        &self,
        deadline: Option<tokio::time::Instant>,
        r: Option<&StorageVolumeRef>,
        lane: Lane,
        f: F,
    ) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Connect, &StorageVol, &str) -> Result<T, Error> + Send + 'static,
    {
        let r = r.ok_or_else(|| Error::invalid("volume", "is required"))?;
        render::volume_name("volume.name", &r.name)?;
        let (pool, key) = self.pool_target(r.pool.as_ref())?;
        let host = pool.name().to_owned();
        let name = r.name.clone();
        pool.run(lane, deadline, move |c| {
            let v = ops::lookup_volume(c, &ops::VolumeKey { pool: key, name })?;
            f(c, &v, &host)
        })
        .await
    }
}

/// The next item of an upload stream: a chunk, or the end of the stream.
async fn next_upload_item(
    inbound: &mut Streaming<v1::UploadVolumeRequest>,
    idle: Duration,
    deadline: Option<tokio::time::Instant>,
) -> Result<UploadItem, Status> {
    use v1::upload_volume_request::Msg;
    match next_message(inbound, idle, deadline).await? {
        Some(v1::UploadVolumeRequest {
            msg: Some(Msg::Chunk(data)),
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
        Some(_) => Err(Error::invalid("msg", "only the first message may carry a target").into()),
        None => Ok(UploadItem::End),
    }
}

type DownloadStream =
    Pin<Box<dyn Stream<Item = Result<v1::DownloadVolumeResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl StorageService for StorageApi {
    #[tracing::instrument(skip_all, fields(host, target))]
    async fn list_storage_pools(
        &self,
        req: Request<v1::ListStoragePoolsRequest>,
    ) -> Result<Response<v1::ListStoragePoolsResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let pool = self.hosts.get(&r.host)?;
        let mut flags = either_flag(
            r.active,
            r.inactive,
            sys::VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE,
            sys::VIR_CONNECT_LIST_STORAGE_POOLS_INACTIVE,
        ) | either_flag(
            r.persistent,
            r.transient,
            sys::VIR_CONNECT_LIST_STORAGE_POOLS_PERSISTENT,
            sys::VIR_CONNECT_LIST_STORAGE_POOLS_TRANSIENT,
        ) | either_flag(
            r.autostart,
            r.no_autostart,
            sys::VIR_CONNECT_LIST_STORAGE_POOLS_AUTOSTART,
            sys::VIR_CONNECT_LIST_STORAGE_POOLS_NO_AUTOSTART,
        );
        for (i, t) in r.types.iter().enumerate() {
            flags |= ops::pool_type_flag(t).ok_or_else(|| {
                Error::invalid(format!("types[{i}]"), format!("unknown pool type '{t}'"))
            })?;
        }
        let host = pool.name().to_owned();
        let items = pool
            .run(Lane::Quick, dl, move |c| {
                c.list_all_storage_pools(flags)?
                    .iter()
                    .map(|p| crate::ops::unless_vanished(ops::pool_info(p, &host)))
                    .filter_map(Result::transpose)
                    .collect::<Result<Vec<_>, Error>>()
            })
            .await?;
        let (pools, next_page_token) =
            paging::page_by_name(items, |p| p.name.as_str(), r.page_size, &r.page_token)?;
        ok(v1::ListStoragePoolsResponse {
            pools,
            next_page_token,
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_storage_pool(
        &self,
        req: Request<v1::GetStoragePoolRequest>,
    ) -> Result<Response<v1::GetStoragePoolResponse>, Status> {
        let dl = deadline(&req);
        let p = self
            .on_pool(dl, req.get_ref().pool.as_ref(), |_, p, h| {
                ops::pool_info(p, h)
            })
            .await?;
        ok(v1::GetStoragePoolResponse { pool: Some(p) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_storage_pool_xml(
        &self,
        req: Request<v1::GetStoragePoolXmlRequest>,
    ) -> Result<Response<v1::GetStoragePoolXmlResponse>, Status> {
        let dl = deadline(&req);
        let flags = if req.get_ref().inactive {
            sys::VIR_STORAGE_XML_INACTIVE
        } else {
            0
        };
        let xml = self
            .on_pool(dl, req.get_ref().pool.as_ref(), move |_, p, _| {
                Ok(p.xml_desc(flags)?)
            })
            .await?;
        ok(v1::GetStoragePoolXmlResponse { xml })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn define_storage_pool(
        &self,
        req: Request<v1::DefineStoragePoolRequest>,
    ) -> Result<Response<v1::DefineStoragePoolResponse>, Status> {
        use v1::define_storage_pool_request::Source;
        let dl = deadline(&req);
        let r = req.into_inner();
        let xml = match &r.source {
            Some(Source::Xml(x)) => {
                validate::required_xml("xml", x)?;
                if !self.allowed_roots.is_empty() {
                    let target =
                        crate::xml_query::text(x, &["pool", "target", "path"]).unwrap_or_default();
                    self.check_root("xml.target.path", &target)?;
                }
                x.clone()
            }
            Some(Source::Spec(s)) => {
                let xml = render::render_pool(s)?;
                self.check_root("spec.target_path", &s.target_path)?;
                xml
            }
            None => return Err(Error::invalid("source", "set one of xml or spec").into()),
        };
        let pool = self.hosts.get(&r.host)?;
        let host = pool.name().to_owned();
        let steps = PoolSteps {
            build: r.build,
            start: r.start,
            autostart: r.autostart,
        };
        let p = pool
            .run(Lane::Slow, dl, move |c| {
                ops::define_pool(c, &host, &xml, steps)
            })
            .await?;
        ok(v1::DefineStoragePoolResponse { pool: Some(p) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn build_storage_pool(
        &self,
        req: Request<v1::BuildStoragePoolRequest>,
    ) -> Result<Response<v1::BuildStoragePoolResponse>, Status> {
        let dl = deadline(&req);
        let r = req.get_ref();
        if r.overwrite && r.no_overwrite {
            return Err(Error::invalid(
                "overwrite",
                "overwrite and no_overwrite exclude each other",
            )
            .into());
        }
        let flags = either_flag(
            r.overwrite,
            r.no_overwrite,
            sys::VIR_STORAGE_POOL_BUILD_OVERWRITE,
            sys::VIR_STORAGE_POOL_BUILD_NO_OVERWRITE,
        );
        let p = self
            .on_pool(dl, r.pool.as_ref(), move |_, p, h| {
                p.build(flags)?;
                ops::pool_info(p, h)
            })
            .await?;
        ok(v1::BuildStoragePoolResponse { pool: Some(p) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn start_storage_pool(
        &self,
        req: Request<v1::StartStoragePoolRequest>,
    ) -> Result<Response<v1::StartStoragePoolResponse>, Status> {
        let dl = deadline(&req);
        let flags = if req.get_ref().build {
            sys::VIR_STORAGE_POOL_CREATE_WITH_BUILD
        } else {
            0
        };
        let p = self
            .on_pool(dl, req.get_ref().pool.as_ref(), move |_, p, h| {
                p.create(flags)?;
                ops::pool_info(p, h)
            })
            .await?;
        ok(v1::StartStoragePoolResponse { pool: Some(p) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn stop_storage_pool(
        &self,
        req: Request<v1::StopStoragePoolRequest>,
    ) -> Result<Response<v1::StopStoragePoolResponse>, Status> {
        let dl = deadline(&req);
        let p = self
            .on_pool(dl, req.get_ref().pool.as_ref(), |c, p, h| {
                let uuid = p.uuid_string()?;
                p.destroy()?;
                // A transient pool is gone once stopped.
                match c.lookup_storage_pool_by_uuid_string(&uuid) {
                    Ok(p) => ops::pool_info(&p, h),
                    Err(_) => Ok(v1::StoragePool {
                        host: h.to_owned(),
                        uuid,
                        state: v1::StoragePoolState::Inactive as i32,
                        ..Default::default()
                    }),
                }
            })
            .await?;
        ok(v1::StopStoragePoolResponse { pool: Some(p) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn delete_storage_pool(
        &self,
        req: Request<v1::DeleteStoragePoolRequest>,
    ) -> Result<Response<v1::DeleteStoragePoolResponse>, Status> {
        let dl = deadline(&req);
        self.on_pool(dl, req.get_ref().pool.as_ref(), |_, p, _| Ok(p.delete(0)?))
            .await?;
        ok(v1::DeleteStoragePoolResponse {})
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn undefine_storage_pool(
        &self,
        req: Request<v1::UndefineStoragePoolRequest>,
    ) -> Result<Response<v1::UndefineStoragePoolResponse>, Status> {
        let dl = deadline(&req);
        self.on_pool(dl, req.get_ref().pool.as_ref(), |_, p, _| Ok(p.undefine()?))
            .await?;
        ok(v1::UndefineStoragePoolResponse {})
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn refresh_storage_pool(
        &self,
        req: Request<v1::RefreshStoragePoolRequest>,
    ) -> Result<Response<v1::RefreshStoragePoolResponse>, Status> {
        let dl = deadline(&req);
        let p = self
            .on_pool(dl, req.get_ref().pool.as_ref(), |_, p, h| {
                p.refresh(0)?;
                ops::pool_info(p, h)
            })
            .await?;
        ok(v1::RefreshStoragePoolResponse { pool: Some(p) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn set_storage_pool_autostart(
        &self,
        req: Request<v1::SetStoragePoolAutostartRequest>,
    ) -> Result<Response<v1::SetStoragePoolAutostartResponse>, Status> {
        let dl = deadline(&req);
        let on = req.get_ref().autostart;
        let p = self
            .on_pool(dl, req.get_ref().pool.as_ref(), move |_, p, h| {
                p.set_autostart(on)?;
                ops::pool_info(p, h)
            })
            .await?;
        ok(v1::SetStoragePoolAutostartResponse { pool: Some(p) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn find_storage_pool_sources(
        &self,
        req: Request<v1::FindStoragePoolSourcesRequest>,
    ) -> Result<Response<v1::FindStoragePoolSourcesResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        if ops::pool_type_flag(&r.r#type).is_none() {
            return Err(Error::invalid("type", format!("unknown pool type '{}'", r.r#type)).into());
        }
        validate::xml("source_xml", &r.source_xml)?;
        let pool = self.hosts.get(&r.host)?;
        let xml = pool
            .run(Lane::Slow, dl, move |c| {
                let spec = (!r.source_xml.is_empty()).then_some(r.source_xml.as_str());
                Ok(c.find_storage_pool_sources(&r.r#type, spec, 0)?)
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
        let items = self
            .on_pool(dl, r.pool.as_ref(), |_, p, h| {
                p.list_all_volumes(0)?
                    .iter()
                    .map(|v| crate::ops::unless_vanished(ops::volume_info(v, h)))
                    .filter_map(Result::transpose)
                    .collect::<Result<Vec<_>, Error>>()
            })
            .await?;
        let (volumes, next_page_token) =
            paging::page_by_name(items, |v| v.name.as_str(), r.page_size, &r.page_token)?;
        ok(v1::ListStorageVolumesResponse {
            volumes,
            next_page_token,
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_storage_volume(
        &self,
        req: Request<v1::GetStorageVolumeRequest>,
    ) -> Result<Response<v1::GetStorageVolumeResponse>, Status> {
        let dl = deadline(&req);
        let v = self
            .on_volume(dl, req.get_ref().volume.as_ref(), Lane::Quick, |_, v, h| {
                ops::volume_info(v, h)
            })
            .await?;
        ok(v1::GetStorageVolumeResponse { volume: Some(v) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_storage_volume_xml(
        &self,
        req: Request<v1::GetStorageVolumeXmlRequest>,
    ) -> Result<Response<v1::GetStorageVolumeXmlResponse>, Status> {
        let dl = deadline(&req);
        let xml = self
            .on_volume(dl, req.get_ref().volume.as_ref(), Lane::Quick, |_, v, _| {
                Ok(v.xml_desc(0)?)
            })
            .await?;
        ok(v1::GetStorageVolumeXmlResponse { xml })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn create_storage_volume(
        &self,
        req: Request<v1::CreateStorageVolumeRequest>,
    ) -> Result<Response<v1::CreateStorageVolumeResponse>, Status> {
        use v1::create_storage_volume_request::Source;
        let dl = deadline(&req);
        let r = req.into_inner();
        let xml = match &r.source {
            Some(Source::Xml(x)) => {
                validate::required_xml("xml", x)?;
                x.clone()
            }
            Some(Source::Spec(s)) => render::render_volume(s)?,
            None => return Err(Error::invalid("source", "set one of xml or spec").into()),
        };
        let (pool, key) = self.pool_target(r.pool.as_ref())?;
        let host = pool.name().to_owned();
        let v = pool
            .run(Lane::Slow, dl, move |c| {
                let p = ops::lookup_pool(c, &key)?;
                let v = StorageVol::create_xml(&p, &xml, 0)?;
                ops::volume_info(&v, &host)
            })
            .await?;
        ok(v1::CreateStorageVolumeResponse { volume: Some(v) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn clone_storage_volume(
        &self,
        req: Request<v1::CloneStorageVolumeRequest>,
    ) -> Result<Response<v1::CloneStorageVolumeResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        render::volume_name("name", &r.name)?;
        let format = render::format_name(r.format, "format")?.map(str::to_owned);
        let name = r.name.clone();
        let v = self
            .on_volume(dl, r.source.as_ref(), Lane::Slow, move |_, src, h| {
                let info = src.info()?;
                let src_xml = src.xml_desc(0)?;
                let fmt = format.or_else(|| {
                    crate::xml_query::attr(&src_xml, &["volume", "target", "format"], "type")
                });
                let xml = render::render_clone(&name, info.capacity, fmt.as_deref())?;
                let pool = src.lookup_storage_pool()?;
                let v = StorageVol::create_xml_from(&pool, &xml, src, 0)?;
                ops::volume_info(&v, h)
            })
            .await?;
        ok(v1::CloneStorageVolumeResponse { volume: Some(v) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn delete_storage_volume(
        &self,
        req: Request<v1::DeleteStorageVolumeRequest>,
    ) -> Result<Response<v1::DeleteStorageVolumeResponse>, Status> {
        let dl = deadline(&req);
        self.on_volume(dl, req.get_ref().volume.as_ref(), Lane::Quick, |_, v, _| {
            Ok(v.delete(0)?)
        })
        .await?;
        ok(v1::DeleteStorageVolumeResponse {})
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn wipe_storage_volume(
        &self,
        req: Request<v1::WipeStorageVolumeRequest>,
    ) -> Result<Response<v1::WipeStorageVolumeResponse>, Status> {
        let dl = deadline(&req);
        let v = self
            .on_volume(dl, req.get_ref().volume.as_ref(), Lane::Slow, |_, v, h| {
                v.wipe(0)?;
                ops::volume_info(v, h)
            })
            .await?;
        ok(v1::WipeStorageVolumeResponse { volume: Some(v) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn resize_storage_volume(
        &self,
        req: Request<v1::ResizeStorageVolumeRequest>,
    ) -> Result<Response<v1::ResizeStorageVolumeResponse>, Status> {
        let dl = deadline(&req);
        let r = req.get_ref();
        let cap = render::positive_size("capacity_bytes", r.capacity_bytes)?;
        let flags = flags_of(&[
            (r.delta, sys::VIR_STORAGE_VOL_RESIZE_DELTA),
            (r.allocate, sys::VIR_STORAGE_VOL_RESIZE_ALLOCATE),
            (r.shrink, sys::VIR_STORAGE_VOL_RESIZE_SHRINK),
        ]);
        let v = self
            .on_volume(dl, r.volume.as_ref(), Lane::Slow, move |_, v, h| {
                v.resize(cap, flags)?;
                ops::volume_info(v, h)
            })
            .await?;
        ok(v1::ResizeStorageVolumeResponse { volume: Some(v) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn upload_volume(
        &self,
        req: Request<Streaming<v1::UploadVolumeRequest>>,
    ) -> Result<Response<v1::UploadVolumeResponse>, Status> {
        use v1::upload_volume_request::Msg;
        let dl = deadline(&req);
        let idle = self.stream_idle;
        let mut inbound = req.into_inner();
        let first = next_message(&mut inbound, idle, dl)
            .await?
            .ok_or_else(|| Error::invalid("target", "the first message must carry the target"))?;
        let Some(Msg::Target(t)) = first.msg else {
            return Err(Error::invalid("target", "the first message must carry the target").into());
        };
        let vref = t
            .volume
            .ok_or_else(|| Error::invalid("target.volume", "is required"))?;
        render::volume_name("target.volume.name", &vref.name)?;
        let sha256 = if t.sha256.is_empty() {
            None
        } else {
            let s = t.sha256.to_ascii_lowercase();
            if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::invalid("target.sha256", "must be 64 hex digits").into());
            }
            Some(s)
        };
        let create_xml = match t.create {
            Some(mut spec) => {
                if spec.name.is_empty() {
                    spec.name = vref.name.clone();
                } else if spec.name != vref.name {
                    return Err(Error::invalid(
                        "target.create.name",
                        "must be empty or equal target.volume.name",
                    )
                    .into());
                }
                Some(render::render_volume(&spec)?)
            }
            None => None,
        };
        render::transfer_range(t.offset, t.length)?;
        let (pool, key) = self.pool_target(vref.pool.as_ref())?;
        let host = pool.name().to_owned();
        let plan = UploadPlan {
            pool: key,
            name: vref.name,
            offset: t.offset,
            length: t.length,
            sha256,
            create_xml,
        };
        // No slow-lane slot until the first chunk (or the end) arrived: a
        // client that names a target and then stalls holds nothing.
        let opening = next_upload_item(&mut inbound, idle, dl).await?;
        let mut ended = matches!(opening, UploadItem::End);
        let (tx, mut rx) = mpsc::channel::<UploadItem>(TRANSFER_QUEUE);
        tx.try_send(opening)
            .map_err(|_| Error::internal("the upload queue refused its first item"))?;
        let started = Arc::new(AtomicBool::new(false));
        let running = Arc::clone(&started);
        let transfer = pool.run(Lane::Slow, dl, move |c| {
            running.store(true, Ordering::Release);
            ops::upload(c, &host, &plan, &mut rx)
        });
        // Feeds the blocking side; dropping `tx` without `End` (the client
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
            (Ok(r), _) => ok(r),
            // The client's own error explains the failure better than the
            // "ended early" the blocking side saw.
            (Err(_), Some(Err(status))) => Err(status),
            (Err(e), _) => Err(e.into()),
        }
    }

    type DownloadVolumeStream = DownloadStream;

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn download_volume(
        &self,
        req: Request<v1::DownloadVolumeRequest>,
    ) -> Result<Response<Self::DownloadVolumeStream>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let vref = r
            .volume
            .ok_or_else(|| Error::invalid("volume", "is required"))?;
        render::volume_name("volume.name", &vref.name)?;
        render::transfer_range(r.offset, r.length)?;
        let (pool, key) = self.pool_target(vref.pool.as_ref())?;
        let host = pool.name().to_owned();
        let (tx, rx) = mpsc::channel(TRANSFER_QUEUE);
        let name = vref.name;
        // Fail before the stream starts when the volume or the driver's
        // download support is missing: probe in the first run.
        let err_tx = tx.clone();
        tokio::spawn(async move {
            let res = pool
                .run(Lane::Slow, dl, move |c| {
                    ops::download(c, &host, &key, &name, r.offset, r.length, &tx)
                })
                .await;
            if let Err(e) = res {
                let _ = err_tx.send(Err(e.into())).await;
            }
        });
        let mut stream = ReceiverStream::new(rx).peekable();
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
