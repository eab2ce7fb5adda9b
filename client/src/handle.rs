//! Handle-style access to one domain, shaped like libvirt's own bindings:
//! `client.domain("web1").start().await?`.

use libvirt_grpc::v1;
use tonic::Status;

use crate::{Client, ClientError};

/// One domain of the client's default host, by name. Cheap to make; every
/// method is one call and answers the domain as the server read it after
/// the change (lifecycle verbs) or the value asked for.
///
/// ```no_run
/// # async fn demo(client: libvirt_grpc_client::Client) -> Result<(), libvirt_grpc_client::ClientError> {
/// let web = client.domain("web1");
/// let d = web.start().await?;
/// println!("{} is {:?}", d.name, d.state());
/// web.suspend().await?;
/// web.resume().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DomainHandle {
    client: Client,
    name: String,
}

/// The domain of a lifecycle answer, or an error when the server sent none.
fn domain(d: Option<v1::Domain>) -> Result<v1::Domain, ClientError> {
    d.ok_or_else(|| Status::internal("server sent no domain").into())
}

impl DomainHandle {
    pub(crate) fn new(client: Client, name: String) -> Self {
        DomainHandle { client, name }
    }

    /// The domain's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn domain_ref(&self) -> Option<v1::DomainRef> {
        Some(self.client.domain_ref(&self.name))
    }

    /// The domain now (with the client's read retries).
    pub async fn info(&self) -> Result<v1::Domain, ClientError> {
        self.client.get_domain(&self.name).await
    }

    /// Its libvirt XML (the live one for a running domain).
    pub async fn xml(&self) -> Result<String, ClientError> {
        let r = self.client.request(v1::GetDomainXmlRequest {
            domain: self.domain_ref(),
            ..Default::default()
        });
        Ok(self
            .client
            .domains()
            .get_domain_xml(r)
            .await?
            .into_inner()
            .xml)
    }

    /// Starts it (libvirt's create).
    pub async fn start(&self) -> Result<v1::Domain, ClientError> {
        self.client.start_domain(&self.name).await
    }

    /// Asks the guest to shut down.
    pub async fn shutdown(&self) -> Result<v1::Domain, ClientError> {
        let r = self.client.request(v1::ShutdownDomainRequest {
            domain: self.domain_ref(),
            ..Default::default()
        });
        domain(
            self.client
                .domains()
                .shutdown_domain(r)
                .await?
                .into_inner()
                .domain,
        )
    }

    /// Asks the guest to reboot.
    pub async fn reboot(&self) -> Result<v1::Domain, ClientError> {
        let r = self.client.request(v1::RebootDomainRequest {
            domain: self.domain_ref(),
            ..Default::default()
        });
        domain(
            self.client
                .domains()
                .reboot_domain(r)
                .await?
                .into_inner()
                .domain,
        )
    }

    /// Resets it at once.
    pub async fn reset(&self) -> Result<v1::Domain, ClientError> {
        let r = self.client.request(v1::ResetDomainRequest {
            domain: self.domain_ref(),
        });
        domain(
            self.client
                .domains()
                .reset_domain(r)
                .await?
                .into_inner()
                .domain,
        )
    }

    /// Stops it at once (libvirt's destroy); `None` when it was transient
    /// and so is gone.
    pub async fn destroy(&self) -> Result<Option<v1::Domain>, ClientError> {
        self.client.stop_domain(&self.name).await
    }

    /// Pauses its vCPUs.
    pub async fn suspend(&self) -> Result<v1::Domain, ClientError> {
        let r = self.client.request(v1::SuspendDomainRequest {
            domain: self.domain_ref(),
        });
        domain(
            self.client
                .domains()
                .suspend_domain(r)
                .await?
                .into_inner()
                .domain,
        )
    }

    /// Resumes it.
    pub async fn resume(&self) -> Result<v1::Domain, ClientError> {
        let r = self.client.request(v1::ResumeDomainRequest {
            domain: self.domain_ref(),
        });
        domain(
            self.client
                .domains()
                .resume_domain(r)
                .await?
                .into_inner()
                .domain,
        )
    }

    /// Starts it with the host, or not.
    pub async fn set_autostart(&self, autostart: bool) -> Result<v1::Domain, ClientError> {
        let r = self.client.request(v1::SetDomainAutostartRequest {
            domain: self.domain_ref(),
            autostart,
        });
        domain(
            self.client
                .domains()
                .set_domain_autostart(r)
                .await?
                .into_inner()
                .domain,
        )
    }

    /// A PNG of screen `screen`.
    pub async fn screenshot(&self, screen: u32) -> Result<Vec<u8>, ClientError> {
        Ok(self.client.screenshot_domain(&self.name, screen).await?.1)
    }

    /// Removes its definition (with managed save and snapshot metadata).
    pub async fn undefine(&self) -> Result<(), ClientError> {
        self.client.undefine_domain(&self.name).await
    }
}
