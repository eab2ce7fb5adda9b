//! `DomainService`: validate, run the operation through the host's pool,
//! convert.

use libvirt_grpc::v1::{self, domain_service_server::DomainService};
use tonic::{Request, Response, Status};
use virt::{connect::Connect, domain::Domain, sys};

use super::{affect_flags, deadline, domain_target, flags_of, ok, paging};
use crate::{
    error::Error,
    libvirt_sys,
    ops::{domain as ops, screenshot},
    pool::{Hosts, Lane},
    render, validate,
};

/// The `DomainService` implementation.
#[derive(Debug, Clone)]
pub struct DomainApi {
    hosts: Hosts,
    events: Option<std::sync::Arc<crate::events::hub::Hub>>,
}

impl DomainApi {
    /// A service over `hosts`.
    pub fn new(hosts: Hosts) -> Self {
        DomainApi {
            hosts,
            events: None,
        }
    }

    /// Lets `ListDomains` report the event position of its listing.
    pub fn with_events(mut self, hub: std::sync::Arc<crate::events::hub::Hub>) -> Self {
        self.events = Some(hub);
        self
    }

    /// Runs `f` on the domain a request names.
    async fn on_domain<T, F>(
        &self,
        deadline: Option<tokio::time::Instant>,
        r: Option<&v1::DomainRef>,
        lane: Lane,
        f: F,
    ) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Connect, &Domain, &str) -> Result<T, Error> + Send + 'static,
    {
        super::run_on_domain(&self.hosts, deadline, r, lane, f).await
    }
}

/// Longest a `SendKey` may hold its keys: a key press, not a hold-down.
const MAX_KEY_HOLD_MS: u32 = 60_000;

/// Raw XML of a define/create request, checked before libvirt sees it.
fn definition_xml(xml: String) -> Result<ops::Definition, Error> {
    validate::required_xml("xml", &xml)?;
    Ok(ops::Definition::Xml(xml))
}

/// A structured spec of a define/create request, validated.
fn definition_spec(spec: v1::DomainSpec) -> Result<ops::Definition, Error> {
    render::domain::validate_spec(&spec)?;
    Ok(ops::Definition::Spec(Box::new(spec)))
}

fn shutdown_flags(mode: i32) -> Result<u32, Error> {
    use v1::ShutdownMode as M;
    Ok(
        match M::try_from(mode).map_err(|_| Error::invalid("mode", "unknown shutdown mode"))? {
            M::Unspecified => 0,
            M::Acpi => sys::VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN,
            M::Agent => sys::VIR_DOMAIN_SHUTDOWN_GUEST_AGENT,
            M::Initctl => sys::VIR_DOMAIN_SHUTDOWN_INITCTL,
            M::Signal => sys::VIR_DOMAIN_SHUTDOWN_SIGNAL,
            M::Paravirt => sys::VIR_DOMAIN_SHUTDOWN_PARAVIRT,
        },
    )
}

fn keycode_set(v: i32) -> Result<u32, Error> {
    use v1::KeyCodeSet as K;
    Ok(
        match K::try_from(v).map_err(|_| Error::invalid("codeset", "unknown code set"))? {
            K::Unspecified | K::Linux => sys::VIR_KEYCODE_SET_LINUX,
            K::Xt => sys::VIR_KEYCODE_SET_XT,
            K::Atset1 => sys::VIR_KEYCODE_SET_ATSET1,
            K::Atset2 => sys::VIR_KEYCODE_SET_ATSET2,
            K::Atset3 => sys::VIR_KEYCODE_SET_ATSET3,
            K::Osx => sys::VIR_KEYCODE_SET_OSX,
            K::XtKbd => sys::VIR_KEYCODE_SET_XT_KBD,
            K::Usb => sys::VIR_KEYCODE_SET_USB,
            K::Win32 => sys::VIR_KEYCODE_SET_WIN32,
            K::Qnum => sys::VIR_KEYCODE_SET_QNUM,
        },
    )
}

