//! Handle-style access to one configured host: `client.host("kvm2")`.

use libvirt_grpc::v1;

use crate::{Client, ClientError, DomainHandle, NetworkHandle, PoolHandle};

/// One host the server is configured with, by name ([`Client::host`]); an
/// empty name is the server's default host. Its handles
/// ([`domain`](Self::domain), [`pool`](Self::pool),
/// [`network`](Self::network)) address objects of this host.
///
/// ```no_run
/// # async fn demo(client: libvirt_grpc_client::Client) -> Result<(), libvirt_grpc_client::ClientError> {
/// let kvm2 = client.host("kvm2");
/// let info = kvm2.info().await?;
/// println!("{} runs libvirt {}", info.hostname, info.libvirt_version);
/// kvm2.domain("web1").start().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct HostHandle {
    client: Client,
}

impl HostHandle {
    pub(crate) fn new(client: Client, name: String) -> Self {
        HostHandle {
            client: client.with_default_host(name),
        }
    }

    /// The host's name (empty: the server's default host).
    pub fn name(&self) -> &str {
        self.client.default_host()
    }

    /// A client whose default host is this one.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A handle on its domain `name`.
    pub fn domain(&self, name: impl Into<String>) -> DomainHandle {
        self.client.domain(name)
    }

    /// A handle on its storage pool `name`.
    pub fn pool(&self, name: impl Into<String>) -> PoolHandle {
        self.client.pool(name)
    }

    /// A handle on its network `name`.
    pub fn network(&self, name: impl Into<String>) -> NetworkHandle {
        self.client.network(name)
    }

    /// The host as the server's configuration and health see it
    /// (`ListHosts`, this host's entry); an unknown name is `NotFound`.
    pub async fn status(&self) -> Result<v1::Host, ClientError> {
        let hosts = self.client.list_hosts().await?;
        let name = self.name();
        hosts
            .into_iter()
            .find(|h| {
                if name.is_empty() {
                    h.is_default
                } else {
                    h.name == name
                }
            })
            .ok_or_else(|| {
                tonic::Status::not_found(format!("no host named {name:?} is configured")).into()
            })
    }

    /// Versions, node (CPUs, memory in bytes), free memory and max vCPUs
    /// (`GetHostInfo`).
    pub async fn info(&self) -> Result<v1::GetHostInfoResponse, ClientError> {
        self.client
            .read(|| async {
                let r = self.client.request(v1::GetHostInfoRequest {
                    host: self.name().to_owned(),
                });
                Ok(self.client.hosts().get_host_info(r).await?.into_inner())
            })
            .await
    }

    /// The host's capabilities XML (`GetHostCapabilities`).
    pub async fn capabilities(&self) -> Result<String, ClientError> {
        self.client
            .read(|| async {
                let r = self.client.request(v1::GetHostCapabilitiesRequest {
                    host: self.name().to_owned(),
                });
                Ok(self
                    .client
                    .hosts()
                    .get_host_capabilities(r)
                    .await?
                    .into_inner()
                    .xml)
            })
            .await
    }

    /// The domain capabilities XML for the host's defaults
    /// (`GetDomainCapabilities`, no emulator, arch, machine or virt type;
    /// use the [`Client::hosts`] stub to name them).
    pub async fn domain_capabilities(&self) -> Result<String, ClientError> {
        self.client
            .read(|| async {
                let r = self.client.request(v1::GetDomainCapabilitiesRequest {
                    host: self.name().to_owned(),
                    ..Default::default()
                });
                Ok(self
                    .client
                    .hosts()
                    .get_domain_capabilities(r)
                    .await?
                    .into_inner()
                    .xml)
            })
            .await
    }
}
