//! `HostService`: the configured hosts and what each one is.

use libvirt_grpc::v1::{self, host_service_server::HostService};
use tonic::{Request, Response, Status};

use super::deadline;
use crate::{
    error::Error,
    ops::host as ops,
    pool::{Health, Hosts, Lane},
    validate,
};

/// The `HostService` implementation.
#[derive(Debug, Clone)]
pub struct HostApi {
    hosts: Hosts,
}

impl HostApi {
    /// A service over `hosts`.
    pub fn new(hosts: Hosts) -> Self {
        HostApi { hosts }
    }
}

fn opt(field: &str, s: String) -> Result<Option<String>, Error> {
    validate::text(field, &s)?;
    Ok((!s.is_empty()).then_some(s))
}

#[tonic::async_trait]
impl HostService for HostApi {
    async fn list_hosts(
        &self,
        _req: Request<v1::ListHostsRequest>,
    ) -> Result<Response<v1::ListHostsResponse>, Status> {
        let hosts = self
            .hosts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let h = p.health();
                v1::Host {
                    name: p.name().to_owned(),
                    uri: p.uri().to_owned(),
                    is_default: i == 0,
                    health: match h.health {
                        Health::Unknown => v1::HostHealth::Unspecified,
                        Health::Serving => v1::HostHealth::Serving,
                        Health::NotServing => v1::HostHealth::NotServing,
                    } as i32,
                    last_error: h.last_error,
                }
            })
            .collect();
        Ok(Response::new(v1::ListHostsResponse { hosts }))
    }

    #[tracing::instrument(skip_all, fields(host = %req.get_ref().host))]
    async fn get_host_info(
        &self,
        req: Request<v1::GetHostInfoRequest>,
    ) -> Result<Response<v1::GetHostInfoResponse>, Status> {
        let dl = deadline(&req);
        let pool = self.hosts.get(&req.get_ref().host)?;
        let name = pool.name().to_owned();
        let info = pool
            .run(Lane::Quick, dl, move |c| ops::info(c, &name))
            .await?;
        Ok(Response::new(info))
    }

    #[tracing::instrument(skip_all, fields(host = %req.get_ref().host))]
    async fn get_capabilities(
        &self,
        req: Request<v1::GetCapabilitiesRequest>,
    ) -> Result<Response<v1::GetCapabilitiesResponse>, Status> {
        let dl = deadline(&req);
        let pool = self.hosts.get(&req.get_ref().host)?;
        let xml = pool.run(Lane::Quick, dl, |c| Ok(c.capabilities()?)).await?;
        Ok(Response::new(v1::GetCapabilitiesResponse { xml }))
    }

    #[tracing::instrument(skip_all, fields(host = %req.get_ref().host))]
    async fn get_domain_capabilities(
        &self,
        req: Request<v1::GetDomainCapabilitiesRequest>,
    ) -> Result<Response<v1::GetDomainCapabilitiesResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let pool = self.hosts.get(&r.host)?;
        if !r.emulator.is_empty() {
            validate::absolute_path("emulator", &r.emulator)?;
        }
        let emulator = opt("emulator", r.emulator)?;
        let arch = opt("arch", r.arch)?;
        let machine = opt("machine", r.machine)?;
        let virt_type = opt("virt_type", r.virt_type)?;
        let xml = pool
            .run(Lane::Quick, dl, move |c| {
                Ok(c.domain_capabilities(
                    emulator.as_deref(),
                    arch.as_deref(),
                    machine.as_deref(),
                    virt_type.as_deref(),
                    0,
                )?)
            })
            .await?;
        Ok(Response::new(v1::GetDomainCapabilitiesResponse { xml }))
    }
}