fn save_flags(paused: bool, running: bool, bypass_cache: bool) -> Result<u32, Error> {
    if paused && running {
        return Err(Error::invalid(
            "restore_paused",
            "paused and running exclude each other",
        ));
    }
    Ok(flags_of(&[
        (paused, sys::VIR_DOMAIN_SAVE_PAUSED),
        (running, sys::VIR_DOMAIN_SAVE_RUNNING),
        (bypass_cache, sys::VIR_DOMAIN_SAVE_BYPASS_CACHE),
    ]))
}

fn metadata_kind(kind: i32) -> Result<i32, Error> {
    use v1::MetadataKind as K;
    match K::try_from(kind) {
        Ok(K::Description) => Ok(sys::VIR_DOMAIN_METADATA_DESCRIPTION as i32),
        Ok(K::Title) => Ok(sys::VIR_DOMAIN_METADATA_TITLE as i32),
        Ok(K::Element) => Ok(sys::VIR_DOMAIN_METADATA_ELEMENT as i32),
        _ => Err(Error::invalid(
            "kind",
            "choose DESCRIPTION, TITLE or ELEMENT",
        )),
    }
}

#[tonic::async_trait]
impl DomainService for DomainApi {
    #[tracing::instrument(skip_all, fields(host = %req.get_ref().host))]
    async fn list_domains(
        &self,
        req: Request<v1::ListDomainsRequest>,
    ) -> Result<Response<v1::ListDomainsResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let pool = self.hosts.get(&r.host)?;
        validate::text("name_prefix", &r.name_prefix)?;
        let mut flags = 0;
        match v1::RunFilter::try_from(r.run_filter) {
            Ok(v1::RunFilter::Active) => flags |= sys::VIR_CONNECT_LIST_DOMAINS_ACTIVE,
            Ok(v1::RunFilter::Inactive) => flags |= sys::VIR_CONNECT_LIST_DOMAINS_INACTIVE,
            Ok(v1::RunFilter::Unspecified) => {}
            Err(_) => return Err(Error::invalid("run_filter", "unknown value").into()),
        }
        match v1::PersistenceFilter::try_from(r.persistence_filter) {
            Ok(v1::PersistenceFilter::Persistent) => {
                flags |= sys::VIR_CONNECT_LIST_DOMAINS_PERSISTENT
            }
            Ok(v1::PersistenceFilter::Transient) => {
                flags |= sys::VIR_CONNECT_LIST_DOMAINS_TRANSIENT
            }
            Ok(v1::PersistenceFilter::Unspecified) => {}
            Err(_) => return Err(Error::invalid("persistence_filter", "unknown value").into()),
        }
        let states = r
            .states
            .iter()
            .map(|s| {
                v1::DomainState::try_from(*s)
                    .map_err(|_| Error::invalid("states", format!("unknown state {s}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let limit = paging::page_size(r.page_size);
        let after = paging::after(&r.page_token)?;
        let filter = ops::ListFilter {
            flags,
            name_prefix: r.name_prefix,
            states,
            after,
            limit,
        };
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
            domains,
            next_page_token,
            event_sequence,
            event_epoch,
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_domain(
        &self,
        req: Request<v1::GetDomainRequest>,
    ) -> Result<Response<v1::GetDomainResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let domain = self
            .on_domain(dl, r.domain.as_ref(), Lane::Quick, |_, d, h| {
                ops::describe(h, d)
            })
            .await?;
        ok(v1::GetDomainResponse {
            domain: Some(domain),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_domain_xml(
        &self,
        req: Request<v1::GetDomainXmlRequest>,
    ) -> Result<Response<v1::GetDomainXmlResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let flags = flags_of(&[
            (r.inactive, sys::VIR_DOMAIN_XML_INACTIVE),
            (r.secure, sys::VIR_DOMAIN_XML_SECURE),
            (r.update_cpu, sys::VIR_DOMAIN_XML_UPDATE_CPU),
            (r.migratable, sys::VIR_DOMAIN_XML_MIGRATABLE),
        ]);
        let xml = self
            .on_domain(dl, r.domain.as_ref(), Lane::Quick, move |_, d, _| {
                Ok(d.xml_desc(flags)?)
            })
            .await?;
        ok(v1::GetDomainXmlResponse { xml })
    }

    #[tracing::instrument(skip_all, fields(host = %req.get_ref().host))]
    async fn define_domain(
        &self,
        req: Request<v1::DefineDomainRequest>,
    ) -> Result<Response<v1::DefineDomainResponse>, Status> {
        use v1::define_domain_request::Source;
        let dl = deadline(&req);
        let r = req.into_inner();
        let pool = self.hosts.get(&r.host)?;
        let def = match r.source {
            Some(Source::Xml(x)) => definition_xml(x)?,
            Some(Source::Spec(s)) => definition_spec(s)?,
            None => return Err(Error::invalid("source", "set one of xml or spec").into()),
        };
        let host = pool.name().to_owned();
        let validate = r.validate;
        let domain = pool
            .run(Lane::Quick, dl, move |c| {
                ops::define(c, &host, &def, validate)
            })
            .await?;
        ok(v1::DefineDomainResponse {
            domain: Some(domain),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn undefine_domain(
        &self,
        req: Request<v1::UndefineDomainRequest>,
    ) -> Result<Response<v1::UndefineDomainResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        if r.remove_nvram && r.keep_nvram {
            return Err(Error::invalid(
                "keep_nvram",
                "remove_nvram and keep_nvram exclude each other",
            )
            .into());
        }
        let flags = flags_of(&[
            (r.remove_managed_save, sys::VIR_DOMAIN_UNDEFINE_MANAGED_SAVE),
            (
                r.remove_snapshots_metadata,
                sys::VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA,
            ),
            (r.remove_nvram, sys::VIR_DOMAIN_UNDEFINE_NVRAM),
            (r.keep_nvram, sys::VIR_DOMAIN_UNDEFINE_KEEP_NVRAM),
            (
                r.remove_checkpoints_metadata,
                sys::VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA,
            ),
        ]);
        self.on_domain(dl, r.domain.as_ref(), Lane::Quick, move |_, d, _| {
            Ok(d.undefine_flags(flags)?)
        })
        .await?;
        ok(v1::UndefineDomainResponse {})
    }

    #[tracing::instrument(skip_all, fields(host = %req.get_ref().host))]
    async fn create_domain(
        &self,
        req: Request<v1::CreateDomainRequest>,
    ) -> Result<Response<v1::CreateDomainResponse>, Status> {
        use v1::create_domain_request::Source;
        let dl = deadline(&req);
        let r = req.into_inner();
        let pool = self.hosts.get(&r.host)?;
        let def = match r.source {
            Some(Source::Xml(x)) => definition_xml(x)?,
            Some(Source::Spec(s)) => definition_spec(s)?,
            None => return Err(Error::invalid("source", "set one of xml or spec").into()),
        };
        let flags = flags_of(&[
            (r.start_paused, sys::VIR_DOMAIN_START_PAUSED),
            (r.autodestroy, sys::VIR_DOMAIN_START_AUTODESTROY),
        ]);
        let host = pool.name().to_owned();
        let domain = pool
            .run(Lane::Quick, dl, move |c| ops::create(c, &host, &def, flags))
            .await?;
        ok(v1::CreateDomainResponse {
            domain: Some(domain),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn start_domain(
        &self,
        req: Request<v1::StartDomainRequest>,
    ) -> Result<Response<v1::StartDomainResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let flags = flags_of(&[
            (r.paused, sys::VIR_DOMAIN_START_PAUSED),
            (r.force_boot, sys::VIR_DOMAIN_START_FORCE_BOOT),
            (r.bypass_cache, sys::VIR_DOMAIN_START_BYPASS_CACHE),
        ]);
        let domain = self
            .on_domain(dl, r.domain.as_ref(), Lane::Quick, move |_, d, h| {
                // Drivers disagree on the error for this (the test driver
                // says "internal error"); the answer should not depend on it.
                if d.is_active()? {
                    return Err(Error::OperationInvalid(format!(
                        "Requested operation is not valid: domain '{}' is already running",
                        d.name()?
                    )));
                }
                d.create_with_flags(flags)?;
                ops::describe(h, d)
            })
            .await?;
        ok(v1::StartDomainResponse {
            domain: Some(domain),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn shutdown_domain(
        &self,
        req: Request<v1::ShutdownDomainRequest>,
    ) -> Result<Response<v1::ShutdownDomainResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let flags = shutdown_flags(r.mode)?;
        self.on_domain(dl, r.domain.as_ref(), Lane::Quick, move |_, d, _| {
            Ok(d.shutdown_flags(flags)?)
        })
        .await?;
        ok(v1::ShutdownDomainResponse {})
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn reboot_domain(
        &self,
        req: Request<v1::RebootDomainRequest>,
    ) -> Result<Response<v1::RebootDomainResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        // virDomainReboot shares the shutdown flag values.
        let flags = shutdown_flags(r.mode)?;
        self.on_domain(dl, r.domain.as_ref(), Lane::Quick, move |_, d, _| {
            Ok(d.reboot(flags)?)
        })
        .await?;
        ok(v1::RebootDomainResponse {})
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn reset_domain(
        &self,
        req: Request<v1::ResetDomainRequest>,
    ) -> Result<Response<v1::ResetDomainResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        self.on_domain(dl, r.domain.as_ref(), Lane::Quick, |_, d, _| Ok(d.reset()?))
            .await?;
        ok(v1::ResetDomainResponse {})
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn destroy_domain(
        &self,
        req: Request<v1::DestroyDomainRequest>,
    ) -> Result<Response<v1::DestroyDomainResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let flags = if r.graceful {
            sys::VIR_DOMAIN_DESTROY_GRACEFUL
        } else {
            sys::VIR_DOMAIN_DESTROY_DEFAULT
        };
        let domain = self
            .on_domain(dl, r.domain.as_ref(), Lane::Quick, move |_, d, h| {
                let persistent = d.is_persistent()?;
                d.destroy_flags(flags)?;
                if persistent {
                    ops::describe(h, d).map(Some)
                } else {
                    Ok(None)
                }
            })
            .await?;
        ok(v1::DestroyDomainResponse { domain })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn suspend_domain(
        &self,
        req: Request<v1::SuspendDomainRequest>,
    ) -> Result<Response<v1::SuspendDomainResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let domain = self
            .on_domain(dl, r.domain.as_ref(), Lane::Quick, |_, d, h| {
                d.suspend()?;
                ops::describe(h, d)
            })
            .await?;
        ok(v1::SuspendDomainResponse {
            domain: Some(domain),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn resume_domain(
        &self,
        req: Request<v1::ResumeDomainRequest>,
    ) -> Result<Response<v1::ResumeDomainResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let domain = self
            .on_domain(dl, r.domain.as_ref(), Lane::Quick, |_, d, h| {
                ops::resume(d)?;
                ops::describe(h, d)
            })
            .await?;
        ok(v1::ResumeDomainResponse {
            domain: Some(domain),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn save_domain(
        &self,
        req: Request<v1::SaveDomainRequest>,
    ) -> Result<Response<v1::SaveDomainResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        validate::absolute_path("path", &r.path)?;
        let flags = save_flags(r.restore_paused, r.restore_running, r.bypass_cache)?;
        let path = r.path;
        self.on_domain(dl, r.domain.as_ref(), Lane::Slow, move |_, d, _| {
            libvirt_sys::domain_save(d, &path, flags)
        })
        .await?;
        ok(v1::SaveDomainResponse {})
    }

    #[tracing::instrument(skip_all, fields(host = %req.get_ref().host))]
    async fn restore_domain(
        &self,
        req: Request<v1::RestoreDomainRequest>,
    ) -> Result<Response<v1::RestoreDomainResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        validate::absolute_path("path", &r.path)?;
        let flags = save_flags(r.paused, r.running, r.bypass_cache)?;
        let pool = self.hosts.get(&r.host)?;
        let path = r.path;
        pool.run(Lane::Slow, dl, move |c| {
            Ok(c.restore_domain_flags(&path, None, flags)?)
        })
        .await?;
        ok(v1::RestoreDomainResponse {})
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn managed_save_domain(
        &self,
        req: Request<v1::ManagedSaveDomainRequest>,
    ) -> Result<Response<v1::ManagedSaveDomainResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let flags = save_flags(r.restore_paused, r.restore_running, false)?;
        let domain = self
            .on_domain(dl, r.domain.as_ref(), Lane::Slow, move |_, d, h| {
                d.managed_save(flags)?;
                ops::describe(h, d)
            })
            .await?;
        ok(v1::ManagedSaveDomainResponse {
            domain: Some(domain),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn remove_managed_save(
        &self,
        req: Request<v1::RemoveManagedSaveRequest>,
    ) -> Result<Response<v1::RemoveManagedSaveResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        self.on_domain(dl, r.domain.as_ref(), Lane::Quick, |_, d, _| {
            Ok(d.managed_save_remove(0)?)
        })
        .await?;
        ok(v1::RemoveManagedSaveResponse {})
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn set_autostart(
        &self,
        req: Request<v1::SetAutostartRequest>,
    ) -> Result<Response<v1::SetAutostartResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let on = r.autostart;
        self.on_domain(dl, r.domain.as_ref(), Lane::Quick, move |_, d, _| {
            Ok(d.set_autostart(on)?)
        })
        .await?;
        ok(v1::SetAutostartResponse {})
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn set_vcpus(
        &self,
        req: Request<v1::SetVcpusRequest>,
    ) -> Result<Response<v1::SetVcpusResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        if r.count == 0 {
            return Err(Error::invalid("count", "must be at least 1").into());
        }
        let mut flags = affect_flags(r.scope.as_ref());
        if r.maximum {
            flags |= sys::VIR_DOMAIN_VCPU_MAXIMUM;
        }
        let count = r.count;
        self.on_domain(dl, r.domain.as_ref(), Lane::Quick, move |_, d, _| {
            Ok(d.set_vcpus_flags(count, flags)?)
        })
        .await?;
        ok(v1::SetVcpusResponse {})
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn set_memory(
        &self,
        req: Request<v1::SetMemoryRequest>,
    ) -> Result<Response<v1::SetMemoryResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        if r.memory_kib == 0 {
            return Err(Error::invalid("memory_kib", "must be greater than zero").into());
        }
        validate::memory_kib("memory_kib", r.memory_kib)?;
        let mut flags = affect_flags(r.scope.as_ref());
        if r.maximum {
            flags |= sys::VIR_DOMAIN_MEM_MAXIMUM;
        }
        let kib = r.memory_kib;
        self.on_domain(dl, r.domain.as_ref(), Lane::Quick, move |_, d, _| {
            d.set_memory_flags(kib, flags)?;
            Ok(())
        })
        .await?;
        ok(v1::SetMemoryResponse {})
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn attach_device(
        &self,
        req: Request<v1::AttachDeviceRequest>,
    ) -> Result<Response<v1::AttachDeviceResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        validate::required_xml("xml", &r.xml)?;
        let flags = affect_flags(r.scope.as_ref());
        let xml = r.xml;
        self.on_domain(dl, r.domain.as_ref(), Lane::Quick, move |_, d, _| {
            d.attach_device_flags(&xml, flags)?;
            Ok(())
        })
        .await?;
        ok(v1::AttachDeviceResponse {})
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn detach_device(
        &self,
        req: Request<v1::DetachDeviceRequest>,
    ) -> Result<Response<v1::DetachDeviceResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        validate::required_xml("xml", &r.xml)?;
        let flags = affect_flags(r.scope.as_ref());
        let xml = r.xml;
        self.on_domain(dl, r.domain.as_ref(), Lane::Quick, move |_, d, _| {
            d.detach_device_flags(&xml, flags)?;
            Ok(())
        })
        .await?;
        ok(v1::DetachDeviceResponse {})
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn update_device(
        &self,
        req: Request<v1::UpdateDeviceRequest>,
    ) -> Result<Response<v1::UpdateDeviceResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        validate::required_xml("xml", &r.xml)?;
        let mut flags = affect_flags(r.scope.as_ref());
        if r.force {
            flags |= sys::VIR_DOMAIN_DEVICE_MODIFY_FORCE;
        }
        let xml = r.xml;
        self.on_domain(dl, r.domain.as_ref(), Lane::Quick, move |_, d, _| {
            ops::update_device(d, &xml, flags)
        })
        .await?;
        ok(v1::UpdateDeviceResponse {})
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_metadata(
        &self,
        req: Request<v1::GetMetadataRequest>,
    ) -> Result<Response<v1::GetMetadataResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let kind = metadata_kind(r.kind)?;
        validate::text("uri", &r.uri)?;
        if kind == sys::VIR_DOMAIN_METADATA_ELEMENT as i32 && r.uri.is_empty() {
            return Err(Error::invalid("uri", "is required for ELEMENT metadata").into());
        }
        let flags = if r.config {
            sys::VIR_DOMAIN_AFFECT_CONFIG
        } else {
            sys::VIR_DOMAIN_AFFECT_CURRENT
        };
        let uri = (!r.uri.is_empty()).then_some(r.uri);
        let value = self
            .on_domain(dl, r.domain.as_ref(), Lane::Quick, move |_, d, _| {
                Ok(d.metadata(kind, uri.as_deref(), flags)?)
            })
            .await?;
        ok(v1::GetMetadataResponse { value })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn set_metadata(
        &self,
        req: Request<v1::SetMetadataRequest>,
    ) -> Result<Response<v1::SetMetadataResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let kind = metadata_kind(r.kind)?;
        for (f, v) in [("key", &r.key), ("uri", &r.uri)] {
            validate::text(f, v)?;
        }
        let element = kind == sys::VIR_DOMAIN_METADATA_ELEMENT as i32;
        if element && !r.key.is_empty() {
            validate::xml_prefix("key", &r.key)?;
        }
        // An ELEMENT value is XML that libvirt parses; a title or description
        // is text, held to the same size cap.
        if element {
            validate::xml("value", &r.value)?;
        } else {
            validate::text("value", &r.value)?;
            validate::max_bytes("value", &r.value, validate::MAX_XML_BYTES)?;
        }
        if element && (r.key.is_empty() || r.uri.is_empty()) {
            return Err(
                Error::invalid("key", "key and uri are required for ELEMENT metadata").into(),
            );
        }
        let flags = affect_flags(r.scope.as_ref());
        let value = (!r.value.is_empty()).then_some(r.value);
        let key = element.then_some(r.key);
        let uri = element.then_some(r.uri);
        self.on_domain(dl, r.domain.as_ref(), Lane::Quick, move |_, d, _| {
            d.set_metadata(
                kind,
                value.as_deref(),
                key.as_deref(),
                uri.as_deref(),
                flags,
            )?;
            Ok(())
        })
        .await?;
        ok(v1::SetMetadataResponse {})
    }

    #[tracing::instrument(skip_all, fields(host = %req.get_ref().host))]
    async fn get_domain_stats(
        &self,
        req: Request<v1::GetDomainStatsRequest>,
    ) -> Result<Response<v1::GetDomainStatsResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let groups = flags_of(&[
            (r.cpu, sys::VIR_DOMAIN_STATS_CPU_TOTAL),
            (r.balloon, sys::VIR_DOMAIN_STATS_BALLOON),
            (r.vcpu, sys::VIR_DOMAIN_STATS_VCPU),
            (r.interface, sys::VIR_DOMAIN_STATS_INTERFACE),
            (r.block, sys::VIR_DOMAIN_STATS_BLOCK),
        ]);
        if r.domains.len() > paging::MAX_PAGE_SIZE {
            return Err(Error::invalid(
                "domains",
                format!(
                    "names {} domains; the limit is {}",
                    r.domains.len(),
                    paging::MAX_PAGE_SIZE
                ),
            )
            .into());
        }
        let mut keys = Vec::new();
        let mut host = r.host.clone();
        for (i, d) in r.domains.iter().enumerate() {
            let (pool, key) = domain_target(&self.hosts, Some(d))?;
            if i == 0 && host.is_empty() {
                host = pool.name().to_owned();
            }
            if pool.name() != self.hosts.get(&host)?.name() {
                return Err(Error::invalid("domains", "all domains must be on one host").into());
            }
            keys.push(key);
        }
        let pool = self.hosts.get(&host)?;
        let stats = pool
            .run(Lane::Quick, dl, move |c| {
                let doms = keys
                    .iter()
                    .map(|k| ops::lookup(c, k))
                    .collect::<Result<Vec<_>, _>>()?;
                ops::stats(c, &doms, groups)
            })
            .await?;
        ok(v1::GetDomainStatsResponse { stats })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn screenshot_domain(
        &self,
        req: Request<v1::ScreenshotDomainRequest>,
    ) -> Result<Response<v1::ScreenshotDomainResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let screen = r.screen;
        let (png, mime) = self
            .on_domain(dl, r.domain.as_ref(), Lane::Slow, move |c, d, _| {
                let (data, mime) = ops::screenshot(c, d, screen)?;
                // Still on the blocking thread: encoding never blocks the runtime.
                Ok((screenshot::to_png(data, &mime)?, mime))
            })
            .await?;
        ok(v1::ScreenshotDomainResponse {
            png,
            source_mime_type: mime,
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn send_key(
        &self,
        req: Request<v1::SendKeyRequest>,
    ) -> Result<Response<v1::SendKeyResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let codeset = keycode_set(r.codeset)?;
        if r.keycodes.is_empty() || r.keycodes.len() > 16 {
            return Err(Error::invalid("keycodes", "give 1 to 16 key codes").into());
        }
        if r.hold_time_ms > MAX_KEY_HOLD_MS {
            return Err(Error::invalid(
                "hold_time_ms",
                format!("is more than {MAX_KEY_HOLD_MS} ms"),
            )
            .into());
        }
        let hold = r.hold_time_ms;
        let mut codes = r.keycodes;
        self.on_domain(dl, r.domain.as_ref(), Lane::Quick, move |_, d, _| {
            ops::send_key(d, codeset, hold, &mut codes)
        })
        .await?;
        ok(v1::SendKeyResponse {})
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn pin_vcpu(
        &self,
        req: Request<v1::PinVcpuRequest>,
    ) -> Result<Response<v1::PinVcpuResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        if r.cpus.is_empty() {
            return Err(Error::invalid("cpus", "name at least one host CPU").into());
        }
        let flags = affect_flags(r.scope.as_ref());
        let (vcpu, cpus) = (r.vcpu, r.cpus);
        self.on_domain(dl, r.domain.as_ref(), Lane::Quick, move |c, d, _| {
            let host_cpus = c.node_info()?.cpus;
            if let Some(bad) = cpus.iter().find(|cpu| **cpu >= host_cpus) {
                return Err(Error::invalid(
                    "cpus",
                    format!("host CPU {bad} does not exist (the host has {host_cpus})"),
                ));
            }
            let mut map = vec![0u8; host_cpus.div_ceil(8) as usize];
            for cpu in &cpus {
                map[(cpu / 8) as usize] |= 1 << (cpu % 8);
            }
            d.pin_vcpu_flags(vcpu, &map, flags)?;
            Ok(())
        })
        .await?;
        ok(v1::PinVcpuResponse {})
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_vcpu_pinning(
        &self,
        req: Request<v1::GetVcpuPinningRequest>,
    ) -> Result<Response<v1::GetVcpuPinningResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let flags = if r.config {
            sys::VIR_DOMAIN_AFFECT_CONFIG
        } else {
            sys::VIR_DOMAIN_AFFECT_CURRENT
        };
        let maps = self
            .on_domain(dl, r.domain.as_ref(), Lane::Quick, move |c, d, _| {
                let host_cpus = c.node_info()?.cpus;
                let vcpus = d.info()?.nr_virt_cpu;
                libvirt_sys::vcpu_pin_info(d, vcpus, host_cpus, flags)
            })
            .await?;
        ok(v1::GetVcpuPinningResponse {
            vcpus: maps
                .into_iter()
                .enumerate()
                .map(|(i, cpus)| v1::VcpuPinning {
                    vcpu: i as u32,
                    cpus,
                })
                .collect(),
        })
    }
}
