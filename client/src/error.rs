//! The client's one error type, decoded from the server's status details.

use std::time::Duration;

use tonic::Status;

/// One bad request field, as the server's `google.rpc.BadRequest` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field's path (`domain.uuid`, `parameters[2].field`).
    pub field: String,
    /// What is wrong with it.
    pub description: String,
}

/// The `google.rpc` details every failed call carries (the README's
/// "Errors" section).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorDetails {
    /// The gRPC status message.
    pub message: String,
    /// `ErrorInfo.reason`: libvirt's error code name (`NO_DOMAIN`) or the
    /// server's own (`UNKNOWN_HOST`, `OPERATION_INVALID`); empty when the
    /// status carried no `ErrorInfo` (a failure before the server answered).
    pub reason: String,
    /// `ErrorInfo.domain`: `libvirt.org` or `libvirt-grpc`.
    pub domain: String,
    /// `ErrorInfo.metadata` (`host`, `libvirt_code`, `required_role`, ...).
    pub metadata: std::collections::HashMap<String, String>,
    /// Every bad request field (`INVALID_ARGUMENT`).
    pub violations: Vec<FieldViolation>,
    /// How long the server asks a caller to wait before retrying
    /// (`RetryInfo`, on `UNAVAILABLE`).
    pub retry_after: Option<Duration>,
}

impl ErrorDetails {
    /// Decodes the details of `status`.
    pub fn of(status: &Status) -> Self {
        use tonic_types::StatusExt;
        let d = status.get_error_details();
        let mut out = ErrorDetails {
            message: status.message().to_owned(),
            ..Default::default()
        };
        if let Some(info) = d.error_info() {
            out.reason = info.reason.clone();
            out.domain = info.domain.clone();
            out.metadata = info.metadata.clone();
        }
        if let Some(bad) = d.bad_request() {
            out.violations = bad
                .field_violations
                .iter()
                .map(|v| FieldViolation {
                    field: v.field.clone(),
                    description: v.description.clone(),
                })
                .collect();
        }
        out.retry_after = d.retry_info().and_then(|r| r.retry_delay);
        out
    }
}

