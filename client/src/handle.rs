//! Handle-style access to one domain, shaped like libvirt's own bindings:
//! `client.domain("web1").start().await?`.

use libvirt_grpc::v1;

use crate::{required, AgentHandle, Client, ClientError, SnapshotHandle};

/// One domain of the client's default host, by name, UUID or id
/// ([`Client::domain`], [`Client::domain_by_uuid`], [`Client::domain_by_id`]).
/// Cheap to make; every method is one call and answers the domain as the
/// server read it after the change (lifecycle verbs) or the value asked
/// for. Reads ([`info`](Self::info), [`xml`](Self::xml),
/// [`stats`](Self::stats), [`snapshots`](Self::snapshots)) follow the
/// client's read retries; changes are never retried.
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
    key: v1::domain_ref::Key,
}

/// The domain of a lifecycle answer, or an error when the server sent none.
fn domain(d: Option<v1::Domain>) -> Result<v1::Domain, ClientError> {
    required(d, "domain")
}

impl DomainHandle {
    pub(crate) fn new(client: Client, key: v1::domain_ref::Key) -> Self {
        DomainHandle { client, key }
    }

    /// The domain's name, when the handle names it by name.
    pub fn name(&self) -> Option<&str> {
        match &self.key {
            v1::domain_ref::Key::Name(n) => Some(n),
            _ => None,
        }
    }

    /// The reference every call of this handle sends.
    pub fn domain_ref(&self) -> v1::DomainRef {
        v1::DomainRef {
            host: self.client.default_host.clone(),
            key: Some(self.key.clone()),
        }
    }

    fn dref(&self) -> Option<v1::DomainRef> {
        Some(self.domain_ref())
    }

    /// The domain now (`GetDomain`, the default view).
    pub async fn info(&self) -> Result<v1::Domain, ClientError> {
        self.client
            .read(|| async {
                let r = self.client.request(v1::GetDomainRequest {
                    domain: self.dref(),
                    ..Default::default()
                });
                domain(
                    self.client
                        .domains()
                        .get_domain(r)
                        .await?
                        .into_inner()
                        .domain,
                )
            })
            .await
    }

    /// Its libvirt XML (the live one for a running domain).
    pub async fn xml(&self) -> Result<String, ClientError> {
        self.client
            .read(|| async {
                let r = self.client.request(v1::GetDomainXmlRequest {
                    domain: self.dref(),
                    ..Default::default()
                });
                Ok(self
                    .client
                    .domains()
                    .get_domain_xml(r)
                    .await?
                    .into_inner()
                    .xml)
            })
            .await
    }

    /// Its persistent definition's XML (what the next start uses).
    pub async fn inactive_xml(&self) -> Result<String, ClientError> {
        self.client
            .read(|| async {
                let r = self.client.request(v1::GetDomainXmlRequest {
                    domain: self.dref(),
                    inactive: true,
                    ..Default::default()
                });
                Ok(self
                    .client
                    .domains()
                    .get_domain_xml(r)
                    .await?
                    .into_inner()
                    .xml)
            })
            .await
    }

    /// Starts a defined, inactive domain (libvirt's create); a running one
    /// is `FailedPrecondition`.
    pub async fn start(&self) -> Result<v1::Domain, ClientError> {
        let r = self.client.request(v1::StartDomainRequest {
            domain: self.dref(),
            ..Default::default()
        });
        domain(
            self.client
                .domains()
                .start_domain(r)
                .await?
                .into_inner()
                .domain,
        )
    }

