//! The server's one error type and the contract of the statuses it becomes.
//!
//! **The error contract** (the README's "Errors" section says the same to
//! callers). Every error status carries one `google.rpc.ErrorInfo`:
//!
//! - for an error libvirt reported, `domain` is [`LIBVIRT_ERROR_DOMAIN`]
//!   (`libvirt.org`), `reason` libvirt's error code name without its
//!   `VIR_ERR_` prefix (`NO_DOMAIN`, `OPERATION_INVALID`, `XML_ERROR`), and
//!   `metadata` holds `libvirt_code` (the number), `libvirt_domain` (the
//!   error domain by name: `QEMU`, `STORAGE`), `libvirt_domain_code` (its
//!   number) and `host` (the configured host name);
//! - for the server's own errors, `domain` is [`SERVER_ERROR_DOMAIN`]
//!   (`libvirt-grpc`) and `reason` one of the stable names in [`reason`]
//!   (`UNKNOWN_HOST`, `HOST_UNAVAILABLE`, ...), with `host` in `metadata`
//!   where the error concerns one.
//!
//! The gRPC code comes from the table in `error/table.rs` for libvirt's errors
//! and from the variant for the server's own. `INVALID_ARGUMENT` for a bad
//! request field also carries a `google.rpc.BadRequest` naming the field;
//! `UNAVAILABLE` also carries a `google.rpc.RetryInfo`. Texts are bounded
//! (see [`MAX_STATUS_MESSAGE_BYTES`]).

use std::{collections::HashMap, time::Duration};

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

pub mod names;
mod table;

pub(crate) use table::{code_for_libvirt, is_connection_error};

/// Whether libvirt's error says the object does not exist (the table's
/// NOT_FOUND rows), for callers outside the transport layer that must not
/// know gRPC codes (ops, events).
pub fn is_not_found(e: &virt::error::Error) -> bool {
    code_for_libvirt(e) == Code::NotFound
}

/// Whether libvirt's error says the driver lacks the call or flag (the
/// table's UNIMPLEMENTED rows).
pub fn is_unsupported(e: &virt::error::Error) -> bool {
    code_for_libvirt(e) == Code::Unimplemented
}

/// Whether the table has no row for libvirt's error (it would be INTERNAL).
pub fn is_unclassified(e: &virt::error::Error) -> bool {
    code_for_libvirt(e) == Code::Internal
}

/// The `ErrorInfo.domain` of errors libvirt reported.
pub const LIBVIRT_ERROR_DOMAIN: &str = "libvirt.org";

/// The `ErrorInfo.domain` of the server's own errors (the project's name:
/// they are this service's, not libvirt's).
pub const SERVER_ERROR_DOMAIN: &str = "libvirt-grpc";