/// What can go wrong talking to the server: one variant per failure a
/// caller handles differently, each with the decoded details.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL is not valid or the server cannot be reached.
    #[error("Cannot connect to {url}")]
    Connect {
        /// The URL given.
        url: String,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
    /// The server did not complete the connection within the connect
    /// timeout.
    #[error("Cannot connect to {url} within {after:?}")]
    ConnectTimeout {
        /// The URL given.
        url: String,
        /// The connect timeout.
        after: Duration,
    },
    /// `NOT_FOUND`: no such domain, host, pool, ...
    #[error("not found: {}", .0.message)]
    NotFound(Box<ErrorDetails>),
    /// `ALREADY_EXISTS`.
    #[error("already exists: {}", .0.message)]
    AlreadyExists(Box<ErrorDetails>),
    /// `INVALID_ARGUMENT` (and `OUT_OF_RANGE`): `violations` names every
    /// bad field.
    #[error("invalid argument: {}", .0.message)]
    InvalidArgument(Box<ErrorDetails>),
    /// `FAILED_PRECONDITION`: the object's state forbids the call (reason
    /// `OPERATION_INVALID` for libvirt's "domain is already running").
    #[error("failed precondition: {}", .0.message)]
    FailedPrecondition(Box<ErrorDetails>),
    /// `PERMISSION_DENIED` (metadata `required_role`) or
    /// `UNAUTHENTICATED`.
    #[error("permission denied: {}", .0.message)]
    PermissionDenied(Box<ErrorDetails>),
    /// `UNAVAILABLE`: the server or the host is away; `retry_after` says
    /// when to try again.
    #[error("unavailable: {}", .0.message)]
    Unavailable(Box<ErrorDetails>),
    /// `DEADLINE_EXCEEDED`.
    #[error("deadline exceeded: {}", .0.message)]
    DeadlineExceeded(Box<ErrorDetails>),
    /// `UNIMPLEMENTED`: the host's driver cannot do this.
    #[error("unimplemented: {}", .0.message)]
    Unimplemented(Box<ErrorDetails>),
    /// Any other status (`INTERNAL`, `ABORTED`, `CANCELLED`, ...).
    #[error("{}: {}", .0.code(), .0.message())]
    Status(Status),
    /// A local file of a transfer could not be opened, read or written.
    #[error("Cannot {action} {}", .path.display())]
    Io {
        /// What was being done (`open`, `read`, `write`, `create`, ...).
        action: &'static str,
        /// The local file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The SHA-256 of the bytes moved is not the one the server reports.
    #[error("Checksum mismatch: {local} here, {server} on the server")]
    ChecksumMismatch {
        /// Computed here, 64 lowercase hex digits.
        local: String,
        /// Reported by the server.
        server: String,
    },
    /// A client setting cannot be used (a TLS setting on an `http://`
    /// URL, a token that is not visible ASCII).
    #[error("Bad client setting: {0}")]
    Config(String),
    /// The server's answer broke the shape its proto describes (a stream
    /// that ends early, a gap between chunks, a short byte count).
    #[error("Unexpected answer from the server: {0}")]
    Protocol(String),
}

impl From<Status> for ClientError {
    fn from(s: Status) -> Self {
        use tonic::Code as C;
        let d = || Box::new(ErrorDetails::of(&s));
        match s.code() {
            C::NotFound => ClientError::NotFound(d()),
            C::AlreadyExists => ClientError::AlreadyExists(d()),
            C::InvalidArgument | C::OutOfRange => ClientError::InvalidArgument(d()),
            C::FailedPrecondition => ClientError::FailedPrecondition(d()),
            C::PermissionDenied | C::Unauthenticated => ClientError::PermissionDenied(d()),
            C::Unavailable => ClientError::Unavailable(d()),
            C::DeadlineExceeded => ClientError::DeadlineExceeded(d()),
            C::Unimplemented => ClientError::Unimplemented(d()),
            _ => ClientError::Status(s),
        }
    }
}

impl ClientError {
    /// The gRPC code (`Unavailable` for connect failures; `InvalidArgument`
    /// also stands for OUT_OF_RANGE, `PermissionDenied` for UNAUTHENTICATED).
    pub fn code(&self) -> tonic::Code {
        use tonic::Code as C;
        match self {
            ClientError::Connect { .. }
            | ClientError::ConnectTimeout { .. }
            | ClientError::Unavailable(_) => C::Unavailable,
            ClientError::NotFound(_) => C::NotFound,
            ClientError::AlreadyExists(_) => C::AlreadyExists,
            ClientError::InvalidArgument(_) => C::InvalidArgument,
            ClientError::FailedPrecondition(_) => C::FailedPrecondition,
            ClientError::PermissionDenied(_) => C::PermissionDenied,
            ClientError::DeadlineExceeded(_) => C::DeadlineExceeded,
            ClientError::Unimplemented(_) => C::Unimplemented,
            ClientError::Status(s) => s.code(),
            ClientError::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => C::NotFound,
                std::io::ErrorKind::AlreadyExists => C::AlreadyExists,
                std::io::ErrorKind::PermissionDenied => C::PermissionDenied,
                _ => C::Unknown,
            },
            ClientError::ChecksumMismatch { .. } => C::DataLoss,
            ClientError::Protocol(_) => C::Internal,
            ClientError::Config(_) => C::InvalidArgument,
        }
    }

    /// The decoded details (none for connect failures, other codes and
    /// local failures).
    pub fn details(&self) -> Option<&ErrorDetails> {
        match self {
            ClientError::NotFound(d)
            | ClientError::AlreadyExists(d)
            | ClientError::InvalidArgument(d)
            | ClientError::FailedPrecondition(d)
            | ClientError::PermissionDenied(d)
            | ClientError::Unavailable(d)
            | ClientError::DeadlineExceeded(d)
            | ClientError::Unimplemented(d) => Some(d),
            ClientError::Connect { .. }
            | ClientError::ConnectTimeout { .. }
            | ClientError::Status(_)
            | ClientError::Io { .. }
            | ClientError::ChecksumMismatch { .. }
            | ClientError::Protocol(_)
            | ClientError::Config(_) => None,
        }
    }
}
