//! The server's one error type and the table that turns it into a gRPC status.
//!
//! libvirt's error code decides the gRPC code; libvirt's message is kept as
//! the status message, and the libvirt code and domain travel as a
//! `google.rpc.ErrorInfo` detail so that clients can branch on them without
//! parsing text.

use std::{collections::HashMap, time::Duration};

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use virt::sys;

/// The `domain` of the `google.rpc.ErrorInfo` detail attached to statuses.
pub const ERROR_INFO_DOMAIN: &str = "libvirt.org";

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

/// Everything that can go wrong while serving a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// libvirt refused or failed the call.
    #[error("{}", .0.message())]
    Libvirt(virt::error::Error),
    /// A request field is missing or malformed.
    #[error("Invalid {field}: {reason}")]
    InvalidArgument {
        /// The offending field, e.g. `domain.uuid`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
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
    /// The request's deadline passed before libvirt answered.
    #[error("Deadline exceeded while waiting for host '{0}'")]
    DeadlineExceeded(String),
    /// The object exists but is not in a state that allows the call.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The host's driver cannot do this at all.
    #[error("{0}")]
    Unimplemented(String),
    /// An object was not found (outside libvirt's own lookups).
    #[error("{0}")]
    NotFound(String),
    /// The object a call would create exists already (outside libvirt's
    /// own checks).
    #[error("{0}")]
    AlreadyExists(String),
    /// A bug or an unexpected answer; the message says which.
    #[error("Internal error: {0}")]
    Internal(String),
}

impl Error {
    /// An `InvalidArgument` for `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Whether this error means the connection to libvirt is broken (as
    /// opposed to libvirt answering "no").
    pub fn is_connection_failure(&self) -> bool {
        match self {
            Error::Libvirt(e) => is_connection_error(e),
            Error::HostUnavailable { .. } => true,
            _ => false,
        }
    }
}

impl From<virt::error::Error> for Error {
    fn from(e: virt::error::Error) -> Self {
        Error::Libvirt(e)
    }
}

/// Whether a libvirt error says the connection itself failed.
pub(crate) fn is_connection_error(e: &virt::error::Error) -> bool {
    is_connection_code(e.code().to_raw(), e.domain().to_raw(), e.message())
}

fn is_connection_code(code: u32, domain: u32, message: &str) -> bool {
    matches!(code, sys::VIR_ERR_NO_CONNECT | sys::VIR_ERR_INVALID_CONN)
        || (code == sys::VIR_ERR_SYSTEM_ERROR && domain == sys::VIR_FROM_RPC)
        || (code == sys::VIR_ERR_INTERNAL_ERROR
            && domain == sys::VIR_FROM_RPC
            && message.contains("closed"))
}

/// Whether libvirt reports the guest agent refusing a command, or the
/// domain having no agent channel at all. libvirt 9.0 reports an agent's
/// error answer as INTERNAL_ERROR ("unable to execute QEMU agent command
/// 'x': <the agent's message>") and a missing channel as
/// ARGUMENT_UNSUPPORTED ("QEMU guest agent is not configured"); neither is
/// a server bug or a driver gap, and retrying does not help.
fn is_agent_refusal(code: u32, message: &str) -> bool {
    (code == sys::VIR_ERR_INTERNAL_ERROR
        && message.contains("unable to execute QEMU agent command"))
        || (code == sys::VIR_ERR_ARGUMENT_UNSUPPORTED
            && message.contains("guest agent is not configured"))
}