/// The `ErrorInfo.reason` of the server's own errors, one per cause
/// (AIP-193: UPPER_SNAKE_CASE, stable once published).
pub mod reason {
    /// A request field is missing or malformed (with a `BadRequest`).
    pub const INVALID_ARGUMENT: &str = "INVALID_ARGUMENT";
    /// The request names a host the server is not configured for.
    pub const UNKNOWN_HOST: &str = "UNKNOWN_HOST";
    /// The host's libvirt cannot be reached now (with a `RetryInfo`).
    pub const HOST_UNAVAILABLE: &str = "HOST_UNAVAILABLE";
    /// The call's deadline passed first.
    pub const DEADLINE_EXCEEDED: &str = "DEADLINE_EXCEEDED";
    /// The object's state does not allow the call; the same name libvirt
    /// uses for this (QEMU's "domain is already running"), so a caller's
    /// check does not depend on which side or driver noticed it.
    pub const OPERATION_INVALID: &str = "OPERATION_INVALID";
    /// Some other state (a stale page token, an upload ended early) does
    /// not allow the call.
    pub const FAILED_PRECONDITION: &str = "FAILED_PRECONDITION";
    /// The host's driver cannot do this.
    pub const UNIMPLEMENTED: &str = "UNIMPLEMENTED";
    /// An object the server looked for itself does not exist.
    pub const NOT_FOUND: &str = "NOT_FOUND";
    /// A range lies past the end of what it reads (`OUT_OF_RANGE`).
    pub const OUT_OF_RANGE: &str = "OUT_OF_RANGE";
    /// An object the call would create exists already (checked by the
    /// server itself, e.g. CreateDomain of a defined name).
    pub const ALREADY_EXISTS: &str = "ALREADY_EXISTS";
    /// A client stream sent nothing for `stream_idle_timeout_secs`.
    pub const STREAM_IDLE: &str = "STREAM_IDLE";
    /// A session was cut off by something outside the call (a console
    /// another client took over with `force`).
    pub const ABORTED: &str = "ABORTED";
    /// A server-wide bound is reached (open consoles); retry later.
    pub const LIMIT_REACHED: &str = "LIMIT_REACHED";
    /// The server is shutting down (with a `RetryInfo`).
    pub const SERVER_SHUTTING_DOWN: &str = "SERVER_SHUTTING_DOWN";
    /// A bug or an unexpected answer.
    pub const INTERNAL: &str = "INTERNAL";
    /// The caller presented no identity the server knows.
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    /// The caller's role is below what the call needs (metadata
    /// `required_role`).
    pub const ROLE_REQUIRED: &str = "ROLE_REQUIRED";
    /// A host path a request names lies outside `host_path_roots`
    /// (`PERMISSION_DENIED`; metadata `field`, `path`, `roots`).
    pub const PATH_OUTSIDE_ROOTS: &str = crate::confine::PATH_OUTSIDE_ROOTS;
    /// Raw XML or a spec holds what only an admin may send
    /// (`PERMISSION_DENIED`; metadata `field`, `element`, `required_role`).
    pub const ADMIN_ONLY_XML: &str = crate::confine::ADMIN_ONLY_XML;
}

/// How long a caller should wait before retrying an `UNAVAILABLE` call
/// (the `RetryInfo` detail).
pub const RETRY_DELAY: Duration = Duration::from_secs(1);

/// The status message that ends every watch stream at server shutdown.
pub const SHUTDOWN_MESSAGE: &str =
    "server shutting down; reconnect and resume from your last sequence";

/// Longest status message, in bytes as sent in the `grpc-message` header
/// (percent-encoded), the cut marker included; the decoded message a
/// client reads is never longer.
///
/// libvirt echoes input into its messages (a whole malformed XML line, a
/// long name), and gRPC carries the message in a header: clients limit
/// headers (grpc-python to 8 KiB, many proxies to 8-16 KiB) and answer
/// anything larger with their own error instead of ours. A longer message
/// is cut on a character boundary and marked; the server logs the whole
/// text at `warn` inside the request's span.
pub const MAX_STATUS_MESSAGE_BYTES: usize = 1024;

/// Longest text inside an error detail (a `BadRequest` field name or
/// description, an `ErrorInfo` reason), counted the same way.
///
/// With [`MAX_STATUS_MESSAGE_BYTES`] this keeps the headers of every status
/// below 4 KiB, whatever the input: the message, and the details (which
/// repeat the message) base64-encoded.
pub const MAX_DETAIL_TEXT_BYTES: usize = 256;

/// The bytes tonic percent-encodes in `grpc-message` (as its own set).
const MESSAGE_ENCODE_SET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'?')
    .add(b'{')
    .add(b'}');

/// The length of `text` once percent-encoded for `grpc-message`.
pub fn wire_len(text: &str) -> usize {
    percent_encoding::utf8_percent_encode(text, MESSAGE_ENCODE_SET)
        .map(str::len)
        .sum()
}

fn cut_marker(more: usize) -> String {
    format!(" ... [{more} more bytes cut; the server log has the whole text]")
}

