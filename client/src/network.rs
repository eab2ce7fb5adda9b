//! Handle-style access to one virtual network:
//! `client.network("default").dhcp_leases().await?`.

use libvirt_grpc::v1;

use crate::{required, Client, ClientError};

/// One network of the client's default host, by name ([`Client::network`]).
/// Every method is one call; changes answer the network as read after them.
///
/// ```no_run
/// # async fn demo(client: libvirt_grpc_client::Client) -> Result<(), libvirt_grpc_client::ClientError> {
/// let net = client.network("default");
/// if !net.info().await?.active {
///     net.start().await?;
/// }
/// for lease in net.dhcp_leases().await? {
///     println!("{} {} {}", lease.mac, lease.ip_address, lease.hostname);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct NetworkHandle {
    client: Client,
    name: String,
}

fn network(n: Option<v1::Network>) -> Result<v1::Network, ClientError> {
    required(n, "network")
}

impl NetworkHandle {
    pub(crate) fn new(client: Client, name: String) -> Self {
        NetworkHandle { client, name }
    }

    /// The network's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The reference every call of this handle sends.
    pub fn network_ref(&self) -> v1::NetworkRef {
        v1::NetworkRef {
            host: self.client.default_host.clone(),
            key: Some(v1::network_ref::Key::Name(self.name.clone())),
        }
    }

    fn nref(&self) -> Option<v1::NetworkRef> {
        Some(self.network_ref())
    }

    /// Its state, bridge and forward mode (`GetNetwork`).
    pub async fn info(&self) -> Result<v1::Network, ClientError> {
        self.client
            .read(|| async {
                let r = self.client.request(v1::GetNetworkRequest {
                    network: self.nref(),
                });
                network(
                    self.client
                        .networks()
                        .get_network(r)
                        .await?
                        .into_inner()
                        .network,
                )
            })
            .await
    }

    /// Its XML: the live one, or with `inactive` the persistent definition.
    pub async fn xml(&self, inactive: bool) -> Result<String, ClientError> {
        self.client
            .read(|| async {
                let r = self.client.request(v1::GetNetworkXmlRequest {
                    network: self.nref(),
                    inactive,
                });
                Ok(self
                    .client
                    .networks()
                    .get_network_xml(r)
                    .await?
                    .into_inner()
                    .xml)
            })
            .await
    }

    /// Starts a defined, inactive network.
    pub async fn start(&self) -> Result<v1::Network, ClientError> {
        let r = self.client.request(v1::StartNetworkRequest {
            network: self.nref(),
        });
        network(
            self.client
                .networks()
                .start_network(r)
                .await?
                .into_inner()
                .network,
        )
    }

    /// Stops it (libvirt's destroy); a transient network is gone after.
    pub async fn stop(&self) -> Result<v1::Network, ClientError> {
        let r = self.client.request(v1::StopNetworkRequest {
            network: self.nref(),
        });
        network(
            self.client
                .networks()
                .stop_network(r)
                .await?
                .into_inner()
                .network,
        )
    }

    /// Removes its persistent definition.
    pub async fn undefine(&self) -> Result<(), ClientError> {
        let r = self.client.request(v1::UndefineNetworkRequest {
            network: self.nref(),
        });
        self.client.networks().undefine_network(r).await?;
        Ok(())
    }

    /// Starts it with the host's daemon, or not.
    pub async fn set_autostart(&self, autostart: bool) -> Result<v1::Network, ClientError> {
        let r = self.client.request(v1::SetNetworkAutostartRequest {
            network: self.nref(),
            autostart,
        });
        network(
            self.client
                .networks()
                .set_network_autostart(r)
                .await?
                .into_inner()
                .network,
        )
    }

    /// Applies one live/config update (`UpdateNetwork`, e.g. adding a
    /// DHCP host); the request's `network` is set to this one.
    pub async fn update(
        &self,
        mut request: v1::UpdateNetworkRequest,
    ) -> Result<v1::Network, ClientError> {
        request.network = self.nref();
        let r = self.client.request(request);
        network(
            self.client
                .networks()
                .update_network(r)
                .await?
                .into_inner()
                .network,
        )
    }

    /// Its DHCP leases with their expiry times (drivers without leases,
    /// like the test driver, answer `Unimplemented`).
    pub async fn dhcp_leases(&self) -> Result<Vec<v1::DhcpLease>, ClientError> {
        self.client
            .read(|| async {
                let r = self.client.request(v1::GetNetworkDhcpLeasesRequest {
                    network: self.nref(),
                    mac: String::new(),
                });
                Ok(self
                    .client
                    .networks()
                    .get_network_dhcp_leases(r)
                    .await?
                    .into_inner()
                    .leases)
            })
            .await
    }
}