/// Caller mistakes libvirt reports without a code of their own, each seen
/// on libvirt 9.0 and narrowed to the code (and domain) it came with:
///
/// - a path that does not exist (restore from a missing file, start a pool
///   whose directory is missing): SYSTEM_ERROR ending in ENOENT's text;
/// - a volume or file larger than the file system holds: SYSTEM_ERROR
///   ending in ENOSPC's or EFBIG's text (RESOURCE_EXHAUSTED);
/// - a directory where a file belongs or the reverse (restore from a
///   directory on the test driver): SYSTEM_ERROR ending in EISDIR/ENOTDIR;
/// - restore from a file that is not a QEMU save image: OPERATION_FAILED
///   from the QEMU driver ("image magic is incorrect", or "failed to read
///   qemu header" for an empty file or a directory);
/// - a pool whose source or target another pool already uses:
///   OPERATION_FAILED from the storage driver ("Storage source conflict").
fn caller_mistake(code: u32, domain: u32, message: &str) -> Option<Code> {
    match code {
        sys::VIR_ERR_SYSTEM_ERROR if message.ends_with(": No such file or directory") => {
            Some(Code::NotFound)
        }
        sys::VIR_ERR_SYSTEM_ERROR
            if message.ends_with(": Is a directory") || message.ends_with(": Not a directory") =>
        {
            Some(Code::InvalidArgument)
        }
        // A volume (or save image) larger than the file system has room
        // for: the request asked for more than the host holds.
        sys::VIR_ERR_SYSTEM_ERROR
            if message.ends_with(": No space left on device")
                || message.ends_with(": File too large") =>
        {
            Some(Code::ResourceExhausted)
        }
        sys::VIR_ERR_OPERATION_FAILED
            if domain == sys::VIR_FROM_QEMU
                && (message.contains("image magic is incorrect")
                    || message.contains("failed to read qemu header")) =>
        {
            Some(Code::InvalidArgument)
        }
        sys::VIR_ERR_OPERATION_FAILED
            if domain == sys::VIR_FROM_STORAGE && message.contains("Storage source conflict") =>
        {
            Some(Code::AlreadyExists)
        }
        // The test driver's pools hold a fixed size.
        sys::VIR_ERR_INTERNAL_ERROR if message.contains("Not enough free space in pool") => {
            Some(Code::ResourceExhausted)
        }
        // A clone or create onto a volume name the pool already holds.
        sys::VIR_ERR_INTERNAL_ERROR | sys::VIR_ERR_OPERATION_FAILED
            if (domain == sys::VIR_FROM_STORAGE || domain == sys::VIR_FROM_TEST)
                && (message.contains("already in use") || message.contains("already exists")) =>
        {
            Some(Code::AlreadyExists)
        }
        // Restore from a file that is not a save image (the test driver).
        _ if domain == sys::VIR_FROM_TEST
            && (message.contains("incomplete save header")
                || message.contains("mismatched header magic")) =>
        {
            Some(Code::InvalidArgument)
        }
        // An offset past what the file system can seek to (volume upload
        // or download at an offset beyond the largest file).
        sys::VIR_ERR_SYSTEM_ERROR
            if message.starts_with("Unable to seek") && message.ends_with(": Invalid argument") =>
        {
            Some(Code::InvalidArgument)
        }
        // QEMU itself refused to start this definition on this host (a
        // directory as kernel or disk, guest memory the host cannot map, an
        // address it cannot listen on): QEMU's own message follows.
        sys::VIR_ERR_INTERNAL_ERROR | sys::VIR_ERR_OPERATION_FAILED
            if domain == sys::VIR_FROM_QEMU
                && (message.contains("qemu unexpectedly closed the monitor")
                    || message.contains("process exited while connecting to monitor")) =>
        {
            if message.contains("Cannot allocate memory") {
                Some(Code::ResourceExhausted)
            } else {
                Some(Code::FailedPrecondition)
            }
        }
        // More PCI devices than the machine type has slots for.
        sys::VIR_ERR_INTERNAL_ERROR if message.contains("PCI slot is needed") => {
            Some(Code::InvalidArgument)
        }
        _ => None,
    }
}

/// The gRPC code for a libvirt error: the table of DESIGN.md.
pub(crate) fn code_for_libvirt(e: &virt::error::Error) -> Code {
    code_for(e.code().to_raw(), e.domain().to_raw(), e.message())
}

