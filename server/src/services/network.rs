//! `NetworkService`: validate, run the operation through the host's pool,
//! convert.

use std::sync::Arc;

use libvirt_grpc::v1::{
    self, network_ref::Key, network_service_server::NetworkService, NetworkRef,
};
use tonic::{Request, Response, Status};
use virt::{connect::Connect, network::Network, sys};

use super::{deadline, either_flag, ok, paging};
use crate::{
    error::Error,
    ops::network::{self as ops, NetworkKey, NetworkSteps},
    pool::{HostPool, Hosts, Lane},
    render::network as render,
    validate,
};

/// The `NetworkService` implementation.
#[derive(Debug, Clone)]
pub struct NetworkApi {
    hosts: Hosts,
}

impl NetworkApi {
    /// A service over `hosts`.
    pub fn new(hosts: Hosts) -> Self {
        NetworkApi { hosts }
    }

    fn target(&self, r: Option<&NetworkRef>) -> Result<(Arc<HostPool>, NetworkKey), Error> {
        let r = r.ok_or_else(|| Error::invalid("network", "is required"))?;
        let pool = Arc::clone(self.hosts.get(&r.host)?);
        let key = match &r.key {
            None => return Err(Error::invalid("network", "set one of name or uuid")),
            Some(Key::Name(n)) => {
                validate::required_text("network.name", n)?;
                NetworkKey::Name(n.clone())
            }
            Some(Key::Uuid(u)) => NetworkKey::Uuid(validate::uuid("network.uuid", u)?),
        };
        let span = tracing::Span::current();
        span.record("host", pool.name());
        span.record("target", tracing::field::debug(&key));
        Ok((pool, key))
    }

    async fn on_network<T, F>(
        &self,
        deadline: Option<tokio::time::Instant>,
        r: Option<&NetworkRef>,
        f: F,
    ) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Connect, &Network, &str) -> Result<T, Error> + Send + 'static,
    {
        let (pool, key) = self.target(r)?;
        let host = pool.name().to_owned();
        pool.run(Lane::Quick, deadline, move |c| {
            let n = ops::lookup(c, &key)?;
            f(c, &n, &host)
        })
        .await
    }
}

fn source_xml(xml: Option<&String>, spec: Option<&v1::NetworkSpec>) -> Result<String, Error> {
    match (xml, spec) {
        (Some(x), None) => {
            validate::required_xml("xml", x)?;
            Ok(x.clone())
        }
        (None, Some(s)) => render::render(s),
        _ => Err(Error::invalid("source", "set one of xml or spec")),
    }
}

