//! `DomainService`: each handler turns its request into validated values
//! (`convert::domain`), resolves the domain reference (`resolve::Target`),
//! runs one `ops::domain` function through the host's pool and converts the
//! answer. No libvirt call here.

use std::pin::Pin;

use futures::Stream;
use libvirt_grpc::v1::{self, domain_service_server::DomainService};
use tonic::{Request, Response, Status};

mod internals;

use super::{deadline, ok, paging, resolve::Target, tunables};
use crate::{
    auth::{Caller, Role},
    confine::{Confinement, Reach},
    convert::domain as convert,
    error::Error,
    ops::{
        domain::{self as ops, DeviceChange, DomainKey},
        threads::{self, IoThreadChange},
        tunables::Kind,
    },
    pool::{Hosts, Lane},
};

/// The `host` of a listing across every configured host.
const EVERY_HOST: &str = "*";

/// The `DomainService` implementation.
#[derive(Debug, Clone)]
pub struct DomainApi {
    hosts: Hosts,
    events: Option<std::sync::Arc<crate::events::hub::Hub>>,
    confinement: std::sync::Arc<Confinement>,
    consoles: super::console::Consoles,
}

impl DomainApi {
    /// `ListDomains` with `host = "*"`: every host read at once (each
    /// within the call's deadline), merged in configuration order, by name
    /// within a host. A page token names the host and the domain it
    /// resumes after; hosts that fail are named, not fatal.
    async fn list_every_host(
        &self,
        r: &v1::ListDomainsRequest,
        dl: Option<tokio::time::Instant>,
    ) -> Result<v1::ListDomainsResponse, Error> {
        let limit = paging::page_size(r.page_size);
        let filter = convert::list_filter(r, limit)?;
        let bad_token = || Error::invalid("page_token", "is not a token this server issued");
        let resume = match &filter.after {
            None => None,
            Some(a) => Some(a.split_once('\0').ok_or_else(bad_token)?),
        };
        let pools: Vec<_> = match resume {
            None => self.hosts.iter().cloned().collect(),
            Some((host, _)) => {
                let all: Vec<_> = self.hosts.iter().cloned().collect();
                let at = all
                    .iter()
                    .position(|p| p.name() == host)
                    .ok_or_else(bad_token)?;
                all[at..].to_vec()
            }
        };
        let position = self.events.as_ref().map(|h| h.position());
        let reads = pools.iter().map(|pool| {
            let mut f = filter.clone();
            f.after = match resume {
                Some((host, name)) if host == pool.name() => Some(name.to_owned()),
                _ => None,
            };
            let host = pool.name().to_owned();
            let pool = std::sync::Arc::clone(pool);
            async move {
                pool.run(Lane::Quick, dl, move |c| ops::list(c, &host, &f))
                    .await
            }
        });
        let answers = futures::future::join_all(reads).await;
        let (mut domains, mut unreachable_hosts, mut more) = (Vec::new(), Vec::new(), false);
        for (pool, answer) in pools.iter().zip(answers) {
            match answer {
                Ok((page, host_more)) => {
                    for d in page {
                        if domains.len() == limit {
                            more = true;
                            break;
                        }
                        domains.push(d);
                    }
                    more |= host_more && domains.len() == limit;
                }
                Err(e) => unreachable_hosts.push(v1::HostError {
                    host: pool.name().to_owned(),
                    code: e.code() as i32,
                    message: e.to_string(),
                }),
            }
        }
        let next_page_token = match (more, domains.last()) {
            (true, Some(d)) => paging::encode_token(&format!("{}\0{}", d.host, d.name)),
            _ => String::new(),
        };
        let (event_sequence, event_epoch) =
            position.map(|p| (p.sequence, p.epoch)).unwrap_or_default();
        Ok(v1::ListDomainsResponse {
            domains: domains.into_iter().map(v1::Domain::from).collect(),
            next_page_token,
            event_sequence,
            event_epoch,
            unreachable_hosts,
        })
    }

    /// A service over `hosts`.
    pub fn new(hosts: Hosts) -> Self {
        DomainApi {
            hosts,
            events: None,
            confinement: std::sync::Arc::default(),
            consoles: super::console::Consoles::default(),
        }
    }

    /// Confines the host paths of requests to these roots (default:
    /// [`crate::confine::DEFAULT_ROOT`]).
    pub fn with_confinement(mut self, c: std::sync::Arc<Confinement>) -> Self {
        self.confinement = c;
        self
    }

    /// Checks a definition's XML or spec for a caller of `role` on `pool`.
    fn check_definition(
        &self,
        def: &ops::Definition,
        role: Role,
        pool: &crate::pool::HostPool,
    ) -> Result<(), Error> {
        let reach = Reach::of_uri(pool.uri());
        match def {
            ops::Definition::Xml(x) => self.confinement.check_xml("xml", x, role, reach),
            ops::Definition::Spec(s) => self.confinement.check_domain_spec("spec", s, role, reach),
        }
    }

    /// Ends open consoles when `stop` turns true (server shutdown).
    pub fn with_stream_stop(mut self, stop: tokio::sync::watch::Receiver<bool>) -> Self {
        self.consoles = self.consoles.with_stop(stop);
        self
    }

    /// Lets `ListDomains` report the event position of its listing.
    pub fn with_events(mut self, hub: std::sync::Arc<crate::events::hub::Hub>) -> Self {
        self.events = Some(hub);
        self
    }