    /// Asks the guest to shut down.
    pub async fn shutdown(&self) -> Result<v1::Domain, ClientError> {
        let r = self.client.request(v1::ShutdownDomainRequest {
            domain: self.dref(),
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
            domain: self.dref(),
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
            domain: self.dref(),
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
        let r = self.client.request(v1::StopDomainRequest {
            domain: self.dref(),
            graceful: false,
        });
        Ok(self
            .client
            .domains()
            .stop_domain(r)
            .await?
            .into_inner()
            .domain)
    }

    /// Pauses its vCPUs.
    pub async fn suspend(&self) -> Result<v1::Domain, ClientError> {
        let r = self.client.request(v1::SuspendDomainRequest {
            domain: self.dref(),
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
            domain: self.dref(),
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
            domain: self.dref(),
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
        Ok(self.client.screenshot(self.domain_ref(), screen).await?.1)
    }

    /// Saves a PNG of screen `screen` to a new file at `path` (see
    /// [`Client::screenshot_to_file`]).
    pub async fn screenshot_to_file(
        &self,
        screen: u32,
        path: impl AsRef<std::path::Path>,
        overwrite: bool,
    ) -> Result<v1::ScreenshotInfo, ClientError> {
        self.client
            .screenshot_to_file(self.domain_ref(), screen, path, overwrite)
            .await
    }

    /// Removes its definition (with managed save and snapshot metadata); a
    /// running domain keeps running as a transient one, which is returned.
    pub async fn undefine(&self) -> Result<Option<v1::Domain>, ClientError> {
        let r = self.client.request(v1::UndefineDomainRequest {
            domain: self.dref(),
            remove_managed_save: true,
            remove_snapshots_metadata: true,
            ..Default::default()
        });
        Ok(self
            .client
            .domains()
            .undefine_domain(r)
            .await?
            .into_inner()
            .domain)
    }

    /// Sets the vCPU count of the definitions `scope` names (neither: the
    /// current one); `maximum` changes the maximum instead (config only).
    pub async fn set_vcpus(
        &self,
        vcpus: u32,
        scope: v1::ModifyScope,
        maximum: bool,
    ) -> Result<v1::Domain, ClientError> {
        let r = self.client.request(v1::SetDomainVcpusRequest {
            domain: self.dref(),
            vcpus,
            scope: Some(scope),
            maximum,
        });
        domain(
            self.client
                .domains()
                .set_domain_vcpus(r)
                .await?
                .into_inner()
                .domain,
        )
    }

    /// Sets the memory in bytes of the definitions `scope` names (neither:
    /// the current one); `maximum` changes the maximum instead.
    pub async fn set_memory(
        &self,
        memory_bytes: u64,
        scope: v1::ModifyScope,
        maximum: bool,
    ) -> Result<v1::Domain, ClientError> {
        let r = self.client.request(v1::SetDomainMemoryRequest {
            domain: self.dref(),
            memory_bytes,
            scope: Some(scope),
            maximum,
        });
        domain(
            self.client
                .domains()
                .set_domain_memory(r)
                .await?
                .into_inner()
                .domain,
        )
    }

    /// Attaches the device of `xml` (a `<disk>`, `<interface>`, ...) to
    /// the definitions `scope` names (neither: the current one).
    pub async fn attach_device(
        &self,
        xml: impl Into<String>,
        scope: v1::ModifyScope,
    ) -> Result<v1::Domain, ClientError> {
        let r = self.client.request(v1::AttachDomainDeviceRequest {
            domain: self.dref(),
            xml: xml.into(),
            scope: Some(scope),
        });
        domain(
            self.client
                .domains()
                .attach_domain_device(r)
                .await?
                .into_inner()
                .domain,
        )
    }

    /// Detaches the device `xml` describes.
    pub async fn detach_device(
        &self,
        xml: impl Into<String>,
        scope: v1::ModifyScope,
    ) -> Result<v1::Domain, ClientError> {
        let r = self.client.request(v1::DetachDomainDeviceRequest {
            domain: self.dref(),
            xml: xml.into(),
            scope: Some(scope),
        });
        domain(
            self.client
                .domains()
                .detach_domain_device(r)
                .await?
                .into_inner()
                .domain,
        )
    }

    /// Changes a device (e.g. a CD-ROM's media) as `xml` describes it; a
    /// device the domain does not have is `NotFound`.
    pub async fn update_device(
        &self,
        xml: impl Into<String>,
        scope: v1::ModifyScope,
        force: bool,
    ) -> Result<v1::Domain, ClientError> {
        let r = self.client.request(v1::UpdateDomainDeviceRequest {
            domain: self.dref(),
            xml: xml.into(),
            scope: Some(scope),
            force,
        });
        domain(
            self.client
                .domains()
                .update_domain_device(r)
                .await?
                .into_inner()
                .domain,
        )
    }

    /// Presses `keycodes` (1 to 16, Linux key codes) together, then
    /// releases them after libvirt's default hold time.
    pub async fn send_keys(&self, keycodes: &[u32]) -> Result<(), ClientError> {
        let r = self.client.request(v1::SendDomainKeyRequest {
            domain: self.dref(),
            codeset: v1::KeyCodeSet::Linux as i32,
            hold_duration: None,
            keycodes: keycodes.to_vec(),
        });
        self.client.domains().send_domain_key(r).await?;
        Ok(())
    }

    /// Its bulk statistics (`GetDomainStats`, every group); `None` when
    /// the server has none for it (a domain that is not running has only
    /// its state).
    pub async fn stats(&self) -> Result<Option<v1::DomainStats>, ClientError> {
        self.client
            .read(|| async {
                let r = self.client.request(v1::GetDomainStatsRequest {
                    host: self.client.default_host.clone(),
                    domains: vec![self.domain_ref()],
                    groups: vec![],
                });
                Ok(self
                    .client
                    .domains()
                    .get_domain_stats(r)
                    .await?
                    .into_inner()
                    .stats
                    .into_iter()
                    .next())
            })
            .await
    }

    /// A handle on its snapshot `name`.
    pub fn snapshot(&self, name: impl Into<String>) -> SnapshotHandle {
        SnapshotHandle::new(self.clone(), name.into())
    }

    /// Every snapshot of it, following pages (`ListSnapshots`, no filter).
    pub async fn snapshots(&self) -> Result<Vec<v1::Snapshot>, ClientError> {
        self.client
            .read(|| async {
                let mut out = Vec::new();
                let mut page_token = String::new();
                loop {
                    let r = self.client.request(v1::ListSnapshotsRequest {
                        domain: self.dref(),
                        page_token,
                        ..Default::default()
                    });
                    let resp = self
                        .client
                        .snapshots()
                        .list_snapshots(r)
                        .await?
                        .into_inner();
                    out.extend(resp.snapshots);
                    if resp.next_page_token.is_empty() {
                        return Ok(out);
                    }
                    page_token = resp.next_page_token;
                }
            })
            .await
    }

    /// Its current snapshot (`GetCurrentSnapshot`; none is `NotFound`).
    pub async fn current_snapshot(&self) -> Result<v1::Snapshot, ClientError> {
        let r = self.client.request(v1::GetCurrentSnapshotRequest {
            domain: self.dref(),
        });
        required(
            self.client
                .snapshots()
                .get_current_snapshot(r)
                .await?
                .into_inner()
                .snapshot,
            "snapshot",
        )
    }

    /// Takes a snapshot from `spec` (`CreateSnapshot` with no flags; use
    /// the [`Client::snapshots`] stub for disk-only, quiesce, ...).
    pub async fn create_snapshot(
        &self,
        spec: v1::SnapshotSpec,
    ) -> Result<v1::Snapshot, ClientError> {
        let r = self.client.request(v1::CreateSnapshotRequest {
            domain: self.dref(),
            source: Some(v1::create_snapshot_request::Source::Spec(spec)),
            ..Default::default()
        });
        required(
            self.client
                .snapshots()
                .create_snapshot(r)
                .await?
                .into_inner()
                .snapshot,
            "snapshot",
        )
    }

    /// Its guest agent.
    pub fn agent(&self) -> AgentHandle {
        AgentHandle::new(self.clone())
    }

    /// The client this handle calls through.
    pub fn client(&self) -> &Client {
        &self.client
    }
}
