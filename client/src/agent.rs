//! Handle-style access to a domain's guest agent (qemu-guest-agent):
//! `client.agent("web1").exec("/bin/uname", ["-a"]).await?`.
//!
//! Agent errors arrive typed: no agent connected or answering is
//! `Unavailable`, a command the agent refuses or a domain without an agent
//! channel `FailedPrecondition`, a driver without the call (the test
//! driver) `Unimplemented`. A command answered `DeadlineExceeded` may still
//! have run in the guest.

use std::path::Path;

use libvirt_grpc::v1;

use crate::{ClientError, DomainHandle, ExecStream, Progress, Transfer};

/// The guest agent of one domain ([`DomainHandle::agent`],
/// [`Client::agent`](crate::Client::agent)). Every method is one call.
///
/// ```no_run
/// # async fn demo(client: libvirt_grpc_client::Client) -> Result<(), libvirt_grpc_client::ClientError> {
/// let agent = client.agent("web1");
/// agent.ping().await?;
/// let out = agent.exec("/bin/uname", ["-r"]).await?.output().await?;
/// println!("{} (exit {:?})", String::from_utf8_lossy(&out.stdout), out.exit.code);
/// agent.get_file("/etc/os-release", "os-release", false, |_| {}).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct AgentHandle {
    domain: DomainHandle,
}

impl AgentHandle {
    pub(crate) fn new(domain: DomainHandle) -> Self {
        AgentHandle { domain }
    }

    /// The domain whose agent this is.
    pub fn domain(&self) -> &DomainHandle {
        &self.domain
    }

    fn dref(&self) -> Option<v1::DomainRef> {
        Some(self.domain.domain_ref())
    }

    /// Checks that the agent answers (`guest-ping`).
    pub async fn ping(&self) -> Result<(), ClientError> {
        let c = self.domain.client();
        let r = c.request(v1::PingGuestAgentRequest {
            domain: self.dref(),
        });
        c.agents().ping_guest_agent(r).await?;
        Ok(())
    }

    /// Sends one raw agent command (a JSON object with `execute`) and
    /// answers the agent's raw JSON.
    pub async fn command(&self, command_json: impl Into<String>) -> Result<String, ClientError> {
        let c = self.domain.client();
        let r = c.request(v1::RunGuestAgentCommandRequest {
            domain: self.dref(),
            command_json: command_json.into(),
            timeout: None,
        });
        Ok(c.agents()
            .run_guest_agent_command(r)
            .await?
            .into_inner()
            .result_json)
    }