    /// The domain a request's `domain` field names.
    fn target(&self, r: Option<&v1::DomainRef>) -> Result<Target<DomainKey>, Error> {
        Target::resolve(&self.hosts, r, "domain")
    }

    /// The domain and the request's other checked values: every bad field
    /// of both in one BadRequest.
    fn target_with<P>(
        &self,
        r: Option<&v1::DomainRef>,
        params: Result<P, Error>,
    ) -> Result<(Target<DomainKey>, P), Error> {
        Target::resolve_with(&self.hosts, r, "domain", params)
    }

    /// Attach, detach or update one device of the domain `r` names, with
    /// libvirt `flags`; the domain as read after.
    async fn change_device(
        &self,
        dl: Option<tokio::time::Instant>,
        r: Option<&v1::DomainRef>,
        change: DeviceChange,
        xml: String,
        flags: u32,
        role: Role,
    ) -> Result<v1::Domain, Error> {
        let (t, ()) = self.target_with(r, convert::device_xml(&xml))?;
        // A detach only names a device the domain has already.
        if change != DeviceChange::Detach {
            let reach = Reach::of_uri(t.pool.uri());
            self.confinement.check_xml("xml", &xml, role, reach)?;
        }
        let d = t
            .run(Lane::Quick, dl, move |c, k, h| {
                ops::change_device(c, k, h, change, &xml, flags)
            })
            .await?;
        Ok(d.into())
    }
}

