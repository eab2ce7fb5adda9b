//! Peeks: bytes of a disk or of guest memory, at most
//! [`MAX_PEEK_BYTES`] a call (libvirt's own cap over its remote protocol).

use virt::sys;

use super::{
    domain::{lookup, DomainKey},
    Connect,
};
use crate::{error::Error, libvirt_sys};

/// Most bytes one peek reads (libvirt's VIR_NET_MESSAGE_MAX-derived
/// REMOTE_DOMAIN_BLOCK_PEEK_BUFFER_MAX and ..._MEMORY_PEEK_BUFFER_MAX).
pub const MAX_PEEK_BYTES: u64 = 65_536;

/// How a memory peek's address is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressSpace {
    /// Guest physical addresses.
    Physical,
    /// Guest virtual addresses.
    Virtual,
}

/// What libvirt reports for a block peek it cannot serve, as the API's
/// code: a range past the end of the disk is OUT_OF_RANGE, an image format
/// libvirt cannot read this way FAILED_PRECONDITION (both keep libvirt's
/// text); a disk name libvirt does not know NOT_FOUND.
fn block_peek_error(disk: &str, e: Error) -> Error {
    let Error::Libvirt { error, .. } = &e else {
        return e;
    };
    let msg = error.message();
    let code = error.code().to_raw();
    if code == sys::VIR_ERR_INVALID_ARG && msg.contains("has only") {
        return Error::OutOfRange(msg.to_owned());
    }
    if msg.contains("format") && msg.contains("raw") {
        return Error::FailedPrecondition(msg.to_owned());
    }
    if code == sys::VIR_ERR_INVALID_ARG && msg.contains("not found") {
        return Error::NotFound(format!("The domain has no disk '{disk}': {msg}"));
    }
    e
}

/// `size` bytes of disk `disk` from `offset`.
pub fn block(
    conn: &Connect,
    key: &DomainKey,
    disk: &str,
    offset: u64,
    size: usize,
) -> Result<Vec<u8>, Error> {
    let dom = lookup(conn, key)?;
    libvirt_sys::internals::block_peek(&dom, disk, offset, size)
        .map_err(|e| block_peek_error(disk, e))
}

/// `size` bytes of guest memory from `address`.
pub fn memory(
    conn: &Connect,
    key: &DomainKey,
    address: u64,
    size: usize,
    space: AddressSpace,
) -> Result<Vec<u8>, Error> {
    let dom = lookup(conn, key)?;
    let flags = match space {
        AddressSpace::Physical => sys::VIR_MEMORY_PHYSICAL,
        AddressSpace::Virtual => sys::VIR_MEMORY_VIRTUAL,
    };
    libvirt_sys::internals::memory_peek(&dom, address, size, flags)
}
