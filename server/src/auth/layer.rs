//! The tower layer in front of every service: establishes the [`Caller`]
//! of each call, refuses it (`UNAUTHENTICATED`, `PERMISSION_DENIED` naming
//! the role needed) before any handler runs, puts the caller into the
//! request's extensions, and writes the audit line of calls that change
//! something.
//!
//! Identity, in this order: an `authorization` metadata value, which must
//! then be a known bearer token (a wrong token is refused even when a good
//! certificate came with it); else the client certificate of the TLS
//! session, mapped by `[[auth.clients]]`. Without `[auth]` every caller is
//! `admin` under the name `local` (the server then listens only on
//! loopback or a Unix socket).

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tonic::{
    body::Body,
    transport::server::{TcpConnectInfo, TlsConnectInfo},
};

use super::{
    audit,
    identity::{Identities, Rejection},
    roles, Caller, Role,
};
use crate::{config::AuthConfig, error::Error, transport::status_codes::code_name};

/// How callers are identified and what they may do.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `None`: no `[auth]`, everyone is a local admin.
    identities: Option<Identities>,
    open_health: bool,
    open_reflection: bool,
}

impl Policy {
    /// The policy of an `[auth]` section (or of none).
    pub fn new(auth: Option<&AuthConfig>) -> Self {
        Policy {
            identities: auth.map(Identities::new),
            open_health: auth.is_none_or(|a| a.open_health),
            open_reflection: auth.is_some_and(|a| a.open_reflection),
        }
    }

    /// Whether callers must identify themselves.
    pub fn enabled(&self) -> bool {
        self.identities.is_some()
    }

    /// The caller of a request to `path`, or why it is refused.
    pub fn admit<B>(&self, path: &str, req: &http::Request<B>) -> Result<Caller, Error> {
        let Some(ids) = &self.identities else {
            return Ok(Caller {
                name: "local".to_owned(),
                role: Role::Admin,
            });
        };
        let Some(needed) = roles::required(path) else {
            return Err(Error::PermissionDenied {
                message: format!("{path} has no role in the server's table; nobody may call it"),
                needed: None,
            });
        };
        let identified = identify(ids, req);
        let open = (self.open_health && path.starts_with("/grpc.health.v1.Health/"))
            || (self.open_reflection && path.starts_with("/grpc.reflection."));
        let caller = match identified {
            Ok(c) => c,
            Err(Rejection::Missing | Rejection::UnmappedCertificate(_)) if open => {
                return Ok(Caller {
                    name: "anonymous".to_owned(),
                    role: Role::Reader,
                })
            }
            Err(why) => return Err(Error::Unauthenticated(why.to_string())),
        };
        if !caller.has(needed) {
            return Err(Error::PermissionDenied {
                message: format!(
                    "{path} needs role '{needed}'; caller '{}' has role '{}'",
                    caller.name, caller.role
                ),
                needed: Some(needed),
            });
        }
        Ok(caller)
    }
}

/// The identity a request presents.
fn identify<B>(ids: &Identities, req: &http::Request<B>) -> Result<Caller, Rejection> {
    if let Some(v) = req.headers().get(http::header::AUTHORIZATION) {
        return ids.by_authorization(v.as_bytes());
    }
    let certs = req
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(|i| i.peer_certs());
    match certs.as_deref().and_then(|c| c.first()) {
        Some(leaf) => ids.by_certificate(leaf.as_ref()),
        None => Err(Rejection::Missing),
    }
}

/// The layer; see the module doc.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    policy: Arc<Policy>,
}

impl AuthLayer {
    /// A layer enforcing `policy`.
    pub fn new(policy: Policy) -> Self {
        AuthLayer {
            policy: Arc::new(policy),
        }
    }
}

impl<S> tower_layer::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            policy: Arc::clone(&self.policy),
        }
    }
}

/// See [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    policy: Arc<Policy>,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, ReqBody> tower_service::Service<http::Request<ReqBody>> for AuthService<S>
where
    S: tower_service::Service<http::Request<ReqBody>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<ReqBody>) -> Self::Future {
        let path = req.uri().path().to_owned();
        let caller = match self.policy.admit(&path, &req) {
            Ok(c) => c,
            Err(e) => {
                let peer = peer_of(&req);
                tracing::warn!(method = %path, peer = %peer, error = %e, "call refused");
                let status = tonic::Status::from(e);
                return Box::pin(async move { Ok(status.into_http()) });
            }
        };
        req.extensions_mut().insert(caller.clone());
        // The ready service answers this call; a fresh clone waits for the
        // next one (tower's rule for services called from a future).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if !roles::changes(&path) {
            return Box::pin(inner.call(req));
        }
        Box::pin(async move {
            let (resp, record) = audit::scope(inner.call(req)).await;
            let result = match &resp {
                Ok(r) => r
                    .headers()
                    .get("grpc-status")
                    .map(|v| tonic::Code::from_bytes(v.as_bytes()))
                    .map_or("OK", code_name),
                Err(_) => "transport error",
            };
            tracing::info!(
                target: "audit",
                caller = %caller.name,
                role = %caller.role,
                method = %path,
                host = %record.host.as_deref().unwrap_or("-"),
                target = %record.target.as_deref().unwrap_or("-"),
                result = %result,
                "call"
            );
            resp
        })
    }
}

/// The peer address of a request, for log lines.
fn peer_of<B>(req: &http::Request<B>) -> String {
    let ext = req.extensions();
    ext.get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(|i| i.get_ref().remote_addr())
        .or_else(|| ext.get::<TcpConnectInfo>().and_then(|i| i.remote_addr()))
        .map_or_else(|| "local".to_owned(), |a| a.to_string())
}