/// The stream of a screenshot.
type ScreenshotStream =
    Pin<Box<dyn Stream<Item = Result<v1::ScreenshotDomainResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl DomainService for DomainApi {
    #[tracing::instrument(skip_all, fields(host = %req.get_ref().host))]
    async fn list_domains(
        &self,
        req: Request<v1::ListDomainsRequest>,
    ) -> Result<Response<v1::ListDomainsResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        if r.host == EVERY_HOST {
            return ok(self.list_every_host(&r, dl).await?);
        }
        let pool = self.hosts.get(&r.host)?;
        let filter = convert::list_filter(&r, paging::page_size(r.page_size))?;
        let host = pool.name().to_owned();
        // Read before listing: every change after this point is replayed to
        // a watcher resuming from it, so list-then-watch has no gap.
        let position = self.events.as_ref().map(|h| h.position());
        let (domains, more) = pool
            .run(Lane::Quick, dl, move |c| ops::list(c, &host, &filter))
            .await?;
        let next_page_token = match (more, domains.last()) {
            (true, Some(d)) => paging::encode_token(&d.name),
            _ => String::new(),
        };
        let (event_sequence, event_epoch) =
            position.map(|p| (p.sequence, p.epoch)).unwrap_or_default();
        ok(v1::ListDomainsResponse {
            domains: domains.into_iter().map(v1::Domain::from).collect(),
            next_page_token,
            event_sequence,
            event_epoch,
            unreachable_hosts: Vec::new(),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_domain(
        &self,
        req: Request<v1::GetDomainRequest>,
    ) -> Result<Response<v1::GetDomainResponse>, Status> {
        let dl = deadline(&req);
        let r = req.get_ref();
        let (t, view) = self.target_with(r.domain.as_ref(), convert::view(r.view))?;
        // Reads go together with the host's concurrent ones in the same
        // view (one libvirt call for many callers, never an older answer).
        let d = t.pool.get_domain(t.key, view, dl).await?;
        ok(v1::GetDomainResponse {
            domain: Some(d.into()),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_domain_xml(
        &self,
        req: Request<v1::GetDomainXmlRequest>,
    ) -> Result<Response<v1::GetDomainXmlResponse>, Status> {
        let dl = deadline(&req);
        let caller = Caller::of(&req);
        let r = req.into_inner();
        if r.secure && !caller.has(Role::Admin) {
            return Err(Error::PermissionDenied {
                message: format!(
                    "GetDomainXml with secure = true (passwords in the XML) needs role 'admin'; caller '{}' has role '{}'",
                    caller.name, caller.role
                ),
                needed: Some(Role::Admin),
            }
            .into());
        }
        let flags = convert::xml_flags(&r);
        let t = self.target(r.domain.as_ref())?;
        let xml = t
            .run(Lane::Quick, dl, move |c, k, _| ops::xml(c, k, flags))
            .await?;
        ok(v1::GetDomainXmlResponse { xml })
    }

    #[tracing::instrument(skip_all, fields(host = %req.get_ref().host))]
    async fn define_domain(
        &self,
        req: Request<v1::DefineDomainRequest>,
    ) -> Result<Response<v1::DefineDomainResponse>, Status> {
        use v1::define_domain_request::Source;
        let role = Caller::of(&req).role;
        let dl = deadline(&req);
        let r = req.into_inner();
        let pool = self.hosts.get(&r.host)?;
        let def = match r.source {
            Some(Source::Xml(x)) => convert::definition(Some(x), None),
            Some(Source::Spec(s)) => convert::definition(None, Some(s)),
            None => convert::definition(None, None),
        }?;
        self.check_definition(&def, role, pool)?;
        let (host, validate) = (pool.name().to_owned(), r.validate);
        let d = pool
            .run(Lane::Quick, dl, move |c| {
                ops::define(c, &host, &def, validate)
            })
            .await?;
        crate::auth::audit::note_target(&d.host, &d.name);
        ok(v1::DefineDomainResponse {
            domain: Some(d.into()),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn undefine_domain(
        &self,
        req: Request<v1::UndefineDomainRequest>,
    ) -> Result<Response<v1::UndefineDomainResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let (t, flags) = self.target_with(r.domain.as_ref(), convert::undefine_flags(&r))?;
        let d = t
            .run(Lane::Quick, dl, move |c, k, h| {
                ops::undefine(c, k, h, flags)
            })
            .await?;
        ok(v1::UndefineDomainResponse {
            domain: convert::domain(d),
        })
    }

    #[tracing::instrument(skip_all, fields(host = %req.get_ref().host))]
    async fn create_domain(
        &self,
        req: Request<v1::CreateDomainRequest>,
    ) -> Result<Response<v1::CreateDomainResponse>, Status> {
        use v1::create_domain_request::Source;
        let role = Caller::of(&req).role;
        let dl = deadline(&req);
        let mut r = req.into_inner();
        let pool = self.hosts.get(&r.host)?;
        let flags = convert::create_flags(&r);
        let def = match r.source.take() {
            Some(Source::Xml(x)) => convert::definition(Some(x), None),
            Some(Source::Spec(s)) => convert::definition(None, Some(s)),
            None => convert::definition(None, None),
        }?;
        self.check_definition(&def, role, pool)?;
        let host = pool.name().to_owned();
        let d = pool
            .run(Lane::Quick, dl, move |c| ops::create(c, &host, &def, flags))
            .await?;
        crate::auth::audit::note_target(&d.host, &d.name);
        ok(v1::CreateDomainResponse {
            domain: Some(d.into()),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn start_domain(
        &self,
        req: Request<v1::StartDomainRequest>,
    ) -> Result<Response<v1::StartDomainResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let flags = convert::start_flags(&r);
        let t = self.target(r.domain.as_ref())?;
        let d = t
            .run(Lane::Quick, dl, move |c, k, h| ops::start(c, k, h, flags))
            .await?;
        ok(v1::StartDomainResponse {
            domain: Some(d.into()),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn shutdown_domain(
        &self,
        req: Request<v1::ShutdownDomainRequest>,
    ) -> Result<Response<v1::ShutdownDomainResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let (t, flags) = self.target_with(r.domain.as_ref(), convert::shutdown_flags(r.mode))?;
        let d = t
            .run(Lane::Quick, dl, move |c, k, h| {
                ops::shutdown(c, k, h, flags)
            })
            .await?;
        ok(v1::ShutdownDomainResponse {
            domain: convert::domain(d),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn reboot_domain(
        &self,
        req: Request<v1::RebootDomainRequest>,
    ) -> Result<Response<v1::RebootDomainResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let (t, flags) = self.target_with(r.domain.as_ref(), convert::shutdown_flags(r.mode))?;
        let d = t
            .run(Lane::Quick, dl, move |c, k, h| ops::reboot(c, k, h, flags))
            .await?;
        ok(v1::RebootDomainResponse {
            domain: Some(d.into()),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn reset_domain(
        &self,
        req: Request<v1::ResetDomainRequest>,
    ) -> Result<Response<v1::ResetDomainResponse>, Status> {
        let dl = deadline(&req);
        let t = self.target(req.get_ref().domain.as_ref())?;
        let d = t.run(Lane::Quick, dl, ops::reset).await?;
        ok(v1::ResetDomainResponse {
            domain: Some(d.into()),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn stop_domain(
        &self,
        req: Request<v1::StopDomainRequest>,
    ) -> Result<Response<v1::StopDomainResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let flags = convert::stop_flags(r.graceful);
        let t = self.target(r.domain.as_ref())?;
        let d = t
            .run(Lane::Quick, dl, move |c, k, h| ops::stop(c, k, h, flags))
            .await?;
        ok(v1::StopDomainResponse {
            domain: convert::domain(d),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn suspend_domain(
        &self,
        req: Request<v1::SuspendDomainRequest>,
    ) -> Result<Response<v1::SuspendDomainResponse>, Status> {
        let dl = deadline(&req);
        let t = self.target(req.get_ref().domain.as_ref())?;
        let d = t.run(Lane::Quick, dl, ops::suspend).await?;
        ok(v1::SuspendDomainResponse {
            domain: Some(d.into()),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn resume_domain(
        &self,
        req: Request<v1::ResumeDomainRequest>,
    ) -> Result<Response<v1::ResumeDomainResponse>, Status> {
        let dl = deadline(&req);
        let t = self.target(req.get_ref().domain.as_ref())?;
        let d = t.run(Lane::Quick, dl, ops::resume).await?;
        ok(v1::ResumeDomainResponse {
            domain: Some(d.into()),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn save_domain(
        &self,
        req: Request<v1::SaveDomainRequest>,
    ) -> Result<Response<v1::SaveDomainResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let (t, flags) = self.target_with(
            r.domain.as_ref(),
            convert::save_flags("restore_state", r.restore_state, r.bypass_cache),
        )?;
        // For every caller, admins too: nothing is written outside the roots.
        self.confinement
            .check_path("path", &r.path, Reach::of_uri(t.pool.uri()))?;
        let path = r.path;
        let d = t
            .run(Lane::Slow, dl, move |c, k, h| {
                ops::save(c, k, h, &path, flags)
            })
            .await?;
        ok(v1::SaveDomainResponse {
            domain: convert::domain(d),
        })
    }

    #[tracing::instrument(skip_all, fields(host = %req.get_ref().host))]
    async fn restore_domain(
        &self,
        req: Request<v1::RestoreDomainRequest>,
    ) -> Result<Response<v1::RestoreDomainResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let flags = convert::save_flags("restore_state", r.restore_state, r.bypass_cache)?;
        let pool = self.hosts.get(&r.host)?;
        self.confinement
            .check_path("path", &r.path, Reach::of_uri(pool.uri()))?;
        let (host, path) = (pool.name().to_owned(), r.path);
        let d = pool
            .run(Lane::Slow, dl, move |c| {
                ops::restore(c, &host, &path, flags)
            })
            .await?;
        crate::auth::audit::note_target(&d.host, &d.name);
        ok(v1::RestoreDomainResponse {
            domain: Some(d.into()),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn managed_save_domain(
        &self,
        req: Request<v1::ManagedSaveDomainRequest>,
    ) -> Result<Response<v1::ManagedSaveDomainResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let (t, flags) = self.target_with(
            r.domain.as_ref(),
            convert::save_flags("restore_state", r.restore_state, false),
        )?;
        let d = t
            .run(Lane::Slow, dl, move |c, k, h| {
                ops::managed_save(c, k, h, flags)
            })
            .await?;
        ok(v1::ManagedSaveDomainResponse {
            domain: Some(d.into()),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn remove_domain_managed_save(
        &self,
        req: Request<v1::RemoveDomainManagedSaveRequest>,
    ) -> Result<Response<v1::RemoveDomainManagedSaveResponse>, Status> {
        let dl = deadline(&req);
        let t = self.target(req.get_ref().domain.as_ref())?;
        let d = t.run(Lane::Quick, dl, ops::remove_managed_save).await?;
        ok(v1::RemoveDomainManagedSaveResponse {
            domain: Some(d.into()),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn set_domain_autostart(
        &self,
        req: Request<v1::SetDomainAutostartRequest>,
    ) -> Result<Response<v1::SetDomainAutostartResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let t = self.target(r.domain.as_ref())?;
        let on = r.autostart;
        let d = t
            .run(Lane::Quick, dl, move |c, k, h| {
                ops::set_autostart(c, k, h, on)
            })
            .await?;
        ok(v1::SetDomainAutostartResponse {
            domain: Some(d.into()),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn set_domain_vcpus(
        &self,
        req: Request<v1::SetDomainVcpusRequest>,
    ) -> Result<Response<v1::SetDomainVcpusResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let (t, (vcpus, flags)) = self.target_with(r.domain.as_ref(), convert::set_vcpus(&r))?;
        let d = t
            .run(Lane::Quick, dl, move |c, k, h| {
                ops::set_vcpus(c, k, h, vcpus, flags)
            })
            .await?;
        ok(v1::SetDomainVcpusResponse {
            domain: Some(d.into()),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn set_domain_memory(
        &self,
        req: Request<v1::SetDomainMemoryRequest>,
    ) -> Result<Response<v1::SetDomainMemoryResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let (t, (kib, flags)) = self.target_with(r.domain.as_ref(), convert::set_memory(&r))?;
        let d = t
            .run(Lane::Quick, dl, move |c, k, h| {
                ops::set_memory(c, k, h, kib, flags)
            })
            .await?;
        ok(v1::SetDomainMemoryResponse {
            domain: Some(d.into()),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn attach_domain_device(
        &self,
        req: Request<v1::AttachDomainDeviceRequest>,
    ) -> Result<Response<v1::AttachDomainDeviceResponse>, Status> {
        let role = Caller::of(&req).role;
        let dl = deadline(&req);
        let r = req.into_inner();
        let flags = convert::scope_flags(r.scope.as_ref());
        let d = self
            .change_device(
                dl,
                r.domain.as_ref(),
                DeviceChange::Attach,
                r.xml,
                flags,
                role,
            )
            .await?;
        ok(v1::AttachDomainDeviceResponse { domain: Some(d) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn detach_domain_device(
        &self,
        req: Request<v1::DetachDomainDeviceRequest>,
    ) -> Result<Response<v1::DetachDomainDeviceResponse>, Status> {
        let role = Caller::of(&req).role;
        let dl = deadline(&req);
        let r = req.into_inner();
        let flags = convert::scope_flags(r.scope.as_ref());
        let d = self
            .change_device(
                dl,
                r.domain.as_ref(),
                DeviceChange::Detach,
                r.xml,
                flags,
                role,
            )
            .await?;
        ok(v1::DetachDomainDeviceResponse { domain: Some(d) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn update_domain_device(
        &self,
        req: Request<v1::UpdateDomainDeviceRequest>,
    ) -> Result<Response<v1::UpdateDomainDeviceResponse>, Status> {
        let role = Caller::of(&req).role;
        let dl = deadline(&req);
        let r = req.into_inner();
        let flags = convert::update_device_flags(&r);
        let d = self
            .change_device(
                dl,
                r.domain.as_ref(),
                DeviceChange::Update,
                r.xml,
                flags,
                role,
            )
            .await?;
        ok(v1::UpdateDomainDeviceResponse { domain: Some(d) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_domain_metadata(
        &self,
        req: Request<v1::GetDomainMetadataRequest>,
    ) -> Result<Response<v1::GetDomainMetadataResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let (t, what) = self.target_with(r.domain.as_ref(), convert::get_metadata(&r))?;
        let value = t
            .run(Lane::Quick, dl, move |c, k, _| {
                ops::get_metadata(c, k, &what)
            })
            .await?;
        ok(v1::GetDomainMetadataResponse { value })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn set_domain_metadata(
        &self,
        req: Request<v1::SetDomainMetadataRequest>,
    ) -> Result<Response<v1::SetDomainMetadataResponse>, Status> {
        let dl = deadline(&req);
        let mut r = req.into_inner();
        let domain = r.domain.take();
        let (t, (what, value, key)) =
            self.target_with(domain.as_ref(), convert::set_metadata(r))?;
        let d = t
            .run(Lane::Quick, dl, move |c, k, h| {
                ops::set_metadata(c, k, h, &what, value.as_deref(), key.as_deref())
            })
            .await?;
        ok(v1::SetDomainMetadataResponse {
            domain: Some(d.into()),
        })
    }

    #[tracing::instrument(skip_all, fields(host = %req.get_ref().host))]
    async fn get_domain_stats(
        &self,
        req: Request<v1::GetDomainStatsRequest>,
    ) -> Result<Response<v1::GetDomainStatsResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let groups = convert::stats_groups(&r.groups)?;
        if r.domains.len() > convert::MAX_STATS_DOMAINS {
            return Err(Error::invalid(
                "domains",
                format!(
                    "names {} domains; the limit is {}",
                    r.domains.len(),
                    convert::MAX_STATS_DOMAINS
                ),
            )
            .into());
        }
        let mut keys = Vec::new();
        let mut host = r.host.clone();
        for (i, d) in r.domains.iter().enumerate() {
            let t = Target::resolve(&self.hosts, Some(d), &format!("domains[{i}]"))?;
            if i == 0 && host.is_empty() {
                host = t.host().to_owned();
            }
            if t.host() != self.hosts.get(&host)?.name() {
                return Err(Error::invalid("domains", "all domains must be on one host").into());
            }
            keys.push(t.key);
        }
        let pool = self.hosts.get(&host)?;
        let host = pool.name().to_owned();
        let records = pool
            .run(Lane::Quick, dl, move |c| ops::stats(c, &keys, groups))
            .await?;
        ok(v1::GetDomainStatsResponse {
            stats: records
                .into_iter()
                .map(|s| convert::stats(&host, s))
                .collect(),
        })
    }

    type ScreenshotDomainStream = ScreenshotStream;

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn screenshot_domain(
        &self,
        req: Request<v1::ScreenshotDomainRequest>,
    ) -> Result<Response<ScreenshotStream>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let t = self.target(r.domain.as_ref())?;
        let screen = r.screen;
        let shot = t
            .run(Lane::Slow, dl, move |c, k, _| ops::screenshot(c, k, screen))
            .await?;
        let items = convert::screenshot_items(shot).into_iter().map(Ok);
        Ok(Response::new(Box::pin(futures::stream::iter(items))))
    }

    type OpenDomainConsoleStream = super::console::ConsoleStream;

    #[tracing::instrument(skip_all)]
    async fn open_domain_console(
        &self,
        req: Request<tonic::Streaming<v1::OpenDomainConsoleRequest>>,
    ) -> Result<Response<Self::OpenDomainConsoleStream>, Status> {
        let dl = deadline(&req);
        let stream =
            super::console::open(&self.hosts, &self.consoles, req.into_inner(), dl).await?;
        Ok(Response::new(stream))
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn send_domain_key(
        &self,
        req: Request<v1::SendDomainKeyRequest>,
    ) -> Result<Response<v1::SendDomainKeyResponse>, Status> {
        let dl = deadline(&req);
        let mut r = req.into_inner();
        let domain = r.domain.take();
        let (t, (codeset, hold, codes)) =
            self.target_with(domain.as_ref(), convert::send_key(r))?;
        t.run(Lane::Quick, dl, move |c, k, _| {
            ops::send_key(c, k, codeset, hold, codes)
        })
        .await?;
        ok(v1::SendDomainKeyResponse {})
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn pin_domain_vcpu(
        &self,
        req: Request<v1::PinDomainVcpuRequest>,
    ) -> Result<Response<v1::PinDomainVcpuResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let (t, flags) = self.target_with(r.domain.as_ref(), convert::pin_vcpu(&r))?;
        let (vcpu, cpus) = (r.vcpu, r.cpus);
        let d = t
            .run(Lane::Quick, dl, move |c, k, h| {
                ops::pin_vcpu(c, k, h, vcpu, &cpus, flags)
            })
            .await?;
        ok(v1::PinDomainVcpuResponse {
            domain: Some(d.into()),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_domain_vcpu_pinning(
        &self,
        req: Request<v1::GetDomainVcpuPinningRequest>,
    ) -> Result<Response<v1::GetDomainVcpuPinningResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let flags = convert::vcpu_pinning_flags(r.config);
        let t = self.target(r.domain.as_ref())?;
        let maps = t
            .run(Lane::Quick, dl, move |c, k, _| {
                ops::vcpu_pinning(c, k, flags)
            })
            .await?;
        ok(v1::GetDomainVcpuPinningResponse {
            vcpus: convert::vcpu_pinning(maps),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn pin_domain_emulator(
        &self,
        req: Request<v1::PinDomainEmulatorRequest>,
    ) -> Result<Response<v1::PinDomainEmulatorResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let (t, flags) = self.target_with(r.domain.as_ref(), convert::pin_emulator(&r))?;
        let cpus = r.cpus;
        let d = t
            .run(Lane::Quick, dl, move |c, k, h| {
                threads::pin_emulator(c, k, h, &cpus, flags)
            })
            .await?;
        ok(v1::PinDomainEmulatorResponse {
            domain: Some(d.into()),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_domain_emulator_pinning(
        &self,
        req: Request<v1::GetDomainEmulatorPinningRequest>,
    ) -> Result<Response<v1::GetDomainEmulatorPinningResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let flags = convert::vcpu_pinning_flags(r.config);
        let t = self.target(r.domain.as_ref())?;
        let cpus = t
            .run(Lane::Quick, dl, move |c, k, _| {
                threads::emulator_pinning(c, k, flags)
            })
            .await?;
        ok(v1::GetDomainEmulatorPinningResponse { cpus })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_domain_io_threads(
        &self,
        req: Request<v1::GetDomainIoThreadsRequest>,
    ) -> Result<Response<v1::GetDomainIoThreadsResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let flags = convert::vcpu_pinning_flags(r.config);
        let t = self.target(r.domain.as_ref())?;
        let list = t
            .run(Lane::Quick, dl, move |c, k, _| {
                threads::iothreads(c, k, flags)
            })
            .await?;
        ok(v1::GetDomainIoThreadsResponse {
            iothreads: convert::iothreads(list),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn add_domain_io_thread(
        &self,
        req: Request<v1::AddDomainIoThreadRequest>,
    ) -> Result<Response<v1::AddDomainIoThreadResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let (t, (id, flags)) = self.target_with(
            r.domain.as_ref(),
            convert::iothread_change(r.iothread_id, r.scope.as_ref()),
        )?;
        let list = t
            .run(Lane::Quick, dl, move |c, k, _| {
                threads::change_iothread(c, k, id, &IoThreadChange::Add, flags)
            })
            .await?;
        ok(v1::AddDomainIoThreadResponse {
            iothreads: convert::iothreads(list),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn delete_domain_io_thread(
        &self,
        req: Request<v1::DeleteDomainIoThreadRequest>,
    ) -> Result<Response<v1::DeleteDomainIoThreadResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let (t, (id, flags)) = self.target_with(
            r.domain.as_ref(),
            convert::iothread_change(r.iothread_id, r.scope.as_ref()),
        )?;
        let list = t
            .run(Lane::Quick, dl, move |c, k, _| {
                threads::change_iothread(c, k, id, &IoThreadChange::Delete, flags)
            })
            .await?;
        ok(v1::DeleteDomainIoThreadResponse {
            iothreads: convert::iothreads(list),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn pin_domain_io_thread(
        &self,
        req: Request<v1::PinDomainIoThreadRequest>,
    ) -> Result<Response<v1::PinDomainIoThreadResponse>, Status> {
        let dl = deadline(&req);
        let mut r = req.into_inner();
        let domain = r.domain.take();
        let (t, (id, change, flags)) =
            self.target_with(domain.as_ref(), convert::pin_iothread(r))?;
        let list = t
            .run(Lane::Quick, dl, move |c, k, _| {
                threads::change_iothread(c, k, id, &change, flags)
            })
            .await?;
        ok(v1::PinDomainIoThreadResponse {
            iothreads: convert::iothreads(list),
        })
    }

    async fn get_domain_memory_parameters(
        &self,
        req: Request<v1::GetDomainMemoryParametersRequest>,
    ) -> Result<Response<v1::GetDomainMemoryParametersResponse>, Status> {
        let (dl, r) = (deadline(&req), req.into_inner());
        let parameters = tunables::get(
            &self.hosts,
            dl,
            Kind::Memory,
            r.domain,
            String::new(),
            r.config,
        )
        .await?;
        ok(v1::GetDomainMemoryParametersResponse { parameters })
    }

    async fn set_domain_memory_parameters(
        &self,
        req: Request<v1::SetDomainMemoryParametersRequest>,
    ) -> Result<Response<v1::SetDomainMemoryParametersResponse>, Status> {
        let (dl, r) = (deadline(&req), req.into_inner());
        let parameters = tunables::set(
            &self.hosts,
            dl,
            Kind::Memory,
            r.domain,
            String::new(),
            r.parameters,
            r.scope,
        )
        .await?;
        ok(v1::SetDomainMemoryParametersResponse { parameters })
    }

    async fn get_domain_numa_parameters(
        &self,
        req: Request<v1::GetDomainNumaParametersRequest>,
    ) -> Result<Response<v1::GetDomainNumaParametersResponse>, Status> {
        let (dl, r) = (deadline(&req), req.into_inner());
        let parameters = tunables::get(
            &self.hosts,
            dl,
            Kind::Numa,
            r.domain,
            String::new(),
            r.config,
        )
        .await?;
        ok(v1::GetDomainNumaParametersResponse { parameters })
    }

    async fn set_domain_numa_parameters(
        &self,
        req: Request<v1::SetDomainNumaParametersRequest>,
    ) -> Result<Response<v1::SetDomainNumaParametersResponse>, Status> {
        let (dl, r) = (deadline(&req), req.into_inner());
        let parameters = tunables::set(
            &self.hosts,
            dl,
            Kind::Numa,
            r.domain,
            String::new(),
            r.parameters,
            r.scope,
        )
        .await?;
        ok(v1::SetDomainNumaParametersResponse { parameters })
    }

    async fn get_domain_blkio_parameters(
        &self,
        req: Request<v1::GetDomainBlkioParametersRequest>,
    ) -> Result<Response<v1::GetDomainBlkioParametersResponse>, Status> {
        let (dl, r) = (deadline(&req), req.into_inner());
        let parameters = tunables::get(
            &self.hosts,
            dl,
            Kind::Blkio,
            r.domain,
            String::new(),
            r.config,
        )
        .await?;
        ok(v1::GetDomainBlkioParametersResponse { parameters })
    }

    async fn set_domain_blkio_parameters(
        &self,
        req: Request<v1::SetDomainBlkioParametersRequest>,
    ) -> Result<Response<v1::SetDomainBlkioParametersResponse>, Status> {
        let (dl, r) = (deadline(&req), req.into_inner());
        let parameters = tunables::set(
            &self.hosts,
            dl,
            Kind::Blkio,
            r.domain,
            String::new(),
            r.parameters,
            r.scope,
        )
        .await?;
        ok(v1::SetDomainBlkioParametersResponse { parameters })
    }

    async fn get_domain_interface_parameters(
        &self,
        req: Request<v1::GetDomainInterfaceParametersRequest>,
    ) -> Result<Response<v1::GetDomainInterfaceParametersResponse>, Status> {
        let (dl, r) = (deadline(&req), req.into_inner());
        let parameters = tunables::get(
            &self.hosts,
            dl,
            Kind::Interface,
            r.domain,
            r.device,
            r.config,
        )
        .await?;
        ok(v1::GetDomainInterfaceParametersResponse { parameters })
    }

    async fn set_domain_interface_parameters(
        &self,
        req: Request<v1::SetDomainInterfaceParametersRequest>,
    ) -> Result<Response<v1::SetDomainInterfaceParametersResponse>, Status> {
        let (dl, r) = (deadline(&req), req.into_inner());
        let parameters = tunables::set(
            &self.hosts,
            dl,
            Kind::Interface,
            r.domain,
            r.device,
            r.parameters,
            r.scope,
        )
        .await?;
        ok(v1::SetDomainInterfaceParametersResponse { parameters })
    }

    async fn get_domain_block_io_tune(
        &self,
        req: Request<v1::GetDomainBlockIoTuneRequest>,
    ) -> Result<Response<v1::GetDomainBlockIoTuneResponse>, Status> {
        let (dl, r) = (deadline(&req), req.into_inner());
        let parameters = tunables::get(
            &self.hosts,
            dl,
            Kind::BlockIoTune,
            r.domain,
            r.device,
            r.config,
        )
        .await?;
        ok(v1::GetDomainBlockIoTuneResponse { parameters })
    }

    async fn set_domain_block_io_tune(
        &self,
        req: Request<v1::SetDomainBlockIoTuneRequest>,
    ) -> Result<Response<v1::SetDomainBlockIoTuneResponse>, Status> {
        let (dl, r) = (deadline(&req), req.into_inner());
        let parameters = tunables::set(
            &self.hosts,
            dl,
            Kind::BlockIoTune,
            r.domain,
            r.device,
            r.parameters,
            r.scope,
        )
        .await?;
        ok(v1::SetDomainBlockIoTuneResponse { parameters })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_domain_job(
        &self,
        req: Request<v1::GetDomainJobRequest>,
    ) -> Result<Response<v1::GetDomainJobResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let t = self.target(r.domain.as_ref())?;
        let completed = r.completed;
        let j = t
            .run(Lane::Quick, dl, move |c, k, _| ops::job(c, k, completed))
            .await?;
        ok(v1::GetDomainJobResponse {
            job: Some(convert::job(j)),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn abort_domain_job(
        &self,
        req: Request<v1::AbortDomainJobRequest>,
    ) -> Result<Response<v1::AbortDomainJobResponse>, Status> {
        let dl = deadline(&req);
        let t = self.target(req.get_ref().domain.as_ref())?;
        t.run(Lane::Quick, dl, |c, k, _| ops::abort_job(c, k))
            .await?;
        ok(v1::AbortDomainJobResponse {})
    }

    type MigrateDomainStream = super::migrate::MigrateStream;

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn migrate_domain(
        &self,
        req: Request<v1::MigrateDomainRequest>,
    ) -> Result<Response<Self::MigrateDomainStream>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let dest = if r.destination_host.is_empty() {
            None
        } else {
            Some(std::sync::Arc::clone(self.hosts.get(&r.destination_host)?))
        };
        let uri = dest.as_ref().and_then(|d| d.migration_uri());
        let (t, (m, interval)) =
            self.target_with(r.domain.as_ref(), convert::migration(&r, uri))?;
        let Some(dest) = dest else {
            return Err(Error::invalid("destination_host", "is required").into());
        };
        if dest.name() == t.host() {
            return Err(Error::invalid(
                "destination_host",
                format!("names the domain's own host '{}'", t.host()),
            )
            .into());
        }
        Ok(Response::new(super::migrate::start(
            t, dest, m, interval, dl,
        )))
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn start_domain_migration_post_copy(
        &self,
        req: Request<v1::StartDomainMigrationPostCopyRequest>,
    ) -> Result<Response<v1::StartDomainMigrationPostCopyResponse>, Status> {
        let dl = deadline(&req);
        let t = self.target(req.get_ref().domain.as_ref())?;
        t.run(Lane::Quick, dl, |c, k, _| {
            crate::ops::migrate::start_post_copy(c, k)
        })
        .await?;
        ok(v1::StartDomainMigrationPostCopyResponse {})
    }

    // Domain internals (issue 13): handlers in `domain/internals.rs`.

    async fn qemu_monitor_command(
        &self,
        req: Request<v1::QemuMonitorCommandRequest>,
    ) -> Result<Response<v1::QemuMonitorCommandResponse>, Status> {
        internals::qemu_monitor_command(self, req).await
    }

    async fn get_domain_max_vcpus(
        &self,
        req: Request<v1::GetDomainMaxVcpusRequest>,
    ) -> Result<Response<v1::GetDomainMaxVcpusResponse>, Status> {
        internals::get_domain_max_vcpus(self, req).await
    }

    async fn get_domain_block_stats(
        &self,
        req: Request<v1::GetDomainBlockStatsRequest>,
    ) -> Result<Response<v1::GetDomainBlockStatsResponse>, Status> {
        internals::get_domain_block_stats(self, req).await
    }

    async fn get_domain_interface_stats(
        &self,
        req: Request<v1::GetDomainInterfaceStatsRequest>,
    ) -> Result<Response<v1::GetDomainInterfaceStatsResponse>, Status> {
        internals::get_domain_interface_stats(self, req).await
    }

    async fn get_domain_memory_stats(
        &self,
        req: Request<v1::GetDomainMemoryStatsRequest>,
    ) -> Result<Response<v1::GetDomainMemoryStatsResponse>, Status> {
        internals::get_domain_memory_stats(self, req).await
    }

    async fn set_domain_memory_stats_period(
        &self,
        req: Request<v1::SetDomainMemoryStatsPeriodRequest>,
    ) -> Result<Response<v1::SetDomainMemoryStatsPeriodResponse>, Status> {
        internals::set_domain_memory_stats_period(self, req).await
    }

    async fn inject_domain_nmi(
        &self,
        req: Request<v1::InjectDomainNmiRequest>,
    ) -> Result<Response<v1::InjectDomainNmiResponse>, Status> {
        internals::inject_domain_nmi(self, req).await
    }

    async fn rename_domain(
        &self,
        req: Request<v1::RenameDomainRequest>,
    ) -> Result<Response<v1::RenameDomainResponse>, Status> {
        internals::rename_domain(self, req).await
    }

    async fn wakeup_domain(
        &self,
        req: Request<v1::WakeupDomainRequest>,
    ) -> Result<Response<v1::WakeupDomainResponse>, Status> {
        internals::wakeup_domain(self, req).await
    }

    async fn get_domain_disk_errors(
        &self,
        req: Request<v1::GetDomainDiskErrorsRequest>,
    ) -> Result<Response<v1::GetDomainDiskErrorsResponse>, Status> {
        internals::get_domain_disk_errors(self, req).await
    }

    async fn get_domain_scheduler_type(
        &self,
        req: Request<v1::GetDomainSchedulerTypeRequest>,
    ) -> Result<Response<v1::GetDomainSchedulerTypeResponse>, Status> {
        internals::get_domain_scheduler_type(self, req).await
    }

    async fn get_domain_scheduler_parameters(
        &self,
        req: Request<v1::GetDomainSchedulerParametersRequest>,
    ) -> Result<Response<v1::GetDomainSchedulerParametersResponse>, Status> {
        internals::get_domain_scheduler_parameters(self, req).await
    }

    async fn set_domain_scheduler_parameters(
        &self,
        req: Request<v1::SetDomainSchedulerParametersRequest>,
    ) -> Result<Response<v1::SetDomainSchedulerParametersResponse>, Status> {
        internals::set_domain_scheduler_parameters(self, req).await
    }

    async fn peek_domain_block(
        &self,
        req: Request<v1::PeekDomainBlockRequest>,
    ) -> Result<Response<v1::PeekDomainBlockResponse>, Status> {
        internals::peek_domain_block(self, req).await
    }

    async fn peek_domain_memory(
        &self,
        req: Request<v1::PeekDomainMemoryRequest>,
    ) -> Result<Response<v1::PeekDomainMemoryResponse>, Status> {
        internals::peek_domain_memory(self, req).await
    }

    type CoreDumpDomainStream = internals::CoreDumpStream;

    async fn core_dump_domain(
        &self,
        req: Request<v1::CoreDumpDomainRequest>,
    ) -> Result<Response<Self::CoreDumpDomainStream>, Status> {
        internals::core_dump_domain(self, req).await
    }

    async fn core_dump_domain_to_volume(
        &self,
        req: Request<v1::CoreDumpDomainToVolumeRequest>,
    ) -> Result<Response<v1::CoreDumpDomainToVolumeResponse>, Status> {
        internals::core_dump_domain_to_volume(self, req).await
    }
}
