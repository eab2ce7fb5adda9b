//! `NetworkService`: each handler checks its request (`convert::network`),
//! resolves the `NetworkRef` (`resolve::Target`), runs one
//! `ops::network` function through the host's pool and converts the answer.

use libvirt_grpc::v1::{self, network_service_server::NetworkService};
use tonic::{Request, Response, Status};

use super::{deadline, ok, paging, resolve::Target};
use crate::{
    convert::network as convert,
    error::Error,
    ops::network::{self as ops, NetworkKey, NetworkUpdate},
    pool::{Hosts, Lane},
    validate::Violations,
};

/// The `NetworkService` implementation.
#[derive(Debug, Clone)]
pub struct NetworkApi {
    hosts: Hosts,
    confinement: std::sync::Arc<crate::confine::Confinement>,
}

impl NetworkApi {
    /// A service over `hosts`.
    pub fn new(hosts: Hosts) -> Self {
        NetworkApi {
            hosts,
            confinement: std::sync::Arc::default(),
        }
    }

    /// Checks network XML, below admin, against these roots and the
    /// passthrough namespaces (dnsmasq options).
    pub fn with_confinement(mut self, c: std::sync::Arc<crate::confine::Confinement>) -> Self {
        self.confinement = c;
        self
    }

    /// Checks network XML for the caller's `role` on `pool`.
    fn check_xml(
        &self,
        xml: &str,
        role: crate::auth::Role,
        pool: &crate::pool::HostPool,
    ) -> Result<(), Error> {
        let reach = crate::confine::Reach::of_uri(pool.uri());
        self.confinement.check_xml("xml", xml, role, reach)
    }

    fn target(&self, r: Option<&v1::NetworkRef>) -> Result<Target<NetworkKey>, Error> {
        Target::resolve(&self.hosts, r, "network")
    }
}

