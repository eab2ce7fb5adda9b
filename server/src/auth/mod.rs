//! Who is calling, and what they may do.
//!
//! - [`Role`]: `reader` < `operator` < `admin`; a role includes the ones
//!   before it.
//! - [`roles`]: the one table that gives every RPC the role it needs. A
//!   unit test walks the descriptor set and fails when an RPC has no row.
//! - [`Caller`]: the identity the auth layer established for a call, put
//!   into the request's extensions for the handlers (confinement asks it
//!   whether the caller is below `admin`).

pub mod audit;
pub mod identity;
pub mod layer;
pub mod roles;

use serde::Deserialize;

/// What a caller may do; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Every Get, List and Watch; health and reflection.
    Reader,
    /// Lifecycle, define and undefine, snapshots, storage and network
    /// changes, screenshots, keys sent to a console.
    Operator,
    /// Guest agent commands and exec, passwords and SSH keys, raw agent
    /// commands, save/restore to host paths, anything that reaches host
    /// files or passes host paths unchecked.
    Admin,
}

impl Role {
    /// The role's name as the config and error messages spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The identity of one call, as the auth layer established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The configured name of the token or certificate (`local` when the
    /// server runs without `[auth]` and trusts every caller).
    pub name: String,
    /// The caller's role.
    pub role: Role,
}

impl Caller {
    /// The caller of a request the auth layer let through. A request that
    /// did not pass it (a handler called directly, in a unit test) is
    /// treated as a `reader`: the least privilege, never more.
    pub fn of<T>(req: &tonic::Request<T>) -> Caller {
        req.extensions()
            .get::<Caller>()
            .cloned()
            .unwrap_or_else(|| Caller {
                name: "unknown".to_owned(),
                role: Role::Reader,
            })
    }

    /// Whether this caller has at least `role`.
    pub fn has(&self, role: Role) -> bool {
        self.role >= role
    }
}