    /// Runs `path` with `args` in the guest and streams its output (see
    /// [`Client::exec`](crate::Client::exec); qemu-ga hands out output only
    /// once the process has exited).
    pub async fn exec<I, S>(
        &self,
        path: impl Into<String>,
        args: I,
    ) -> Result<ExecStream, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.exec_request(v1::ExecGuestCommandRequest {
            path: path.into(),
            args: args.into_iter().map(Into::into).collect(),
            ..Default::default()
        })
        .await
    }

    /// Runs a command described in full (environment, stdin, ...); the
    /// request's `domain` is set to this one.
    pub async fn exec_request(
        &self,
        mut request: v1::ExecGuestCommandRequest,
    ) -> Result<ExecStream, ClientError> {
        request.domain = self.dref();
        self.domain.client().exec(request).await
    }

    /// Copies the guest file `guest_path` to a new local file at `path`
    /// (see [`Client::read_guest_file`](crate::Client::read_guest_file)).
    pub async fn get_file(
        &self,
        guest_path: &str,
        path: impl AsRef<Path>,
        overwrite: bool,
        progress: impl FnMut(Progress),
    ) -> Result<Transfer, ClientError> {
        self.domain
            .client()
            .read_guest_file(
                self.domain.domain_ref(),
                guest_path,
                path,
                overwrite,
                progress,
            )
            .await
    }

    /// Writes the local file at `path` to the guest file `guest_path`,
    /// replacing it (see
    /// [`Client::write_guest_file`](crate::Client::write_guest_file)).
    pub async fn put_file(
        &self,
        path: impl AsRef<Path>,
        guest_path: &str,
        progress: impl FnMut(Progress),
    ) -> Result<Transfer, ClientError> {
        self.domain
            .client()
            .write_guest_file(self.domain.domain_ref(), path, guest_path, false, progress)
            .await
    }

    /// The guest's OS, users, time zone, host name, file systems, disks
    /// and interfaces in one call (`GetGuestInfo`, every kind).
    pub async fn info(&self) -> Result<v1::GetGuestInfoResponse, ClientError> {
        let c = self.domain.client();
        let r = c.request(v1::GetGuestInfoRequest {
            domain: self.dref(),
            kinds: vec![],
        });
        Ok(c.agents().get_guest_info(r).await?.into_inner())
    }

    /// The guest's host name, as its agent reports it.
    pub async fn hostname(&self) -> Result<String, ClientError> {
        let c = self.domain.client();
        let r = c.request(v1::GetGuestHostnameRequest {
            domain: self.dref(),
            source: v1::GuestHostnameSource::Agent as i32,
        });
        Ok(c.agents()
            .get_guest_hostname(r)
            .await?
            .into_inner()
            .hostname)
    }

    /// The guest's interfaces and addresses, as its agent reports them.
    pub async fn interfaces(&self) -> Result<Vec<v1::GuestInterface>, ClientError> {
        let c = self.domain.client();
        let r = c.request(v1::GetGuestInterfaceAddressesRequest {
            domain: self.dref(),
            source: v1::GuestInterfaceAddressSource::Agent as i32,
        });
        Ok(c.agents()
            .get_guest_interface_addresses(r)
            .await?
            .into_inner()
            .interfaces)
    }

    /// The guest's mounted file systems.
    pub async fn filesystems(&self) -> Result<Vec<v1::GuestFilesystemMount>, ClientError> {
        let c = self.domain.client();
        let r = c.request(v1::GetGuestFilesystemsRequest {
            domain: self.dref(),
        });
        Ok(c.agents()
            .get_guest_filesystems(r)
            .await?
            .into_inner()
            .filesystems)
    }

    /// Freezes the guest file systems at `mountpoints` (empty: all of
    /// them), e.g. around a backup; answers how many were frozen.
    pub async fn fs_freeze(&self, mountpoints: &[&str]) -> Result<u32, ClientError> {
        let c = self.domain.client();
        let r = c.request(v1::FreezeGuestFilesystemsRequest {
            domain: self.dref(),
            mountpoints: mountpoints.iter().map(|m| (*m).to_owned()).collect(),
        });
        Ok(c.agents()
            .freeze_guest_filesystems(r)
            .await?
            .into_inner()
            .frozen_count)
    }

    /// Thaws frozen file systems (empty `mountpoints`: all of them);
    /// answers how many were thawed.
    pub async fn fs_thaw(&self, mountpoints: &[&str]) -> Result<u32, ClientError> {
        let c = self.domain.client();
        let r = c.request(v1::ThawGuestFilesystemsRequest {
            domain: self.dref(),
            mountpoints: mountpoints.iter().map(|m| (*m).to_owned()).collect(),
        });
        Ok(c.agents()
            .thaw_guest_filesystems(r)
            .await?
            .into_inner()
            .thawed_count)
    }

    /// Whether the guest's file systems are frozen.
    pub async fn freeze_status(&self) -> Result<v1::GuestFreezeStatus, ClientError> {
        let c = self.domain.client();
        let r = c.request(v1::GetGuestFreezeStatusRequest {
            domain: self.dref(),
        });
        Ok(c.agents()
            .get_guest_freeze_status(r)
            .await?
            .into_inner()
            .status())
    }

    /// Discards unused blocks of every guest file system.
    pub async fn fs_trim(&self) -> Result<(), ClientError> {
        let c = self.domain.client();
        let r = c.request(v1::TrimGuestFilesystemsRequest {
            domain: self.dref(),
            ..Default::default()
        });
        c.agents().trim_guest_filesystems(r).await?;
        Ok(())
    }

    /// The guest's clock.
    pub async fn time(&self) -> Result<Option<libvirt_grpc::prost_types::Timestamp>, ClientError> {
        let c = self.domain.client();
        let r = c.request(v1::GetGuestTimeRequest {
            domain: self.dref(),
        });
        Ok(c.agents().get_guest_time(r).await?.into_inner().time)
    }

    /// Sets the guest user `user`'s password (plain text unless
    /// `encrypted`, then a crypt(3) hash).
    pub async fn set_user_password(
        &self,
        user: &str,
        password: &str,
        encrypted: bool,
    ) -> Result<(), ClientError> {
        let c = self.domain.client();
        let r = c.request(v1::SetGuestUserPasswordRequest {
            domain: self.dref(),
            user: user.to_owned(),
            password: password.to_owned(),
            encrypted,
        });
        c.agents().set_guest_user_password(r).await?;
        Ok(())
    }

    /// The guest vCPUs that are online.
    pub async fn vcpus(&self) -> Result<Vec<u32>, ClientError> {
        let c = self.domain.client();
        let r = c.request(v1::GetGuestVcpusRequest {
            domain: self.dref(),
        });
        Ok(c.agents().get_guest_vcpus(r).await?.into_inner().vcpus)
    }
}