/// Reads a network after a stop: a transient one is gone.
fn after_stop(c: &Connect, uuid: String, host: &str) -> Result<v1::Network, Error> {
    match c.lookup_network_by_uuid_string(&uuid) {
        Ok(n) => ops::info(&n, host),
        Err(_) => Ok(v1::Network {
            host: host.to_owned(),
            uuid,
            ..Default::default()
        }),
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
        let pool = self.hosts.get(&r.host)?;
        let flags = either_flag(
            r.active,
            r.inactive,
            sys::VIR_CONNECT_LIST_NETWORKS_ACTIVE,
            sys::VIR_CONNECT_LIST_NETWORKS_INACTIVE,
        ) | either_flag(
            r.persistent,
            r.transient,
            sys::VIR_CONNECT_LIST_NETWORKS_PERSISTENT,
            sys::VIR_CONNECT_LIST_NETWORKS_TRANSIENT,
        ) | either_flag(
            r.autostart,
            r.no_autostart,
            sys::VIR_CONNECT_LIST_NETWORKS_AUTOSTART,
            sys::VIR_CONNECT_LIST_NETWORKS_NO_AUTOSTART,
        );
        let host = pool.name().to_owned();
        let all = pool
            .run(Lane::Quick, dl, move |c| {
                c.list_all_networks(flags)?
                    .iter()
                    .map(|n| crate::ops::unless_vanished(ops::info(n, &host)))
                    .filter_map(Result::transpose)
                    .collect::<Result<Vec<_>, Error>>()
            })
            .await?;
        let (networks, next_page_token) =
            paging::page_by_name(all, |n| n.name.as_str(), r.page_size, &r.page_token)?;
        ok(v1::ListNetworksResponse {
            networks,
            next_page_token,
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_network(
        &self,
        req: Request<v1::GetNetworkRequest>,
    ) -> Result<Response<v1::GetNetworkResponse>, Status> {
        let dl = deadline(&req);
        let n = self
            .on_network(dl, req.get_ref().network.as_ref(), |_, n, h| {
                ops::info(n, h)
            })
            .await?;
        ok(v1::GetNetworkResponse { network: Some(n) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_network_xml(
        &self,
        req: Request<v1::GetNetworkXmlRequest>,
    ) -> Result<Response<v1::GetNetworkXmlResponse>, Status> {
        let dl = deadline(&req);
        let flags = if req.get_ref().inactive {
            sys::VIR_NETWORK_XML_INACTIVE
        } else {
            0
        };
        let xml = self
            .on_network(dl, req.get_ref().network.as_ref(), move |_, n, _| {
                Ok(n.xml_desc(flags)?)
            })
            .await?;
        ok(v1::GetNetworkXmlResponse { xml })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn define_network(
        &self,
        req: Request<v1::DefineNetworkRequest>,
    ) -> Result<Response<v1::DefineNetworkResponse>, Status> {
        use v1::define_network_request::Source;
        let dl = deadline(&req);
        let r = req.into_inner();
        let xml = match &r.source {
            Some(Source::Xml(x)) => source_xml(Some(x), None)?,
            Some(Source::Spec(s)) => source_xml(None, Some(s))?,
            None => return Err(Error::invalid("source", "set one of xml or spec").into()),
        };
        let pool = self.hosts.get(&r.host)?;
        let host = pool.name().to_owned();
        let steps = NetworkSteps {
            start: r.start,
            autostart: r.autostart,
        };
        let n = pool
            .run(Lane::Slow, dl, move |c| ops::define(c, &host, &xml, steps))
            .await?;
        ok(v1::DefineNetworkResponse { network: Some(n) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn create_network(
        &self,
        req: Request<v1::CreateNetworkRequest>,
    ) -> Result<Response<v1::CreateNetworkResponse>, Status> {
        use v1::create_network_request::Source;
        let dl = deadline(&req);
        let r = req.into_inner();
        let xml = match &r.source {
            Some(Source::Xml(x)) => source_xml(Some(x), None)?,
            Some(Source::Spec(s)) => source_xml(None, Some(s))?,
            None => return Err(Error::invalid("source", "set one of xml or spec").into()),
        };
        let pool = self.hosts.get(&r.host)?;
        let host = pool.name().to_owned();
        let n = pool
            .run(Lane::Slow, dl, move |c| {
                let n = c.create_network_xml(&xml)?;
                ops::info(&n, &host)
            })
            .await?;
        ok(v1::CreateNetworkResponse { network: Some(n) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn start_network(
        &self,
        req: Request<v1::StartNetworkRequest>,
    ) -> Result<Response<v1::StartNetworkResponse>, Status> {
        let dl = deadline(&req);
        let n = self
            .on_network(dl, req.get_ref().network.as_ref(), |_, n, h| {
                n.create()?;
                ops::info(n, h)
            })
            .await?;
        ok(v1::StartNetworkResponse { network: Some(n) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn stop_network(
        &self,
        req: Request<v1::StopNetworkRequest>,
    ) -> Result<Response<v1::StopNetworkResponse>, Status> {
        let dl = deadline(&req);
        let n = self
            .on_network(dl, req.get_ref().network.as_ref(), |c, n, h| {
                let uuid = n.uuid_string()?;
                let name = n.name()?;
                n.destroy()?;
                let mut out = after_stop(c, uuid, h)?;
                out.name = name;
                Ok(out)
            })
            .await?;
        ok(v1::StopNetworkResponse { network: Some(n) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn undefine_network(
        &self,
        req: Request<v1::UndefineNetworkRequest>,
    ) -> Result<Response<v1::UndefineNetworkResponse>, Status> {
        let dl = deadline(&req);
        self.on_network(dl, req.get_ref().network.as_ref(), |_, n, _| {
            Ok(n.undefine()?)
        })
        .await?;
        ok(v1::UndefineNetworkResponse {})
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn set_network_autostart(
        &self,
        req: Request<v1::SetNetworkAutostartRequest>,
    ) -> Result<Response<v1::SetNetworkAutostartResponse>, Status> {
        let dl = deadline(&req);
        let on = req.get_ref().autostart;
        let n = self
            .on_network(dl, req.get_ref().network.as_ref(), move |_, n, h| {
                n.set_autostart(on)?;
                ops::info(n, h)
            })
            .await?;
        ok(v1::SetNetworkAutostartResponse { network: Some(n) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn update_network(
        &self,
        req: Request<v1::UpdateNetworkRequest>,
    ) -> Result<Response<v1::UpdateNetworkResponse>, Status> {
        use v1::{update_network_request::Item, NetworkSection as S, NetworkUpdateCommand as C};
        let dl = deadline(&req);
        let r = req.get_ref();
        let cmd = match C::try_from(r.command) {
            Ok(C::Modify) => sys::VIR_NETWORK_UPDATE_COMMAND_MODIFY,
            Ok(C::Delete) => sys::VIR_NETWORK_UPDATE_COMMAND_DELETE,
            Ok(C::AddLast) => sys::VIR_NETWORK_UPDATE_COMMAND_ADD_LAST,
            Ok(C::AddFirst) => sys::VIR_NETWORK_UPDATE_COMMAND_ADD_FIRST,
            _ => {
                return Err(Error::invalid(
                    "command",
                    "choose MODIFY, DELETE, ADD_LAST or ADD_FIRST",
                )
                .into())
            }
        };
        let (xml, implied) = match &r.item {
            Some(Item::Xml(x)) => {
                validate::required_xml("xml", x)?;
                (x.clone(), None)
            }
            Some(Item::DhcpHost(h)) => (render::render_dhcp_host(h)?, Some(S::IpDhcpHost)),
            None => return Err(Error::invalid("item", "set one of xml or dhcp_host").into()),
        };
        let section = match (S::try_from(r.section), implied) {
            (Ok(S::Unspecified), Some(s)) => s,
            (Ok(s), Some(i)) if s != i => {
                return Err(
                    Error::invalid("section", "dhcp_host items belong to IP_DHCP_HOST").into(),
                )
            }
            (Ok(S::Unspecified), None) | (Err(_), _) => {
                return Err(Error::invalid("section", "is required").into())
            }
            (Ok(s), _) => s,
        };
        let section = section as u32;
        if r.parent_index < -1 {
            return Err(Error::invalid("parent_index", "must be -1 or an index").into());
        }
        let index = r.parent_index;
        let mut flags = sys::VIR_NETWORK_UPDATE_AFFECT_CURRENT;
        if let Some(s) = &r.scope {
            if s.live {
                flags |= sys::VIR_NETWORK_UPDATE_AFFECT_LIVE;
            }
            if s.config {
                flags |= sys::VIR_NETWORK_UPDATE_AFFECT_CONFIG;
            }
        }
        let n = self
            .on_network(dl, r.network.as_ref(), move |_, n, h| {
                n.update(cmd, section, index, &xml, flags)?;
                ops::info(n, h)
            })
            .await?;
        ok(v1::UpdateNetworkResponse { network: Some(n) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_dhcp_leases(
        &self,
        req: Request<v1::GetDhcpLeasesRequest>,
    ) -> Result<Response<v1::GetDhcpLeasesResponse>, Status> {
        let dl = deadline(&req);
        let mac = req.get_ref().mac.clone();
        validate::text("mac", &mac)?;
        let leases = self
            .on_network(dl, req.get_ref().network.as_ref(), move |_, n, _| {
                ops::leases(n, (!mac.is_empty()).then_some(mac.as_str()))
            })
            .await?;
        ok(v1::GetDhcpLeasesResponse { leases })
    }
}