#[tonic::async_trait]
impl NetworkService for NetworkApi {
    #[tracing::instrument(skip_all, fields(host, target))]
    async fn list_networks(
        &self,
        req: Request<v1::ListNetworksRequest>,
    ) -> Result<Response<v1::ListNetworksResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let mut v = Violations::default();
        let flags = v.check(convert::list_flags(&r));
        let pool = v.check(self.hosts.get(&r.host).cloned());
        let (flags, pool) = v.done(flags.zip(pool))?;
        let host = pool.name().to_owned();
        let all = pool
            .run(Lane::Quick, dl, move |c| ops::list(c, &host, flags))
            .await?;
        let (networks, next_page_token) =
            paging::page_by_name(all, |n| n.name.as_str(), r.page_size, &r.page_token)?;
        ok(v1::ListNetworksResponse {
            networks: networks.into_iter().map(Into::into).collect(),
            next_page_token,
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_network(
        &self,
        req: Request<v1::GetNetworkRequest>,
    ) -> Result<Response<v1::GetNetworkResponse>, Status> {
        let dl = deadline(&req);
        let t = self.target(req.get_ref().network.as_ref())?;
        let n = t.run(Lane::Quick, dl, ops::get).await?;
        ok(v1::GetNetworkResponse {
            network: Some(n.into()),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_network_xml(
        &self,
        req: Request<v1::GetNetworkXmlRequest>,
    ) -> Result<Response<v1::GetNetworkXmlResponse>, Status> {
        let dl = deadline(&req);
        let t = self.target(req.get_ref().network.as_ref())?;
        let flags = convert::xml_flags(req.get_ref().inactive);
        let xml = t
            .run(Lane::Quick, dl, move |c, k, _| ops::xml(c, k, flags))
            .await?;
        ok(v1::GetNetworkXmlResponse { xml })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn define_network(
        &self,
        req: Request<v1::DefineNetworkRequest>,
    ) -> Result<Response<v1::DefineNetworkResponse>, Status> {
        let role = crate::auth::Caller::of(&req).role;
        let dl = deadline(&req);
        let r = req.into_inner();
        let mut v = Violations::default();
        let def = v.check(convert::Define::try_from(&r));
        let pool = v.check(self.hosts.get(&r.host).cloned());
        let (def, pool) = v.done(def.zip(pool))?;
        self.check_xml(&def.xml, role, &pool)?;
        let host = pool.name().to_owned();
        let n = pool
            .run(Lane::Slow, dl, move |c| {
                ops::define(c, &host, &def.xml, def.steps)
            })
            .await?;
        crate::auth::audit::note_target(&n.host, &n.name);
        ok(v1::DefineNetworkResponse {
            network: Some(n.into()),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn create_network(
        &self,
        req: Request<v1::CreateNetworkRequest>,
    ) -> Result<Response<v1::CreateNetworkResponse>, Status> {
        let role = crate::auth::Caller::of(&req).role;
        let dl = deadline(&req);
        let r = req.into_inner();
        let mut v = Violations::default();
        let xml = v.check(convert::create_xml(&r));
        let pool = v.check(self.hosts.get(&r.host).cloned());
        let (xml, pool) = v.done(xml.zip(pool))?;
        self.check_xml(&xml, role, &pool)?;
        let host = pool.name().to_owned();
        let n = pool
            .run(Lane::Slow, dl, move |c| ops::create(c, &host, &xml))
            .await?;
        crate::auth::audit::note_target(&n.host, &n.name);
        ok(v1::CreateNetworkResponse {
            network: Some(n.into()),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn start_network(
        &self,
        req: Request<v1::StartNetworkRequest>,
    ) -> Result<Response<v1::StartNetworkResponse>, Status> {
        let dl = deadline(&req);
        let t = self.target(req.get_ref().network.as_ref())?;
        let n = t.run(Lane::Quick, dl, ops::start).await?;
        ok(v1::StartNetworkResponse {
            network: Some(n.into()),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn stop_network(
        &self,
        req: Request<v1::StopNetworkRequest>,
    ) -> Result<Response<v1::StopNetworkResponse>, Status> {
        let dl = deadline(&req);
        let t = self.target(req.get_ref().network.as_ref())?;
        let n = t.run(Lane::Quick, dl, ops::stop).await?;
        ok(v1::StopNetworkResponse {
            network: Some(n.into()),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn undefine_network(
        &self,
        req: Request<v1::UndefineNetworkRequest>,
    ) -> Result<Response<v1::UndefineNetworkResponse>, Status> {
        let dl = deadline(&req);
        let t = self.target(req.get_ref().network.as_ref())?;
        t.run(Lane::Quick, dl, |c, k, _| ops::undefine(c, k))
            .await?;
        ok(v1::UndefineNetworkResponse {})
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn set_network_autostart(
        &self,
        req: Request<v1::SetNetworkAutostartRequest>,
    ) -> Result<Response<v1::SetNetworkAutostartResponse>, Status> {
        let dl = deadline(&req);
        let t = self.target(req.get_ref().network.as_ref())?;
        let on = req.get_ref().autostart;
        let n = t
            .run(Lane::Quick, dl, move |c, k, h| {
                ops::set_autostart(c, k, h, on)
            })
            .await?;
        ok(v1::SetNetworkAutostartResponse {
            network: Some(n.into()),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn update_network(
        &self,
        req: Request<v1::UpdateNetworkRequest>,
    ) -> Result<Response<v1::UpdateNetworkResponse>, Status> {
        let dl = deadline(&req);
        let r = req.get_ref();
        let mut v = Violations::default();
        let t = v.check(self.target(r.network.as_ref()));
        let u = v.check(NetworkUpdate::try_from(r));
        let (t, u) = v.done(t.zip(u))?;
        let n = t
            .run(Lane::Quick, dl, move |c, k, h| ops::update(c, k, h, &u))
            .await?;
        ok(v1::UpdateNetworkResponse {
            network: Some(n.into()),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_network_dhcp_leases(
        &self,
        req: Request<v1::GetNetworkDhcpLeasesRequest>,
    ) -> Result<Response<v1::GetNetworkDhcpLeasesResponse>, Status> {
        let dl = deadline(&req);
        let r = req.get_ref();
        let mut v = Violations::default();
        let t = v.check(self.target(r.network.as_ref()));
        let mac = v.check(convert::lease_mac(&r.mac));
        let (t, mac) = v.done(t.zip(mac))?;
        let leases = t
            .run(Lane::Quick, dl, move |c, k, _| {
                ops::leases(c, k, mac.as_deref())
            })
            .await?;
        ok(v1::GetNetworkDhcpLeasesResponse {
            leases: leases.into_iter().map(Into::into).collect(),
        })
    }
}
