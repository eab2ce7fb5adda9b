//! `HostService`: the configured hosts and what each one is. Each handler
//! checks its request (`convert::host`), runs one `ops::host` function
//! through the host's pool and converts the answer.

use libvirt_grpc::v1::{self, host_service_server::HostService};
use tonic::{Request, Response, Status};

use super::{deadline, ok};
use crate::{
    convert::host as convert,
    ops::host::{self as ops, DomainCapsQuery},
    pool::{Hosts, Lane},
    validate::Violations,
};

/// The `HostService` implementation.
#[derive(Debug, Clone)]
pub struct HostApi {
    hosts: Hosts,
    confinement: std::sync::Arc<crate::confine::Confinement>,
}

impl HostApi {
    /// A service over `hosts`.
    pub fn new(hosts: Hosts) -> Self {
        HostApi {
            hosts,
            confinement: std::sync::Arc::default(),
        }
    }

    /// Confines, below admin, the emulator binary a capabilities query
    /// names (libvirt runs it to probe it) to these roots.
    pub fn with_confinement(mut self, c: std::sync::Arc<crate::confine::Confinement>) -> Self {
        self.confinement = c;
        self
    }
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
                    health: convert::health(h.health) as i32,
                    last_error: h.last_error,
                }
            })
            .collect();
        ok(v1::ListHostsResponse { hosts })
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
        ok(info.into())
    }

    #[tracing::instrument(skip_all, fields(host = %req.get_ref().host))]
    async fn get_host_capabilities(
        &self,
        req: Request<v1::GetHostCapabilitiesRequest>,
    ) -> Result<Response<v1::GetHostCapabilitiesResponse>, Status> {
        let dl = deadline(&req);
        let pool = self.hosts.get(&req.get_ref().host)?;
        let xml = pool.run(Lane::Quick, dl, ops::capabilities).await?;
        ok(v1::GetHostCapabilitiesResponse { xml })
    }

    #[tracing::instrument(skip_all, fields(host = %req.get_ref().host))]
    async fn get_domain_capabilities(
        &self,
        req: Request<v1::GetDomainCapabilitiesRequest>,
    ) -> Result<Response<v1::GetDomainCapabilitiesResponse>, Status> {
        let role = crate::auth::Caller::of(&req).role;
        let dl = deadline(&req);
        let r = req.get_ref();
        let mut v = Violations::default();
        let q = v.check(DomainCapsQuery::try_from(r));
        let pool = v.check(self.hosts.get(&r.host).cloned());
        let (q, pool) = v.done(q.zip(pool))?;
        self.confinement.content_path(
            role,
            "emulator",
            &r.emulator,
            crate::confine::Reach::of_uri(pool.uri()),
        )?;
        let xml = pool
            .run(Lane::Quick, dl, move |c| ops::domain_capabilities(c, &q))
            .await?;
        ok(v1::GetDomainCapabilitiesResponse { xml })
    }
}