/// The table itself, on libvirt's raw error code, domain and message.
fn code_for(code: u32, domain: u32, message: &str) -> Code {
    if is_connection_code(code, domain, message) {
        return Code::Unavailable;
    }
    if is_agent_refusal(code, message) {
        return Code::FailedPrecondition;
    }
    if let Some(c) = caller_mistake(code, domain, message) {
        return c;
    }
    match code {
        sys::VIR_ERR_NO_DOMAIN
        | sys::VIR_ERR_NO_NETWORK
        | sys::VIR_ERR_NO_STORAGE_POOL
        | sys::VIR_ERR_NO_STORAGE_VOL
        | sys::VIR_ERR_NO_DOMAIN_SNAPSHOT
        | sys::VIR_ERR_NO_DOMAIN_METADATA
        | sys::VIR_ERR_NO_INTERFACE
        | sys::VIR_ERR_NO_SECRET
        | sys::VIR_ERR_NO_NODE_DEVICE
        | sys::VIR_ERR_NO_NWFILTER
        | sys::VIR_ERR_NO_DOMAIN_CHECKPOINT
        | sys::VIR_ERR_NO_NETWORK_PORT
        | sys::VIR_ERR_DEVICE_MISSING
        | sys::VIR_ERR_NO_HOSTNAME => Code::NotFound,
        sys::VIR_ERR_DOM_EXIST
        | sys::VIR_ERR_NETWORK_EXIST
        | sys::VIR_ERR_STORAGE_VOL_EXIST
        | sys::VIR_ERR_NETWORK_PORT_EXIST => Code::AlreadyExists,
        // virCheckFlags reports flags a driver lacks as INVALID_ARG; the
        // caller did nothing wrong, the driver cannot do it.
        sys::VIR_ERR_INVALID_ARG if message.starts_with("unsupported flags") => Code::Unimplemented,
        sys::VIR_ERR_XML_ERROR
        | sys::VIR_ERR_XML_DETAIL
        | sys::VIR_ERR_XML_INVALID_SCHEMA
        | sys::VIR_ERR_INVALID_ARG
        | sys::VIR_ERR_INVALID_MAC
        | sys::VIR_ERR_CONFIG_UNSUPPORTED
        | sys::VIR_ERR_NO_NAME
        | sys::VIR_ERR_OVERFLOW => Code::InvalidArgument,
        sys::VIR_ERR_OPERATION_INVALID | sys::VIR_ERR_AGENT_COMMAND_FAILED => {
            Code::FailedPrecondition
        }
        sys::VIR_ERR_NO_SUPPORT
        | sys::VIR_ERR_ARGUMENT_UNSUPPORTED
        | sys::VIR_ERR_OPERATION_UNSUPPORTED => Code::Unimplemented,
        sys::VIR_ERR_OPERATION_DENIED
        | sys::VIR_ERR_AUTH_FAILED
        | sys::VIR_ERR_AUTH_CANCELLED
        | sys::VIR_ERR_ACCESS_DENIED => Code::PermissionDenied,
        sys::VIR_ERR_AGENT_UNRESPONSIVE | sys::VIR_ERR_AGENT_UNSYNCED => Code::Unavailable,
        sys::VIR_ERR_OPERATION_TIMEOUT | sys::VIR_ERR_AGENT_COMMAND_TIMEOUT => {
            Code::DeadlineExceeded
        }
        _ if message.contains("already exists") => Code::AlreadyExists,
        _ => Code::Internal,
    }
}

impl Error {
    /// The gRPC code this error is reported with.
    pub fn code(&self) -> Code {
        match self {
            Error::Libvirt(e) => code_for_libvirt(e),
            Error::InvalidArgument { .. } => Code::InvalidArgument,
            Error::UnknownHost(_) | Error::NotFound(_) => Code::NotFound,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::HostUnavailable { .. } => Code::Unavailable,
            Error::DeadlineExceeded(_) => Code::DeadlineExceeded,
            Error::FailedPrecondition(_) => Code::FailedPrecondition,
            Error::Unimplemented(_) => Code::Unimplemented,
            Error::Internal(_) => Code::Internal,
        }
    }
}