/// `text` if its [`wire_len`] fits in `limit`; otherwise its longest
/// prefix that ends on a character boundary and leaves room for the
/// marker, followed by the marker. The result's [`wire_len`] never exceeds
/// `limit` (for a `limit` above the marker's own, about 100 bytes).
pub fn bounded(text: &str, limit: usize) -> std::borrow::Cow<'_, str> {
    if wire_len(text) <= limit {
        return text.into();
    }
    let budget = limit.saturating_sub(wire_len(&cut_marker(usize::MAX)));
    let mut cut = 0;
    let mut used = 0;
    for (i, c) in text.char_indices() {
        let mut buf = [0u8; 4];
        let cost = wire_len(c.encode_utf8(&mut buf));
        if used + cost > budget {
            break;
        }
        used += cost;
        cut = i + c.len_utf8();
    }
    format!("{}{}", &text[..cut], cut_marker(text.len() - cut)).into()
}

/// Most bytes of field names and reasons one `BadRequest` carries.
pub const MAX_BAD_REQUEST_BYTES: usize = 2048;

/// One bad field of a request: `BadRequest.FieldViolation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The offending field, e.g. `domain.uuid`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

/// "Invalid a: why; invalid b: why".
fn violations_text(violations: &[Violation]) -> String {
    let mut text = String::new();
    for (i, v) in violations.iter().enumerate() {
        if i > 0 {
            text.push_str("; invalid ");
        } else {
            text.push_str("Invalid ");
        }
        text.push_str(&v.field);
        text.push_str(": ");
        text.push_str(&v.reason);
    }
    text
}

/// A boxed error kept as the source of an internal error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong while serving a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// libvirt refused or failed the call.
    #[error("{}", .error.message())]
    Libvirt {
        /// libvirt's error (code, domain, message).
        error: virt::error::Error,
        /// The configured host that answered, once the pool knows it.
        host: Option<String>,
    },
    /// Request fields are missing or malformed: every one found, not only
    /// the first (each becomes one `BadRequest` field violation).
    #[error("{}", violations_text(.0))]
    InvalidArgument(Vec<Violation>),
    /// The request names a host the server is not configured for.
    #[error("Unknown host '{0}': see HostService.ListHosts for the configured hosts")]
    UnknownHost(String),
    /// The host cannot be reached right now.
    #[error("Host '{host}' is unavailable: {reason}")]
    HostUnavailable {
        /// The configured host name.
        host: String,
        /// The last connection error, or why no attempt was made.
        reason: String,
    },
    /// The request's deadline passed before the answer came.
    #[error("Deadline exceeded while waiting for {waiting_for}")]
    DeadlineExceeded {
        /// What the server was waiting for (`host 'h'`, `the guest agent`).
        waiting_for: String,
        /// The configured host, when the wait was for one.
        host: Option<String>,
    },
    /// The object's state does not allow the call, where drivers disagree
    /// on libvirt's own answer (starting a running domain).
    #[error("{0}")]
    OperationInvalid(String),
    /// The object exists but is not in a state that allows the call.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The host's driver cannot do this at all.
    #[error("{0}")]
    Unimplemented(String),
    /// An object was not found (outside libvirt's own lookups).
    #[error("{0}")]
    NotFound(String),
    /// A range past the end of what it reads (a peek past a disk's end).
    #[error("{0}")]
    OutOfRange(String),
    /// The object a call would create exists already (outside libvirt's
    /// own checks).
    #[error("{0}")]
    AlreadyExists(String),
    /// A client stream stalled longer than the idle timeout.
    #[error("No message from the client for {} s (stream_idle_timeout_secs): the transfer was aborted", .0.as_secs())]
    StreamIdle(Duration),
    /// A session was cut off by something outside the call (a console
    /// another client took over).
    #[error("{0}")]
    Aborted(String),
    /// A server-wide bound is reached (`RESOURCE_EXHAUSTED`).
    #[error("{0}")]
    LimitReached(String),
    /// The server is shutting down.
    #[error("{}", SHUTDOWN_MESSAGE)]
    ShuttingDown,
    /// The caller presented no identity the server knows.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller may not make this call.
    #[error("{message}")]
    PermissionDenied {
        /// What was refused and why.
        message: String,
        /// The role that would be allowed, if any.
        needed: Option<crate::auth::Role>,
    },
    /// Confinement refused the request: a host path outside the roots, or
    /// XML only an admin may send (see [`crate::confine`]).
    #[error("{}", .0.message)]
    Confined(crate::confine::Refusal),
    /// A bug or an unexpected answer; the message says which.
    #[error("Internal error: {message}")]
    Internal {
        /// What went wrong.
        message: String,
        /// The error that caused it, if any (logged as a chain).
        #[source]
        source: Option<BoxError>,
    },
}

