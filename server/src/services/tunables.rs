//! The ten tunables calls of `DomainService` (Get/Set of memory, NUMA,
//! blkio, interface and block I/O parameters) share one shape: a domain,
//! for two families a device, and typed parameters. These two functions do
//! the work; each handler only says which family and which fields.

use libvirt_grpc::v1;
use tokio::time::Instant;
use tonic::Status;

use super::resolve::Target;
use crate::{
    convert::{
        domain::{read_flags, scope_flags},
        tuning,
    },
    error::Error,
    ops::{
        domain::DomainKey,
        tunables::{self, Kind},
    },
    pool::{Hosts, Lane},
    validate::Violations,
};

/// Checks the device a family needs (none for the others).
fn device(kind: Kind, d: &str) -> Result<(), Error> {
    match kind {
        Kind::Interface | Kind::BlockIoTune => tuning::device(d),
        _ if d.is_empty() => Ok(()),
        _ => Err(Error::invalid("device", "this family has no device")),
    }
}

/// Get*Parameters / GetDomainBlockIoTune.
pub async fn get(
    hosts: &Hosts,
    deadline: Option<Instant>,
    kind: Kind,
    domain: Option<v1::DomainRef>,
    dev: String,
    config: bool,
) -> Result<Vec<v1::TypedParameter>, Status> {
    let mut v = Violations::default();
    let t = v.check(Target::<DomainKey>::resolve(
        hosts,
        domain.as_ref(),
        "domain",
    ));
    v.check(device(kind, &dev));
    let t = v.done(t)?;
    let flags = read_flags(config);
    let params = t
        .run(Lane::Quick, deadline, move |c, k, _| {
            tunables::get(c, k, kind, &dev, flags)
        })
        .await?;
    Ok(tuning::typed_parameters(params))
}

/// Set*Parameters / SetDomainBlockIoTune.
pub async fn set(
    hosts: &Hosts,
    deadline: Option<Instant>,
    kind: Kind,
    domain: Option<v1::DomainRef>,
    dev: String,
    params: Vec<v1::TypedParameter>,
    scope: Option<v1::ModifyScope>,
) -> Result<Vec<v1::TypedParameter>, Status> {
    let mut v = Violations::default();
    let t = v.check(Target::<DomainKey>::resolve(
        hosts,
        domain.as_ref(),
        "domain",
    ));
    v.check(device(kind, &dev));
    let values = v.check(tuning::typed_values(tuning::MAX_PARAMETERS, &params));
    let (t, values) = v.done(t.zip(values))?;
    let flags = scope_flags(scope.as_ref());
    let params = t
        .run(Lane::Quick, deadline, move |c, k, _| {
            tunables::set(c, k, kind, &dev, values, flags)
        })
        .await?;
    Ok(tuning::typed_parameters(params))
}