impl From<Error> for Status {
    /// The status for `e`, with its message and detail texts bounded by
    /// [`MAX_STATUS_MESSAGE_BYTES`] and [`MAX_DETAIL_TEXT_BYTES`].
    fn from(e: Error) -> Self {
        let code = e.code();
        let full = e.to_string();
        let message = bounded(&full, MAX_STATUS_MESSAGE_BYTES).into_owned();
        if message != full {
            // Inside the handler's span, so the log line names the call.
            tracing::warn!(?code, message = %full, "error message cut for the status; whole text here");
        }
        let detail = |t: &str| bounded(t, MAX_DETAIL_TEXT_BYTES).into_owned();
        match &e {
            Error::Libvirt(le) => {
                // The variant name, e.g. "NoDomain" for VIR_ERR_NO_DOMAIN.
                let reason = match le.code() {
                    virt::enumutil::Enum::Known(k) => format!("{k:?}"),
                    virt::enumutil::Enum::Unknown(v) => format!("Unknown{v}"),
                };
                let metadata = HashMap::from([
                    ("libvirt_code".to_owned(), le.code().to_raw().to_string()),
                    (
                        "libvirt_domain".to_owned(),
                        le.domain().to_raw().to_string(),
                    ),
                ]);
                Status::with_error_details(
                    code,
                    message,
                    ErrorDetails::with_error_info(detail(&reason), ERROR_INFO_DOMAIN, metadata),
                )
            }
            Error::InvalidArgument { field, reason } => Status::with_error_details(
                code,
                message,
                ErrorDetails::with_bad_request_violation(detail(field), detail(reason)),
            ),
            Error::HostUnavailable { .. } => Status::with_error_details(
                code,
                message,
                ErrorDetails::with_retry_info(Some(Duration::from_secs(1))),
            ),
            _ => Status::new(code, message),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn table() {
        let rows = [
            (sys::VIR_ERR_NO_DOMAIN, Code::NotFound),
            (sys::VIR_ERR_NO_NETWORK, Code::NotFound),
            (sys::VIR_ERR_NO_STORAGE_POOL, Code::NotFound),
            (sys::VIR_ERR_NO_STORAGE_VOL, Code::NotFound),
            (sys::VIR_ERR_NO_DOMAIN_SNAPSHOT, Code::NotFound),
            (sys::VIR_ERR_DOM_EXIST, Code::AlreadyExists),
            (sys::VIR_ERR_XML_ERROR, Code::InvalidArgument),
            (sys::VIR_ERR_XML_DETAIL, Code::InvalidArgument),
            (sys::VIR_ERR_INVALID_ARG, Code::InvalidArgument),
            (sys::VIR_ERR_NO_NAME, Code::InvalidArgument),
            (sys::VIR_ERR_OVERFLOW, Code::InvalidArgument),
            (sys::VIR_ERR_OPERATION_INVALID, Code::FailedPrecondition),
            (sys::VIR_ERR_NO_SUPPORT, Code::Unimplemented),
            (sys::VIR_ERR_OPERATION_DENIED, Code::PermissionDenied),
            (sys::VIR_ERR_AUTH_FAILED, Code::PermissionDenied),
            (sys::VIR_ERR_AGENT_UNRESPONSIVE, Code::Unavailable),
            (sys::VIR_ERR_NO_CONNECT, Code::Unavailable),
            (sys::VIR_ERR_OPERATION_TIMEOUT, Code::DeadlineExceeded),
            (sys::VIR_ERR_OPERATION_FAILED, Code::Internal),
        ];
        for (code, want) in rows {
            assert_eq!(
                code_for(code, sys::VIR_FROM_QEMU, "boom"),
                want,
                "libvirt code {code}"
            );
        }
    }

    #[test]
    fn agent_refusals_are_failed_preconditions() {
        let q = sys::VIR_FROM_QEMU;
        let refused = "internal error: unable to execute QEMU agent command 'guest-x': \
                       The command guest-x has not been found";
        assert_eq!(
            code_for(sys::VIR_ERR_INTERNAL_ERROR, q, refused),
            Code::FailedPrecondition
        );
        assert_eq!(
            code_for(sys::VIR_ERR_INTERNAL_ERROR, q, "internal error: other"),
            Code::Internal
        );
        let missing = "argument unsupported: QEMU guest agent is not configured";
        assert_eq!(
            code_for(sys::VIR_ERR_ARGUMENT_UNSUPPORTED, q, missing),
            Code::FailedPrecondition
        );
        assert_eq!(
            code_for(sys::VIR_ERR_ARGUMENT_UNSUPPORTED, q, "other"),
            Code::Unimplemented
        );
        let not_connected = "Guest agent is not responding: QEMU guest agent is not connected";
        assert_eq!(
            code_for(sys::VIR_ERR_AGENT_UNRESPONSIVE, q, not_connected),
            Code::Unavailable
        );
        assert_eq!(
            code_for(sys::VIR_ERR_AGENT_COMMAND_TIMEOUT, q, "x"),
            Code::DeadlineExceeded
        );
        assert_eq!(
            code_for(sys::VIR_ERR_AGENT_COMMAND_FAILED, q, "x"),
            Code::FailedPrecondition
        );
    }

    #[test]
    fn unsupported_flags_are_unimplemented() {
        let code = sys::VIR_ERR_INVALID_ARG;
        let msg = "unsupported flags (0x1) in function testDomainCreateXML";
        assert_eq!(code_for(code, 0, msg), Code::Unimplemented);
        assert_eq!(code_for(code, 0, "other"), Code::InvalidArgument);
    }

    #[test]
    fn already_exists_by_message() {
        let code = sys::VIR_ERR_OPERATION_FAILED;
        let msg = "operation failed: pool 'p' already exists with uuid 1";
        assert_eq!(code_for(code, 0, msg), Code::AlreadyExists);
    }

    #[test]
    fn missing_paths_are_not_found() {
        let sys_err = sys::VIR_ERR_SYSTEM_ERROR;
        let restore = "Failed to open file '/tmp/x.img': No such file or directory";
        assert_eq!(
            code_for(sys_err, sys::VIR_FROM_QEMU, restore),
            Code::NotFound
        );
        let pool = "cannot open directory '/tmp/x': No such file or directory";
        assert_eq!(code_for(sys_err, sys::VIR_FROM_NONE, pool), Code::NotFound);
        let test = "cannot read domain image '/tmp/x': No such file or directory";
        assert_eq!(code_for(sys_err, sys::VIR_FROM_TEST, test), Code::NotFound);
        // Other system errors stay internal.
        let denied = "cannot open directory '/x': Permission denied";
        assert_eq!(
            code_for(sys_err, sys::VIR_FROM_NONE, denied),
            Code::Internal
        );
        // The same text from the RPC layer is a lost daemon, not a path.
        let socket = "Failed to connect socket to '/run/x': No such file or directory";
        assert_eq!(
            code_for(sys_err, sys::VIR_FROM_RPC, socket),
            Code::Unavailable
        );
    }

    #[test]
    fn battery_findings_are_caller_mistakes() {
        let t = sys::VIR_FROM_TEST;
        let q = sys::VIR_FROM_QEMU;
        let st = sys::VIR_FROM_STORAGE;
        let int = sys::VIR_ERR_INTERNAL_ERROR;
        let failed = sys::VIR_ERR_OPERATION_FAILED;
        let rows = [
            (int, t, "internal error: Not enough free space in pool for volume 'big'", Code::ResourceExhausted),
            (int, st, "storage volume name 'v' already in use.", Code::AlreadyExists),
            (int, t, "storage volume name 'v' already in use.", Code::AlreadyExists),
            (int, t, "incomplete save header in '/dev/null'", Code::InvalidArgument),
            (sys::VIR_ERR_SYSTEM_ERROR, t, "incomplete save header in '/dev/null': Success", Code::InvalidArgument),
            (sys::VIR_ERR_SYSTEM_ERROR, st, "Unable to seek /p/v to 9223372036854775807: Invalid argument", Code::InvalidArgument),
            (int, q, "qemu unexpectedly closed the monitor: qemu-system-x86_64: -kernel /tmp: Is a directory", Code::FailedPrecondition),
            (failed, q, "process exited while connecting to monitor: qemu: cannot set up guest memory 'pc.ram': Cannot allocate memory", Code::ResourceExhausted),
            (int, q, "internal error: A PCI slot is needed to connect a PCI controller model='pci-bridge', but none is available", Code::InvalidArgument),
            (sys::VIR_ERR_DEVICE_MISSING, q, "device not found: disk sdb not found", Code::NotFound),
            (sys::VIR_ERR_NO_HOSTNAME, q, "no hostname found: no hostname found for domain d", Code::NotFound),
        ];
        for (code, domain, message, want) in rows {
            assert_eq!(code_for(code, domain, message), want, "{message}");
        }
        // Other internal errors of these domains stay internal.
        assert_eq!(code_for(int, q, "internal error: other"), Code::Internal);
        assert_eq!(code_for(int, st, "internal error: other"), Code::Internal);
    }

    #[test]
    fn full_file_systems_are_resource_exhausted() {
        let sys_err = sys::VIR_ERR_SYSTEM_ERROR;
        let full = "cannot allocate 966367641600 bytes in file '/p/v1': No space left on device";
        assert_eq!(
            code_for(sys_err, sys::VIR_FROM_STORAGE, full),
            Code::ResourceExhausted
        );
        let big = "cannot extend file '/p/v2': File too large";
        assert_eq!(
            code_for(sys_err, sys::VIR_FROM_STORAGE, big),
            Code::ResourceExhausted
        );
    }

    #[test]
    fn directories_for_files_are_invalid() {
        let sys_err = sys::VIR_ERR_SYSTEM_ERROR;
        let restore = "incomplete save header in '/tmp/d': Is a directory";
        assert_eq!(
            code_for(sys_err, sys::VIR_FROM_TEST, restore),
            Code::InvalidArgument
        );
        let pool = "cannot open directory '/tmp/f': Not a directory";
        assert_eq!(
            code_for(sys_err, sys::VIR_FROM_NONE, pool),
            Code::InvalidArgument
        );
    }

    #[test]
    fn restore_from_a_non_image_is_invalid() {
        let failed = sys::VIR_ERR_OPERATION_FAILED;
        let q = sys::VIR_FROM_QEMU;
        let magic = "operation failed: image magic is incorrect";
        assert_eq!(code_for(failed, q, magic), Code::InvalidArgument);
        let header = "operation failed: failed to read qemu header";
        assert_eq!(code_for(failed, q, header), Code::InvalidArgument);
        // Only from the QEMU driver.
        assert_eq!(
            code_for(failed, sys::VIR_FROM_STORAGE, header),
            Code::Internal
        );
    }

    #[test]
    fn storage_source_conflict_is_already_exists() {
        let failed = sys::VIR_ERR_OPERATION_FAILED;
        let msg = "operation failed: Storage source conflict with pool: 'p'";
        assert_eq!(
            code_for(failed, sys::VIR_FROM_STORAGE, msg),
            Code::AlreadyExists
        );
        assert_eq!(code_for(failed, sys::VIR_FROM_QEMU, msg), Code::Internal);
    }

    #[test]
    fn lost_connection_is_unavailable() {
        let code = sys::VIR_ERR_SYSTEM_ERROR;
        let rpc = sys::VIR_FROM_RPC;
        assert_eq!(
            code_for(code, rpc, "End of file while reading data"),
            Code::Unavailable
        );
        assert_eq!(code_for(code, sys::VIR_FROM_QEMU, "x"), Code::Internal);
    }

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

    #[test]
    fn own_errors() {
        assert_eq!(Error::invalid("f", "bad").code(), Code::InvalidArgument);
        assert_eq!(Error::UnknownHost("h".into()).code(), Code::NotFound);
        let down = Error::HostUnavailable {
            host: "h".into(),
            reason: "r".into(),
        };
        assert_eq!(down.code(), Code::Unavailable);
        assert_eq!(
            Error::DeadlineExceeded("h".into()).code(),
            Code::DeadlineExceeded
        );
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