impl Error {
    /// An `InvalidArgument` for `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument(vec![Violation {
            field: field.into(),
            reason: reason.into(),
        }])
    }

    /// Whether libvirt answered that the object does not exist (on this
    /// error's own code, not its text).
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::Libvirt { error, .. } => is_not_found(error),
            Error::NotFound(_) => true,
            _ => false,
        }
    }

    /// An `Internal` error without a source.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::Internal {
            message: message.into(),
            source: None,
        }
    }

    /// An `Internal` error caused by `source`.
    pub fn internal_from(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Internal {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// A `DeadlineExceeded` while waiting for configured host `host`.
    pub fn host_deadline(host: &str) -> Self {
        Error::DeadlineExceeded {
            waiting_for: format!("host '{host}'"),
            host: Some(host.to_owned()),
        }
    }

    /// A `DeadlineExceeded` while waiting for `what` (no host involved).
    pub fn deadline(what: impl Into<String>) -> Self {
        Error::DeadlineExceeded {
            waiting_for: what.into(),
            host: None,
        }
    }

    /// This error, with `host` recorded as the host libvirt answered from
    /// (for a libvirt error that has none yet).
    pub fn on_host(self, name: &str) -> Self {
        match self {
            Error::Libvirt { error, host: None } => Error::Libvirt {
                error,
                host: Some(name.to_owned()),
            },
            other => other,
        }
    }

    /// Whether this error means the connection to libvirt is broken (as
    /// opposed to libvirt answering "no").
    pub fn is_connection_failure(&self) -> bool {
        match self {
            Error::Libvirt { error, .. } => is_connection_error(error),
            Error::HostUnavailable { .. } => true,
            _ => false,
        }
    }

    /// The gRPC code this error is reported with.
    pub fn code(&self) -> Code {
        match self {
            Error::Libvirt { error, .. } => code_for_libvirt(error),
            Error::InvalidArgument { .. } => Code::InvalidArgument,
            Error::UnknownHost(_) | Error::NotFound(_) => Code::NotFound,
            Error::OutOfRange(_) => Code::OutOfRange,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::HostUnavailable { .. } | Error::ShuttingDown => Code::Unavailable,
            Error::DeadlineExceeded { .. } => Code::DeadlineExceeded,
            Error::OperationInvalid(_) | Error::FailedPrecondition(_) => Code::FailedPrecondition,
            Error::Unimplemented(_) => Code::Unimplemented,
            Error::StreamIdle(_) | Error::Aborted(_) => Code::Aborted,
            Error::LimitReached(_) => Code::ResourceExhausted,
            Error::Confined(_) => Code::PermissionDenied,
            Error::Internal { .. } => Code::Internal,
            Error::Unauthenticated(_) => Code::Unauthenticated,
            Error::PermissionDenied { .. } => Code::PermissionDenied,
        }
    }

    /// The `ErrorInfo` domain and reason of this error.
    pub fn domain_and_reason(&self) -> (&'static str, &'static str) {
        let own = |r| (SERVER_ERROR_DOMAIN, r);
        match self {
            Error::Libvirt { error, .. } => (
                LIBVIRT_ERROR_DOMAIN,
                names::code_name(error.code().to_raw()),
            ),
            Error::InvalidArgument { .. } => own(reason::INVALID_ARGUMENT),
            Error::UnknownHost(_) => own(reason::UNKNOWN_HOST),
            Error::HostUnavailable { .. } => own(reason::HOST_UNAVAILABLE),
            Error::DeadlineExceeded { .. } => own(reason::DEADLINE_EXCEEDED),
            Error::OperationInvalid(_) => own(reason::OPERATION_INVALID),
            Error::FailedPrecondition(_) => own(reason::FAILED_PRECONDITION),
            Error::Unimplemented(_) => own(reason::UNIMPLEMENTED),
            Error::NotFound(_) => own(reason::NOT_FOUND),
            Error::OutOfRange(_) => own(reason::OUT_OF_RANGE),
            Error::AlreadyExists(_) => own(reason::ALREADY_EXISTS),
            Error::StreamIdle(_) => own(reason::STREAM_IDLE),
            Error::Aborted(_) => own(reason::ABORTED),
            Error::LimitReached(_) => own(reason::LIMIT_REACHED),
            Error::ShuttingDown => own(reason::SERVER_SHUTTING_DOWN),
            Error::Confined(r) => own(r.reason),
            Error::Internal { .. } => own(reason::INTERNAL),
            Error::Unauthenticated(_) => own(reason::UNAUTHENTICATED),
            Error::PermissionDenied { .. } => own(reason::ROLE_REQUIRED),
        }
    }

    /// The `ErrorInfo` metadata of this error.
    fn metadata(&self) -> HashMap<String, String> {
        let mut m = HashMap::new();
        let host = match self {
            Error::Libvirt { error, host } => {
                m = libvirt_metadata(error.code().to_raw(), error.domain().to_raw());
                host.as_deref()
            }
            Error::UnknownHost(h) | Error::HostUnavailable { host: h, .. } => Some(h.as_str()),
            Error::DeadlineExceeded { host, .. } => host.as_deref(),
            Error::PermissionDenied {
                needed: Some(role), ..
            } => {
                m.insert("required_role".to_owned(), role.as_str().to_owned());
                None
            }
            Error::Confined(r) => {
                for (k, v) in &r.metadata {
                    m.insert(k.clone(), bounded(v, MAX_DETAIL_TEXT_BYTES).into_owned());
                }
                None
            }
            _ => None,
        };
        if let Some(h) = host {
            m.insert(
                "host".to_owned(),
                bounded(h, MAX_DETAIL_TEXT_BYTES).into_owned(),
            );
        }
        m
    }

    /// The text for the status: the message, then each source's.
    fn chain_text(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        text
    }
}

/// The `ErrorInfo` metadata of libvirt error `code` from error `domain`.
fn libvirt_metadata(code: u32, domain: u32) -> HashMap<String, String> {
    HashMap::from([
        ("libvirt_code".to_owned(), code.to_string()),
        (
            "libvirt_domain".to_owned(),
            names::domain_name(domain).to_owned(),
        ),
        ("libvirt_domain_code".to_owned(), domain.to_string()),
    ])
}

impl From<virt::error::Error> for Error {
    fn from(error: virt::error::Error) -> Self {
        Error::Libvirt { error, host: None }
    }
}

impl From<Error> for Status {
    /// The status for `e`: its code, its message (with its sources), an
    /// `ErrorInfo`, and a `BadRequest` or `RetryInfo` where they apply;
    /// texts bounded by [`MAX_STATUS_MESSAGE_BYTES`] and
    /// [`MAX_DETAIL_TEXT_BYTES`].
    fn from(e: Error) -> Self {
        let code = e.code();
        let full = e.chain_text();
        let message = bounded(&full, MAX_STATUS_MESSAGE_BYTES).into_owned();
        // Inside the handler's span, so the log line names the call.
        if code == Code::Internal {
            tracing::error!(error = %full, "internal error");
        } else if message != full {
            tracing::warn!(?code, message = %full, "error message cut for the status; whole text here");
        }
        let detail = |t: &str| bounded(t, MAX_DETAIL_TEXT_BYTES).into_owned();
        let (domain, reason) = e.domain_and_reason();
        let mut details = ErrorDetails::with_error_info(reason, domain, e.metadata());
        match &e {
            Error::InvalidArgument(violations) => {
                // Headers stay small (grpc-python refuses more than 16 KiB
                // of metadata): the first violations up to a byte budget,
                // then one row saying how many more the log holds.
                let mut used = 0;
                for (i, v) in violations.iter().enumerate() {
                    let (field, reason) = (detail(&v.field), detail(&v.reason));
                    used += field.len() + reason.len();
                    if used > MAX_BAD_REQUEST_BYTES {
                        let more = violations.len() - i;
                        tracing::warn!(message = %full, "{more} violations left out of BadRequest");
                        details.add_bad_request_violation(
                            "...",
                            format!("{more} more violations; the server log has them all"),
                        );
                        break;
                    }
                    details.add_bad_request_violation(field, reason);
                }
            }
            _ if code == Code::Unavailable => {
                details.set_retry_info(Some(RETRY_DELAY));
            }
            _ => {}
        }
        Status::with_error_details(code, message, details)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn bounded_cuts_on_a_char_boundary_and_says_so() {
        assert_eq!(bounded("short", 100), "short");
        let exact = "x".repeat(100);
        assert_eq!(bounded(&exact, 100), exact);
        // 'é' is two bytes: no cut may split one.
        let long = "é".repeat(10_000);
        let cut = bounded(&long, MAX_STATUS_MESSAGE_BYTES);
        assert!(wire_len(&cut) <= MAX_STATUS_MESSAGE_BYTES, "{}", cut.len());
        assert!(
            wire_len(&cut) > MAX_STATUS_MESSAGE_BYTES - 100,
            "not cut too short"
        );
        assert!(cut.starts_with("éé"));
        let kept = cut.find(" ... [").unwrap();
        let more = long.len() - kept;
        assert!(
            cut.ends_with(&format!(
                " ... [{more} more bytes cut; the server log has the whole text]"
            )),
            "{cut}"
        );
        // Any length's marker fits in the room kept for it.
        let huge = "y".repeat(1 << 20);
        assert!(wire_len(&bounded(&huge, MAX_DETAIL_TEXT_BYTES)) <= MAX_DETAIL_TEXT_BYTES);
    }

    #[test]
    fn statuses_stay_small_whatever_the_input() {
        // Worst case for the header: bytes that percent-encoding triples.
        let echo = " %\"".repeat(20_000);
        let status = Status::from(Error::invalid(echo.clone(), echo.clone()));
        assert!(status.message().len() <= MAX_STATUS_MESSAGE_BYTES);
        let v = status.get_error_details();
        let v = &v.bad_request().unwrap().field_violations[0];
        assert!(v.field.len() <= MAX_DETAIL_TEXT_BYTES);
        assert!(v.description.len() <= MAX_DETAIL_TEXT_BYTES);
        let mut headers = http::HeaderMap::new();
        status.add_header(&mut headers).unwrap();
        let size: usize = headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len())
            .sum();
        assert!(size < 4096, "status headers are {size} bytes");
        let short = Status::from(Error::NotFound("no domain 'x'".into()));
        assert_eq!(short.message(), "no domain 'x'");
    }

    /// The ErrorInfo of `status` (every status must have one).
    fn info(status: &Status) -> tonic_types::ErrorInfo {
        status
            .get_error_details()
            .error_info()
            .cloned()
            .expect("error info")
    }

    /// Checks the code, ErrorInfo domain and reason of an own error.
    fn own(e: Error, code: Code, reason: &str) -> tonic_types::ErrorInfo {
        let status = Status::from(e);
        assert_eq!(status.code(), code, "{reason}");
        let i = info(&status);
        assert_eq!(i.domain, SERVER_ERROR_DOMAIN, "{reason}");
        assert_eq!(i.reason, reason);
        let details = status.get_error_details();
        assert_eq!(
            details.retry_info().is_some(),
            code == Code::Unavailable,
            "RetryInfo exactly on UNAVAILABLE ({reason})"
        );
        assert_eq!(
            details.bad_request().is_some(),
            reason == reason::INVALID_ARGUMENT,
            "BadRequest exactly on bad fields ({reason})"
        );
        i
    }

    #[test]
    fn own_reasons() {
        let i = own(
            Error::invalid("domain.uuid", "not a UUID"),
            Code::InvalidArgument,
            reason::INVALID_ARGUMENT,
        );
        assert!(i.metadata.is_empty());
        let i = own(
            Error::UnknownHost("lab".into()),
            Code::NotFound,
            reason::UNKNOWN_HOST,
        );
        assert_eq!(i.metadata.get("host").map(String::as_str), Some("lab"));
        let down = Error::HostUnavailable {
            host: "lab".into(),
            reason: "r".into(),
        };
        let i = own(down, Code::Unavailable, reason::HOST_UNAVAILABLE);
        assert_eq!(i.metadata.get("host").map(String::as_str), Some("lab"));
        let i = own(
            Error::host_deadline("lab"),
            Code::DeadlineExceeded,
            reason::DEADLINE_EXCEEDED,
        );
        assert_eq!(i.metadata.get("host").map(String::as_str), Some("lab"));
        let i = own(
            Error::deadline("the guest agent"),
            Code::DeadlineExceeded,
            reason::DEADLINE_EXCEEDED,
        );
        assert!(i.metadata.is_empty());
        own(
            Error::OperationInvalid("domain 'x' is already running".into()),
            Code::FailedPrecondition,
            reason::OPERATION_INVALID,
        );
        own(
            Error::FailedPrecondition("x".into()),
            Code::FailedPrecondition,
            reason::FAILED_PRECONDITION,
        );
        own(
            Error::Unimplemented("x".into()),
            Code::Unimplemented,
            reason::UNIMPLEMENTED,
        );
        own(
            Error::NotFound("x".into()),
            Code::NotFound,
            reason::NOT_FOUND,
        );
        own(
            Error::StreamIdle(Duration::from_secs(30)),
            Code::Aborted,
            reason::STREAM_IDLE,
        );
        own(Error::Aborted("x".into()), Code::Aborted, reason::ABORTED);
        own(
            Error::LimitReached("x".into()),
            Code::ResourceExhausted,
            reason::LIMIT_REACHED,
        );
        own(
            Error::ShuttingDown,
            Code::Unavailable,
            reason::SERVER_SHUTTING_DOWN,
        );
        own(
            Error::OutOfRange("x".into()),
            Code::OutOfRange,
            reason::OUT_OF_RANGE,
        );
        own(Error::internal("x"), Code::Internal, reason::INTERNAL);
    }

    #[test]
    fn reasons_are_upper_snake_case() {
        for r in [
            reason::INVALID_ARGUMENT,
            reason::UNKNOWN_HOST,
            reason::HOST_UNAVAILABLE,
            reason::DEADLINE_EXCEEDED,
            reason::OPERATION_INVALID,
            reason::FAILED_PRECONDITION,
            reason::UNIMPLEMENTED,
            reason::NOT_FOUND,
            reason::OUT_OF_RANGE,
            reason::STREAM_IDLE,
            reason::ABORTED,
            reason::LIMIT_REACHED,
            reason::SERVER_SHUTTING_DOWN,
            reason::INTERNAL,
            names::UNKNOWN_CODE,
            names::code_name(virt::sys::VIR_ERR_OPERATION_INVALID),
        ] {
            // AIP-193: [A-Z][A-Z0-9_]+[A-Z0-9], at most 63 characters.
            let ok = r.len() <= 63
                && r.starts_with(|c: char| c.is_ascii_uppercase())
                && r.ends_with(|c: char| c.is_ascii_uppercase() || c.is_ascii_digit())
                && r.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            assert!(ok, "{r}");
        }
    }

    #[test]
    fn libvirt_metadata_names_the_domain() {
        let m = libvirt_metadata(virt::sys::VIR_ERR_NO_DOMAIN, virt::sys::VIR_FROM_QEMU);
        assert_eq!(m.get("libvirt_code").map(String::as_str), Some("42"));
        assert_eq!(m.get("libvirt_domain").map(String::as_str), Some("QEMU"));
        assert_eq!(m.get("libvirt_domain_code").map(String::as_str), Some("10"));
    }

    #[test]
    fn libvirt_errors_carry_their_names_and_host() {
        // A real libvirt error from the in-process test driver.
        let conn = virt::connect::Connect::open(Some("test:///default")).unwrap();
        let e = conn.lookup_domain_by_name("no-such-domain").unwrap_err();
        let domain = e.domain().to_raw();
        let status = Status::from(Error::from(e).on_host("local"));
        assert_eq!(status.code(), Code::NotFound);
        let i = info(&status);
        assert_eq!(i.domain, LIBVIRT_ERROR_DOMAIN);
        assert_eq!(i.reason, "NO_DOMAIN");
        assert_eq!(
            i.metadata.get("libvirt_code").map(String::as_str),
            Some("42")
        );
        assert_eq!(
            i.metadata.get("libvirt_domain").map(String::as_str),
            Some(names::domain_name(domain))
        );
        assert_ne!(names::domain_name(domain), names::UNKNOWN_DOMAIN);
        assert_eq!(i.metadata.get("host").map(String::as_str), Some("local"));
        // A host already recorded is kept.
        let e = Error::UnknownHost("a".into()).on_host("b");
        assert!(matches!(e, Error::UnknownHost(h) if h == "a"));
    }

    #[test]
    fn every_violation_is_one_bad_request_row() {
        let mut v = crate::validate::Violations::default();
        v.check(crate::validate::required_text("name", ""));
        v.check(Err::<(), _>(Error::UnknownHost("h".into())));
        v.add("path", "must be absolute");
        let e = v.finish().unwrap_err();
        assert_eq!(
            e.to_string(),
            "Invalid name: is required; invalid path: must be absolute"
        );
        let status = Status::from(e);
        assert_eq!(status.code(), Code::InvalidArgument);
        let bad = status.get_details_bad_request().expect("BadRequest");
        let fields: Vec<_> = bad
            .field_violations
            .iter()
            .map(|f| f.field.as_str())
            .collect();
        assert_eq!(fields, ["name", "path"]);
        // With no bad field, the other error is the answer.
        let mut v = crate::validate::Violations::default();
        v.check(Err::<(), _>(Error::UnknownHost("h".into())));
        assert_eq!(v.finish().unwrap_err().code(), Code::NotFound);
        assert!(crate::validate::Violations::default().finish().is_ok());
    }

    #[test]
    fn a_bad_request_stays_small() {
        let mut v = crate::validate::Violations::default();
        for i in 0..10_000 {
            v.add(format!("types[{i}]"), "unknown pool type 99");
        }
        let status = Status::from(v.finish().unwrap_err());
        let bad = status.get_details_bad_request().expect("BadRequest");
        assert!(
            bad.field_violations.len() < 100,
            "{}",
            bad.field_violations.len()
        );
        let last = bad.field_violations.last().expect("rows");
        assert!(last.description.contains("more violations"), "{last:?}");
        assert!(status.details().len() < 4096, "{}", status.details().len());
    }

    #[test]
    fn internal_errors_keep_their_source() {
        let cause = std::io::Error::other("disk on fire");
        let e = Error::internal_from("cannot render XML", cause);
        assert_eq!(e.to_string(), "Internal error: cannot render XML");
        let source = std::error::Error::source(&e).expect("source");
        assert_eq!(source.to_string(), "disk on fire");
        // The status shows the whole chain.
        let status = Status::from(e);
        assert_eq!(
            status.message(),
            "Internal error: cannot render XML: disk on fire"
        );
    }

    #[test]
    fn own_errors() {
        assert_eq!(Error::invalid("f", "bad").code(), Code::InvalidArgument);
        assert_eq!(Error::UnknownHost("h".into()).code(), Code::NotFound);
        let down = Error::HostUnavailable {
            host: "h".into(),
            reason: "r".into(),
        };
        assert_eq!(down.code(), Code::Unavailable);
        assert_eq!(Error::host_deadline("h").code(), Code::DeadlineExceeded);
        assert_eq!(Error::Unimplemented("x".into()).code(), Code::Unimplemented);
        assert_eq!(
            Error::FailedPrecondition("x".into()).code(),
            Code::FailedPrecondition
        );
        let status = Status::from(Error::invalid("domain.uuid", "not a UUID"));
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let v = details.bad_request().expect("bad request detail");
        assert_eq!(v.field_violations[0].field, "domain.uuid");
    }
}
