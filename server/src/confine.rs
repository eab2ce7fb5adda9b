//! Confinement: which host paths a caller may make libvirt use, and which
//! parts of libvirt XML only an admin may send.
//!
//! libvirtd runs as root: every path a request names (a save image, a pool
//! target, a disk source in raw XML) is a file libvirtd reads or writes for
//! the caller. One setting, `host_path_roots` (default
//! [`DEFAULT_ROOT`], a directory of the server's own), lists the
//! directories such paths must lie under.
//!
//! **The path rules** ([`Confinement::check_path`]):
//! 1. The path is absolute; normalised lexically (`.` components, repeated
//!    and trailing `/` dropped). A `..` component is refused wherever it
//!    stands, even where it would stay inside a root: after a symlink the
//!    kernel's `..` is not the lexical one, and libvirt gets the path as
//!    sent.
//! 2. The normalised path is a root or lies below one, component by
//!    component (`/var/lib/libvirt-grpc2` is not below
//!    `/var/lib/libvirt-grpc`).
//! 3. For a host whose libvirtd runs on this machine ([`Reach::Local`]: a
//!    URI without a remote host part, `qemu:///system`, `test:///default`),
//!    the server also resolves symlinks: the longest existing ancestor of
//!    the path is canonicalised (the rest does not exist, so holds no
//!    symlink) and must still lie below a root (each root resolved the
//!    same way). A dangling symlink, or an ancestor the server cannot
//!    inspect, is refused: what cannot be checked is not allowed.
//! 4. For a remote libvirtd (`qemu+ssh://host/system`, `qemu+tcp://...`)
//!    only rules 1 and 2 are possible: the server cannot see that host's
//!    files, so a symlink there that leads out of a root is not detected.
//!    Keep the roots on such hosts free of symlinks that callers could
//!    plant (libvirt itself creates none).
//!
//! The check runs before any libvirt call; a symlink swapped in between the
//! check and libvirt's open is outside what the server can prevent (only a
//! user with shell access to the host could do that).
//!
//! **Who is checked.** Paths a request names in its own fields
//! (`SaveDomain.path`, `RestoreDomain.path`, pool target paths from a spec
//! or raw XML) are checked for every caller, admins included. Raw XML and
//! specs that point libvirt at host files ([`Confinement::check_xml`],
//! [`Confinement::check_domain_spec`]) are checked for callers below
//! `admin`, who may also not send libvirt's command-line passthrough
//! namespaces or graphics that listen beyond loopback without a password.
//! A refusal is `PERMISSION_DENIED` with an `ErrorInfo` reason
//! [`PATH_OUTSIDE_ROOTS`] or [`ADMIN_ONLY_XML`].

use std::{
    collections::HashMap,
    path::{Component, Path, PathBuf},
};

use libvirt_grpc::v1;
use quick_xml::{
    escape::{resolve_predefined_entity, unescape},
    events::{BytesStart, Event},
    name::ResolveResult,
    NsReader,
};

use crate::{auth::Role, error::Error, validate};

/// The default (and only, unless configured) root: a directory of the
/// server's own, not the whole file system.
pub const DEFAULT_ROOT: &str = "/var/lib/libvirt-grpc";

/// `ErrorInfo.reason` of a host path outside every root.
pub const PATH_OUTSIDE_ROOTS: &str = "PATH_OUTSIDE_ROOTS";

/// `ErrorInfo.reason` of XML only an admin may send.
pub const ADMIN_ONLY_XML: &str = "ADMIN_ONLY_XML";

/// Namespaces that pass text straight to the hypervisor or a helper run as
/// root: QEMU's command line (`<qemu:commandline>` ran `-D <any path>` as
/// root), LXC, bhyve and Xen passthrough, dnsmasq options (a
/// `dhcp-script` is run by root). Any element or attribute in one is
/// admin-only, whatever its prefix.
pub const PASSTHROUGH_NAMESPACES: &[&str] = &[
    "http://libvirt.org/schemas/domain/qemu/1.0",
    "http://libvirt.org/schemas/domain/lxc/1.0",
    "http://libvirt.org/schemas/domain/bhyve/1.0",
    "http://libvirt.org/schemas/domain/xen/1.0",
    "http://libvirt.org/schemas/network/dnsmasq/1.0",
];

/// Where a host's libvirtd keeps its files, as seen from this server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// On this machine: symlinks can be resolved.
    Local,
    /// On another machine: only the lexical check is possible.
    Remote,
}

impl Reach {
    /// The reach of a libvirt URI: local when it has no remote host part
    /// (`qemu:///system`, `qemu+unix:///system`, `test:///default`);
    /// remote otherwise, including a URI libvirt resolves through an alias
    /// (no `://`), whose target the server cannot know.
    pub fn of_uri(uri: &str) -> Reach {
        match uri.split_once("://") {
            Some((_, rest)) if rest.starts_with('/') => Reach::Local,
            _ => Reach::Remote,
        }
    }
}

/// Why a path is refused before any root is compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathProblem {
    /// Not absolute.
    NotAbsolute,
    /// Has a `..` component.
    ParentDir,
}

/// `path` normalised lexically: absolute, without `.` components, repeated
/// or trailing slashes; a `..` anywhere is refused (see the module doc).
pub fn normalise(path: &str) -> Result<PathBuf, PathProblem> {
    let p = Path::new(path);
    if !p.is_absolute() {
        return Err(PathProblem::NotAbsolute);
    }
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => return Err(PathProblem::ParentDir),
            Component::Normal(n) => out.push(n),
            Component::Prefix(_) => return Err(PathProblem::NotAbsolute),
        }
    }
    Ok(out)
}

/// Whether normalised `path` is `root` or lies below it, by component.
pub fn is_under(path: &Path, root: &Path) -> bool {
    path.starts_with(root)
}

/// `path` (normalised, absolute) with the symlinks of its longest existing
/// ancestor resolved; the components after it do not exist and are kept.
fn resolve_existing(path: &Path) -> std::io::Result<PathBuf> {
    let mut existing = path.to_path_buf();
    let mut missing = Vec::new();
    loop {
        match std::fs::symlink_metadata(&existing) {
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let Some(name) = existing.file_name().map(ToOwned::to_owned) else {
                    return Err(e);
                };
                missing.push(name);
                if !existing.pop() {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
    // A dangling symlink exists (lstat) but does not canonicalise: an error,
    // so it is refused rather than followed by libvirt to wherever it points.
    let mut resolved = std::fs::canonicalize(&existing)?;
    for name in missing.into_iter().rev() {
        resolved.push(name);
    }
    Ok(resolved)
}

/// A refused request: the `PERMISSION_DENIED` error's message, reason and
/// `ErrorInfo` metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The whole message.
    pub message: String,
    /// [`PATH_OUTSIDE_ROOTS`] or [`ADMIN_ONLY_XML`].
    pub reason: &'static str,
    /// `field`, and `path` and `roots`, or `element` and `required_role`.
    pub metadata: HashMap<String, String>,
}

/// The configured roots and the checks against them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confinement {
    roots: Vec<PathBuf>,
}

impl Default for Confinement {
    fn default() -> Self {
        Confinement {
            roots: vec![PathBuf::from(DEFAULT_ROOT)],
        }
    }
}

/// Who is asking, for the checks that admins skip.
fn below_admin(role: Role) -> bool {
    role < Role::Admin
}

impl Confinement {
    /// Confinement to `roots`: at least one, each absolute and without
    /// `..` (the config's `host_path_roots`); kept normalised.
    pub fn new(roots: &[PathBuf]) -> Result<Self, String> {
        if roots.is_empty() {
            return Err("host_path_roots needs at least one directory".into());
        }
        let roots = roots
            .iter()
            .map(|r| {
                let text = r.to_string_lossy();
                normalise(&text).map_err(|p| match p {
                    PathProblem::NotAbsolute => {
                        format!("host_path_roots: '{text}' is not an absolute path")
                    }
                    PathProblem::ParentDir => {
                        format!("host_path_roots: '{text}' must not contain '..'")
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Confinement { roots })
    }

    /// The roots, normalised.
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    fn roots_text(&self) -> String {
        self.roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn outside(&self, field: &str, path: &str, why: String, bypass: bool) -> Error {
        let roots = self.roots_text();
        let mut message = format!(
            "Permission denied: {field}: '{path}' {why}; host paths must lie under host_path_roots ({roots})"
        );
        if bypass {
            message.push_str("; only a caller with role admin may name other paths");
        }
        let mut metadata = HashMap::from([
            ("field".to_owned(), field.to_owned()),
            ("path".to_owned(), path.to_owned()),
            ("roots".to_owned(), roots),
        ]);
        if bypass {
            metadata.insert("required_role".to_owned(), Role::Admin.to_string());
        }
        Error::Confined(Refusal {
            message,
            reason: PATH_OUTSIDE_ROOTS,
            metadata,
        })
    }

    /// Checks host path `path` of request field `field` against the roots
    /// (the rules of the module doc) for a host of `reach`. A malformed
    /// value (relative, NUL bytes, over 4096 bytes) is `INVALID_ARGUMENT`;
    /// a path that has `..` or leads out of every root is
    /// `PERMISSION_DENIED`.
    pub fn check_path(&self, field: &str, path: &str, reach: Reach) -> Result<(), Error> {
        self.path_rule(field, path, reach, false)
    }

    fn path_rule(&self, field: &str, path: &str, reach: Reach, bypass: bool) -> Result<(), Error> {
        validate::text(field, path)?;
        validate::max_bytes(field, path, validate::MAX_PATH_BYTES)?;
        let normal = match normalise(path) {
            Ok(p) => p,
            // A request field that is not absolute is malformed; a path in
            // XML that is not (libvirt would resolve it from its working
            // directory) is a way out of the roots.
            Err(PathProblem::NotAbsolute) if !bypass => {
                return Err(Error::invalid(
                    field,
                    format!("'{path}' is not an absolute path"),
                ))
            }
            Err(PathProblem::NotAbsolute) => {
                return Err(self.outside(field, path, "is not an absolute path".into(), bypass))
            }
            Err(PathProblem::ParentDir) => {
                return Err(self.outside(field, path, "contains '..'".into(), bypass))
            }
        };
        if !self.roots.iter().any(|r| is_under(&normal, r)) {
            return Err(self.outside(field, path, "is outside every root".into(), bypass));
        }
        if reach == Reach::Remote {
            return Ok(());
        }
        let resolved = resolve_existing(&normal).map_err(|e| {
            self.outside(
                field,
                path,
                format!("cannot be checked for symlinks ({e})"),
                bypass,
            )
        })?;
        let inside = self.roots.iter().any(|r| {
            resolve_existing(r)
                .map(|r| is_under(&resolved, &r))
                .unwrap_or(false)
        });
        if !inside {
            return Err(self.outside(
                field,
                path,
                format!(
                    "leads to '{}' through a symlink, outside every root",
                    resolved.display()
                ),
                bypass,
            ));
        }
        Ok(())
    }

    /// A host path from a spec or another request field that only admins
    /// may point anywhere (a DomainSpec's files, the emulator binary
    /// `GetDomainCapabilities` makes libvirt run): checked for callers
    /// below admin; empty passes.
    pub fn content_path(
        &self,
        role: Role,
        field: &str,
        path: &str,
        reach: Reach,
    ) -> Result<(), Error> {
        if !below_admin(role) || path.is_empty() {
            return Ok(());
        }
        self.path_rule(field, path, reach, true)
    }

    /// Checks a `DomainSpec` (request field `field`) for a caller of
    /// `role`: below admin, its disk sources, kernel, initrd and serial
    /// log must lie under the roots, and its graphics must listen on
    /// loopback (a spec has no password field).
    pub fn check_domain_spec(
        &self,
        field: &str,
        spec: &v1::DomainSpec,
        role: Role,
        reach: Reach,
    ) -> Result<(), Error> {
        if !below_admin(role) {
            return Ok(());
        }
        for (i, d) in spec.disks.iter().enumerate() {
            self.content_path(
                role,
                &format!("{field}.disks[{i}].source_path"),
                &d.source_path,
                reach,
            )?;
        }
        if let Some(boot) = &spec.boot {
            self.content_path(role, &format!("{field}.boot.kernel"), &boot.kernel, reach)?;
            self.content_path(role, &format!("{field}.boot.initrd"), &boot.initrd, reach)?;
        }
        self.content_path(
            role,
            &format!("{field}.serial_log_path"),
            &spec.serial_log_path,
            reach,
        )?;
        for (i, g) in spec.graphics.iter().enumerate() {
            // Empty renders as 127.0.0.1.
            if !g.listen.is_empty() && !is_loopback(&g.listen) {
                return Err(admin_only(
                    &format!("{field}.graphics[{i}].listen"),
                    "graphics",
                    &format!(
                        "listens on '{}', beyond loopback, without a password (a spec cannot set one)",
                        g.listen
                    ),
                    role,
                ));
            }
        }
        Ok(())
    }

    /// Checks raw libvirt XML (request field `field`) for a caller of
    /// `role`; admins pass. Below admin: every host path the document
    /// points libvirt at (see [`XmlDoc::host_paths`]) must lie under the
    /// roots, no element or attribute may be in a
    /// [`PASSTHROUGH_NAMESPACES`] namespace, and VNC, SPICE or RDP
    /// graphics listening beyond loopback need a password. A document
    /// quick-xml cannot read is `INVALID_ARGUMENT`.
    pub fn check_xml(&self, field: &str, xml: &str, role: Role, reach: Reach) -> Result<(), Error> {
        if !below_admin(role) {
            return Ok(());
        }
        let doc = XmlDoc::parse(field, xml)?;
        for i in 0..doc.nodes.len() {
            let n = &doc.nodes[i];
            if let Some(ns) = &n.ns {
                if PASSTHROUGH_NAMESPACES.contains(&ns.as_str()) {
                    return Err(admin_only(
                        field,
                        &doc.path_of(i),
                        &format!("is in namespace {ns}, which passes options to the hypervisor or a helper run as root"),
                        role,
                    ));
                }
            }
            if let Some(a) = n.attrs.iter().find(|a| {
                a.ns.as_deref()
                    .is_some_and(|ns| PASSTHROUGH_NAMESPACES.contains(&ns))
            }) {
                return Err(admin_only(
                    field,
                    &format!("{}@{}", doc.path_of(i), a.name),
                    "is in a namespace that passes options to the hypervisor",
                    role,
                ));
            }
            if let Some(why) = doc.open_graphics(i) {
                return Err(admin_only(field, &doc.path_of(i), &why, role));
            }
        }
        for (i, attr, path) in doc.host_paths() {
            // The element's place is spelled out only for a refusal.
            self.content_path(role, field, path, reach).map_err(|_| {
                let at = match attr {
                    Some(a) => format!("{}@{a}", doc.path_of(i)),
                    None => doc.path_of(i),
                };
                let field = format!("{field} <{at}>");
                match self.content_path(role, &field, path, reach) {
                    Err(e) => e,
                    Ok(()) => Error::internal("a refused path passed on the second check"),
                }
            })?;
        }
        Ok(())
    }

    /// The target path of pool XML, checked for every caller (a pool's
    /// directory is a path the caller names, like a save file).
    pub fn check_pool_xml_target(&self, field: &str, xml: &str, reach: Reach) -> Result<(), Error> {
        // Every `pool/target/path`, in any namespace, untrimmed: whichever
        // libvirt picks is checked, as it stands. Pools without a local
        // directory (rbd, iscsi-direct, gluster, logical's default
        // /dev/<vg>) have none.
        let doc = XmlDoc::parse(field, xml)?;
        for (i, n) in doc.nodes.iter().enumerate() {
            if doc.is_at(i, &["pool", "target", "path"]) && !n.text.trim().is_empty() {
                self.check_path(&format!("{field}.target.path"), &n.text, reach)?;
            }
        }
        Ok(())
    }
}

/// Whether a listen address is loopback: `127.0.0.0/8`, `::1`, or
/// `localhost`.
fn is_loopback(addr: &str) -> bool {
    let a = addr.trim().trim_start_matches('[').trim_end_matches(']');
    a.eq_ignore_ascii_case("localhost")
        || a.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn admin_only(field: &str, element: &str, why: &str, role: Role) -> Error {
    Error::Confined(Refusal {
        message: format!(
            "Permission denied: {field}: <{element}> {why}; this needs role admin (the caller is {role})"
        ),
        reason: ADMIN_ONLY_XML,
        metadata: HashMap::from([
            ("field".to_owned(), field.to_owned()),
            ("element".to_owned(), element.to_owned()),
            ("required_role".to_owned(), Role::Admin.to_string()),
        ]),
    })
}

/// One attribute, with its namespace resolved.
#[derive(Debug)]
struct XmlAttr {
    ns: Option<String>,
    name: String,
    value: String,
}

/// One element: its parent's index, namespace, local name, attributes and
/// the text directly inside it.
#[derive(Debug)]
struct XmlNode {
    parent: Option<usize>,
    /// One past the index of its last descendant.
    end: usize,
    ns: Option<String>,
    name: String,
    attrs: Vec<XmlAttr>,
    text: String,
}

/// A document read into a flat list of elements (no recursion: a deeply
/// nested document cannot exhaust the stack), namespaces resolved as
/// libvirt resolves them, by URI, never by prefix.
#[derive(Debug)]
struct XmlDoc {
    nodes: Vec<XmlNode>,
}

/// Text elements that name a host file, wherever they stand: the boot
/// files, firmware and emulator of a domain, an ACPI table, a host
/// device's block or char node.
const PATH_TEXT_ELEMENTS: &[&str] = &[
    "kernel",
    "initrd",
    "dtb",
    "loader",
    "nvram",
    "shim",
    "emulator",
    "bootloader",
    "table",
    "block",
    "char",
];

/// Attributes that name a host file or socket on any element but
/// `<target>` (whose attributes are guest-side: a filesystem's mount tag).
const PATH_ATTRIBUTES: &[&str] = &[
    "file",
    "dir",
    "path",
    "socket",
    "template",
    "evdev",
    "rendernode",
    "tap",
    "vhost",
];

/// Character devices whose `<source path>` libvirt allocates itself (a pty
/// in a live XML), not a path the caller chooses.
const SELF_ALLOCATED_CHARDEV_TYPES: &[&str] = &["pty"];

/// Host entropy sources an `<rng><backend model='random'>` may name
/// without being confined (libvirt's own default is /dev/urandom).
const RNG_DEVICES: &[&str] = &["/dev/random", "/dev/urandom", "/dev/hwrng"];

/// Deepest element nesting read: libxml2's own default limit (libvirt
/// refuses deeper documents anyway), well below where quick-xml's
/// namespace bookkeeping would overflow.
const MAX_DEPTH: usize = 256;

impl XmlDoc {
    fn parse(field: &str, xml: &str) -> Result<XmlDoc, Error> {
        let bad = |why: String| Error::invalid(field, format!("is not well-formed XML: {why}"));
        let mut reader = NsReader::from_str(xml);
        let mut nodes: Vec<XmlNode> = Vec::new();
        let mut open: Vec<usize> = Vec::new();
        loop {
            let (ns, event) = reader
                .read_resolved_event()
                .map_err(|e| bad(e.to_string()))?;
            let ns = namespace(field, ns)?;
            let empty = matches!(event, Event::Empty(_));
            match event {
                Event::Start(e) | Event::Empty(e) => {
                    let attrs = attributes(field, &reader, &e)?;
                    nodes.push(XmlNode {
                        parent: open.last().copied(),
                        end: nodes.len() + 1,
                        ns,
                        name: String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
                        attrs,
                        text: String::new(),
                    });
                    if !empty {
                        open.push(nodes.len() - 1);
                        if open.len() > MAX_DEPTH {
                            return Err(bad(format!(
                                "elements nest deeper than {MAX_DEPTH} levels"
                            )));
                        }
                    }
                }
                Event::End(_) => {
                    if let Some(i) = open.pop() {
                        nodes[i].end = nodes.len();
                    }
                }
                Event::Text(t) => {
                    if let Some(&i) = open.last() {
                        let raw = t.decode().map_err(|e| bad(e.to_string()))?;
                        let text = unescape(&raw).map_err(|e| bad(e.to_string()))?;
                        nodes[i].text.push_str(&text);
                    }
                }
                Event::GeneralRef(r) => {
                    if let Some(&i) = open.last() {
                        let name = r.decode().map_err(|e| bad(e.to_string()))?;
                        if let Some(s) = resolve_predefined_entity(&name) {
                            nodes[i].text.push_str(s);
                        } else if let Ok(Some(c)) = r.resolve_char_ref() {
                            nodes[i].text.push(c);
                        } else {
                            return Err(bad(format!("unknown entity '&{name};'")));
                        }
                    }
                }
                Event::CData(c) => {
                    if let Some(&i) = open.last() {
                        nodes[i].text.push_str(&String::from_utf8_lossy(&c));
                    }
                }
                Event::Eof => break,
                _ => {}
            }
        }
        Ok(XmlDoc { nodes })
    }

    /// Every value of attributes named `name`, in any namespace: libvirt
    /// reads attributes with `xmlGetProp`, which ignores namespaces, so
    /// `x:file` may be what it reads as `file`.
    fn attrs<'a>(&'a self, i: usize, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.nodes[i]
            .attrs
            .iter()
            .filter(move |a| a.name == name)
            .map(|a| a.value.as_str())
    }

    /// The first attribute named `name`, in any namespace (`xmlGetProp`'s
    /// answer).
    fn attr<'a>(&'a self, i: usize, name: &'a str) -> Option<&'a str> {
        self.attrs(i, name).next()
    }

    /// Whether element `i` stands at exactly `path` from the root.
    fn is_at(&self, i: usize, path: &[&str]) -> bool {
        let mut at = Some(i);
        for name in path.iter().rev() {
            match at {
                Some(j) if self.nodes[j].name == *name => at = self.nodes[j].parent,
                _ => return false,
            }
        }
        at.is_none()
    }

    /// `domain/devices/disk/source`, for messages.
    fn path_of(&self, i: usize) -> String {
        let mut names = vec![self.nodes[i].name.as_str()];
        let mut at = self.nodes[i].parent;
        while let Some(p) = at {
            names.push(self.nodes[p].name.as_str());
            at = self.nodes[p].parent;
        }
        names.reverse();
        names.join("/")
    }

    /// Every host path the document points libvirt at: element index,
    /// attribute name (`None`: the element's text) and value. Elements and
    /// attributes count in any namespace (libvirt matches many by local
    /// name), except inside a domain's or network's `<metadata>`, which
    /// libvirt stores without reading. The attributes of
    /// [`PATH_ATTRIBUTES`] (but a self-allocated pty's path and a netfs
    /// pool's remote export directory), a `dev` that is a path (a NIC's
    /// `dev` is a name) and any `dev` of a disk's, backing store's or
    /// mirror's `<source>` (relative, it is opened from libvirt's working
    /// directory), the text of [`PATH_TEXT_ELEMENTS`] and of `<path>`
    /// (pool target, volume backing store; a volume's own target path is
    /// chosen by libvirt and ignored), and an rng backend's device.
    fn host_paths(&self) -> Vec<(usize, Option<&str>, &str)> {
        let mut out = Vec::new();
        let mut opaque = vec![false; self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            let parent = n.parent.map(|p| &self.nodes[p]);
            opaque[i] = n.parent.is_some_and(|p| {
                opaque[p]
                    || (self.nodes[p].name == "metadata"
                        && self.nodes[p].parent.is_some_and(|g| {
                            matches!(self.nodes[g].name.as_str(), "domain" | "network")
                        }))
            });
            if opaque[i] {
                continue;
            }
            let in_pty = n.name == "source"
                && n.parent.is_some_and(|p| {
                    let mut types = self.attrs(p, "type").peekable();
                    types.peek().is_some()
                        && types.all(|t| SELF_ALLOCATED_CHARDEV_TYPES.contains(&t))
                });
            let remote_dir = self.is_at(i, &["pool", "source", "dir"]);
            let storage_source = n.name == "source"
                && parent
                    .is_some_and(|p| matches!(p.name.as_str(), "disk" | "backingStore" | "mirror"));
            if n.name != "target" && !in_pty && !remote_dir {
                for a in &n.attrs {
                    let is_path = PATH_ATTRIBUTES.contains(&a.name.as_str())
                        || (a.name == "dev" && (storage_source || a.value.starts_with('/')));
                    if is_path && !a.value.is_empty() {
                        out.push((i, Some(a.name.as_str()), a.value.as_str()));
                    }
                }
            }
            // Untrimmed: libvirt uses the text as it stands (with spaces
            // around it, a path is relative and refused).
            let text = n.text.as_str();
            if text.trim().is_empty() {
                continue;
            }
            let text_path = PATH_TEXT_ELEMENTS.contains(&n.name.as_str())
                || (n.name == "path" && !self.is_at(i, &["volume", "target", "path"]));
            let rng = n.name == "backend"
                && parent.is_some_and(|p| p.name == "rng")
                && !RNG_DEVICES.contains(&text);
            if text_path || rng {
                out.push((i, None, text));
            }
        }
        out
    }

    /// Why element `i` is graphics only an admin may send: VNC, SPICE or
    /// RDP listening beyond loopback (a `listen` attribute, a `<listen
    /// type='address'>` with an address, any `<listen type='network'>`)
    /// without a password. No listen address at all is the host's default
    /// (`vnc_listen`/`spice_listen` in qemu.conf, loopback unless the
    /// host's admin changed it).
    fn open_graphics(&self, i: usize) -> Option<String> {
        // Conservative where attributes repeat across namespaces: any
        // network type counts, a password only when every one is set.
        let n = &self.nodes[i];
        if n.name != "graphics" {
            return None;
        }
        let kind = self
            .attrs(i, "type")
            .find(|t| matches!(*t, "vnc" | "spice" | "rdp"))?;
        let mut passwords = self.attrs(i, "passwd").peekable();
        if passwords.peek().is_some() && passwords.all(|p| !p.is_empty()) {
            return None;
        }
        let mut beyond: Vec<String> = Vec::new();
        for l in self.attrs(i, "listen") {
            if !l.is_empty() && !is_loopback(l) {
                beyond.push(l.to_owned());
            }
        }
        for j in i + 1..n.end {
            if self.nodes[j].parent != Some(i) || self.nodes[j].name != "listen" {
                continue;
            }
            for t in self.attrs(j, "type") {
                if t == "network" {
                    beyond.push(format!(
                        "network '{}'",
                        self.attr(j, "network").unwrap_or_default()
                    ));
                }
            }
            for a in self.attrs(j, "address") {
                if !a.is_empty() && !is_loopback(a) {
                    beyond.push(a.to_owned());
                }
            }
        }
        beyond.first().map(|l| {
            format!("type '{kind}' listens on {l}, beyond loopback, without a password (passwd)")
        })
    }
}

/// The namespace URI of a resolved name; an undeclared prefix is refused
/// (libvirt would read the element as no namespace at all, and the check
/// must see what libvirt sees).
fn namespace(field: &str, r: ResolveResult<'_>) -> Result<Option<String>, Error> {
    match r {
        ResolveResult::Unbound => Ok(None),
        ResolveResult::Bound(ns) => Ok(Some(String::from_utf8_lossy(ns.as_ref()).into_owned())),
        ResolveResult::Unknown(p) => Err(Error::invalid(
            field,
            format!(
                "uses the undeclared namespace prefix '{}'",
                String::from_utf8_lossy(&p)
            ),
        )),
    }
}

fn attributes(
    field: &str,
    reader: &NsReader<&[u8]>,
    e: &BytesStart<'_>,
) -> Result<Vec<XmlAttr>, Error> {
    let bad = |why: String| Error::invalid(field, format!("is not well-formed XML: {why}"));
    let mut out = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|e| bad(e.to_string()))?;
        if a.key.as_namespace_binding().is_some() {
            continue;
        }
        let (ns, local) = reader.resolve_attribute(a.key);
        let ns = namespace(field, ns)?;
        let value = a.unescape_value().map_err(|e| bad(e.to_string()))?;
        out.push(XmlAttr {
            ns,
            name: String::from_utf8_lossy(local.as_ref()).into_owned(),
            value: value.into_owned(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn reason(e: Error) -> &'static str {
        match e {
            Error::Confined(r) => r.reason,
            other => panic!("not a refusal: {other:?}"),
        }
    }

    fn roots(r: &[&str]) -> Confinement {
        Confinement::new(&r.iter().map(PathBuf::from).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn the_normaliser_drops_dots_and_slashes_and_refuses_parent_dirs() {
        assert_eq!(normalise("/a/./b//c/").unwrap(), PathBuf::from("/a/b/c"));
        assert_eq!(normalise("/").unwrap(), PathBuf::from("/"));
        assert_eq!(normalise("/a/b/../c"), Err(PathProblem::ParentDir));
        assert_eq!(normalise("/.."), Err(PathProblem::ParentDir));
        assert_eq!(normalise("a/b"), Err(PathProblem::NotAbsolute));
        assert_eq!(normalise(""), Err(PathProblem::NotAbsolute));
    }

    #[test]
    fn a_root_contains_itself_and_its_children_but_not_its_namesakes() {
        let c = Confinement::default();
        let ok = |p: &str| c.check_path("path", p, Reach::Remote);
        assert!(ok("/var/lib/libvirt-grpc").is_ok());
        assert!(ok("/var/lib/libvirt-grpc/").is_ok());
        assert!(ok("/var/lib/libvirt-grpc/./a/b.img").is_ok());
        assert_eq!(
            reason(ok("/var/lib/libvirt-grpc2/a").unwrap_err()),
            PATH_OUTSIDE_ROOTS
        );
        assert_eq!(reason(ok("/var/lib").unwrap_err()), PATH_OUTSIDE_ROOTS);
        assert_eq!(
            reason(ok("/var/lib/libvirt-grpc/../../etc/shadow").unwrap_err()),
            PATH_OUTSIDE_ROOTS
        );
        assert_eq!(
            reason(ok("/var/lib/libvirt-grpc/a/../b").unwrap_err()),
            PATH_OUTSIDE_ROOTS
        );
        assert!(matches!(ok("relative.img"), Err(Error::InvalidArgument(_))));
        assert!(matches!(
            ok("/var/lib/libvirt-grpc/a\0b"),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn roots_must_be_absolute_and_present() {
        assert!(Confinement::new(&[]).is_err());
        assert!(Confinement::new(&[PathBuf::from("rel")]).is_err());
        assert!(Confinement::new(&[PathBuf::from("/a/../b")]).is_err());
        assert_eq!(roots(&["/a/b/"]).roots(), [PathBuf::from("/a/b")]);
    }

    #[test]
    fn local_hosts_resolve_symlinks_remote_ones_cannot() {
        let base = std::env::temp_dir().join(format!("lvg-confine-{}", std::process::id()));
        let root = base.join("root");
        let out = base.join("out");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::os::unix::fs::symlink(&out, root.join("link")).unwrap();
        std::os::unix::fs::symlink(out.join("nothing"), root.join("dangling")).unwrap();
        std::os::unix::fs::symlink(root.join("sub"), root.join("inner")).unwrap();
        let c = Confinement::new(std::slice::from_ref(&root)).unwrap();
        let p = |s: &str| root.join(s).display().to_string();
        let result = (
            c.check_path("path", &p("link/x.img"), Reach::Local),
            c.check_path("path", &p("link/x.img"), Reach::Remote),
            c.check_path("path", &p("dangling"), Reach::Local),
            c.check_path("path", &p("inner/x.img"), Reach::Local),
            c.check_path("path", &p("new/dir/x.img"), Reach::Local),
        );
        std::fs::remove_dir_all(&base).unwrap();
        assert_eq!(reason(result.0.unwrap_err()), PATH_OUTSIDE_ROOTS);
        assert!(result.1.is_ok(), "remote: lexical only");
        assert_eq!(reason(result.2.unwrap_err()), PATH_OUTSIDE_ROOTS);
        assert!(result.3.is_ok(), "a symlink inside the root is fine");
        assert!(result.4.is_ok());
    }

    #[test]
    fn uris_without_a_remote_host_are_local() {
        assert_eq!(Reach::of_uri("qemu:///system"), Reach::Local);
        assert_eq!(Reach::of_uri("qemu+unix:///system"), Reach::Local);
        assert_eq!(Reach::of_uri("test:///default"), Reach::Local);
        assert_eq!(Reach::of_uri("qemu+ssh://root@h/system"), Reach::Remote);
        assert_eq!(Reach::of_uri("qemu+tcp://h:16509/system"), Reach::Remote);
        assert_eq!(Reach::of_uri("myalias"), Reach::Remote);
    }

    const OP: Role = Role::Operator;

    fn xml_check(xml: &str, role: Role) -> Result<(), Error> {
        roots(&["/srv/vm"]).check_xml("xml", xml, role, Reach::Remote)
    }

    #[test]
    fn host_paths_in_xml_are_confined_below_admin() {
        let inside = "<domain><devices><disk type='file'><source file='/srv/vm/a.img'/>\
                      <target dev='vda'/></disk></devices></domain>";
        assert!(xml_check(inside, OP).is_ok());
        for outside in [
            "<domain><devices><disk type='file'><source file='/etc/shadow'/></disk></devices></domain>",
            "<domain><devices><disk type='block'><source dev='/dev/sda'/></disk></devices></domain>",
            "<domain><devices><filesystem><source dir='/'/><target dir='tag'/></filesystem></devices></domain>",
            "<domain><os><kernel>/boot/vmlinuz</kernel></os></domain>",
            "<domain><os><initrd> /boot/initrd </initrd></os></domain>",
            "<domain><os><loader>/usr/share/OVMF/OVMF_CODE.fd</loader></os></domain>",
            "<domain><os><nvram template='/srv/vm/t.fd'>/etc/x.fd</nvram></os></domain>",
            "<domain><devices><emulator>/tmp/evil</emulator></devices></domain>",
            "<domain><devices><serial type='file'><source path='/etc/x'/></serial></devices></domain>",
            "<domain><devices><serial type='pty'><log file='/etc/cron.d/x'/></serial></devices></domain>",
            "<domain><devices><rng model='virtio'><backend model='random'>/etc/shadow</backend></rng></devices></domain>",
            "<domainsnapshot><memory snapshot='external' file='/etc/m'/></domainsnapshot>",
            "<domainsnapshot><disks><disk name='vda' snapshot='external'><source file='/x'/></disk></disks></domainsnapshot>",
            "<pool type='dir'><target><path>/etc</path></target></pool>",
            "<pool type='logical'><source><device path='/dev/sda'/></source></pool>",
            "<volume><backingStore><path>/etc/shadow</path></backingStore></volume>",
            "<disk type='file'><source file='/srv/vm/../../etc/shadow'/></disk>",
            "<disk type='file'><source file='rel.img'/></disk>",
            "<disk type='file'><source file='&#x2F;etc&#x2F;shadow'/></disk>",
            // libvirt reads attributes and many elements by local name.
            "<disk type='file' xmlns:x='urn:x'><source x:file='/etc/shadow'/></disk>",
            "<disk type='file' xmlns:x='urn:x'><x:source file='/etc/shadow'/></disk>",
            "<disk type='block'><source dev='dev/sda'/></disk>",
            "<domain><devices><serial type='pty' xmlns:x='urn:x' x:type='file'><source path='/etc/x'/></serial></devices></domain>",
            "<domain><devices><interface type='ethernet'><script path='/tmp/x.sh'/></interface></devices></domain>",
            "<domain><devices><interface type='ethernet'><backend tap='/dev/sda'/></interface></devices></domain>",
            "<domain><devices><sound><audio dev='/dev/dsp'/></sound></devices></domain>",
            "<domain><os><kernel> /srv/vm/k</kernel></os></domain>",
        ] {
            assert_eq!(
                reason(xml_check(outside, OP).unwrap_err()),
                PATH_OUTSIDE_ROOTS,
                "{outside}"
            );
            assert!(xml_check(outside, Role::Admin).is_ok(), "{outside}");
        }
        // Guest-side or self-allocated values are not host paths.
        for fine in [
            "<domain><devices><serial type='pty'><source path='/dev/pts/3'/></serial></devices></domain>",
            "<domain><devices><interface type='direct'><source dev='eth0'/></interface></devices></domain>",
            "<domain><devices><rng model='virtio'><backend model='random'>/dev/urandom</backend></rng></devices></domain>",
            "<volume><target><path>/var/lib/libvirt/images/v</path></target></volume>",
            "<pool type='netfs'><source><host name='nfs'/><dir path='/export'/></source><target><path>/srv/vm/p</path></target></pool>",
            "<domain xmlns:app='urn:app'><metadata><app:backup file='/backups/x'/></metadata></domain>",
        ] {
            assert!(xml_check(fine, OP).is_ok(), "{fine}");
        }
    }

    #[test]
    fn every_pool_target_is_checked_for_admins_too() {
        let c = roots(&["/srv/vm"]);
        let check = |xml: &str| c.check_pool_xml_target("xml", xml, Reach::Remote);
        assert!(check("<pool><target><path>/srv/vm/p</path></target></pool>").is_ok());
        assert!(check("<pool type='rbd'><source><name>x</name></source></pool>").is_ok());
        for bad in [
            "<pool><target><path>/etc</path></target></pool>",
            "<pool><target><path> /srv/vm/p</path></target></pool>",
            "<pool><target xmlns='urn:x'><path>/srv/vm/p</path></target>\
             <target><path>/etc</path></target></pool>",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passthrough_namespaces_are_admin_only_whatever_the_prefix() {
        for xml in [
            "<domain xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'><qemu:commandline>\
             <qemu:arg value='-D'/><qemu:arg value='/etc/x'/></qemu:commandline></domain>",
            "<domain xmlns:q='http://libvirt.org/schemas/domain/qemu/1.0'><q:commandline/></domain>",
            "<domain><commandline xmlns='http://libvirt.org/schemas/domain/qemu/1.0'/></domain>",
            "<domain xmlns:z='http://libvirt.org/schemas/domain/qemu/1.0'><devices z:x='1'/></domain>",
            "<network xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'>\
             <dnsmasq:options><dnsmasq:option value='dhcp-script=/tmp/x'/></dnsmasq:options></network>",
        ] {
            assert_eq!(reason(xml_check(xml, OP).unwrap_err()), ADMIN_ONLY_XML, "{xml}");
            assert!(xml_check(xml, Role::Admin).is_ok());
        }
        // The prefix alone means nothing: bound elsewhere, it is harmless.
        assert!(xml_check(
            "<domain xmlns:qemu='urn:other'><metadata><qemu:commandline/></metadata></domain>",
            OP
        )
        .is_ok());
        // An undeclared prefix is malformed, not passed.
        assert!(matches!(
            xml_check("<domain><qemu:commandline/></domain>", OP),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn graphics_beyond_loopback_need_a_password_below_admin() {
        let g = |inner: &str| format!("<domain><devices>{inner}</devices></domain>");
        for refused in [
            "<graphics type='vnc' listen='0.0.0.0'/>",
            "<graphics type='spice' listen='::'/>",
            "<graphics type='vnc'><listen type='address' address='0.0.0.0'/></graphics>",
            "<graphics type='vnc' passwd=''><listen type='network' network='default'/></graphics>",
            "<graphics type='vnc' listen='192.0.2.1'/>",
            "<graphics type='sdl' xmlns:x='urn:x' x:type='vnc' listen='0.0.0.0'/>",
            "<graphics type='vnc' listen='0.0.0.0' passwd='s' xmlns:x='urn:x' x:passwd=''/>",
            "<x:graphics xmlns:x='urn:x' type='vnc' listen='0.0.0.0'/>",
        ] {
            let e = xml_check(&g(refused), OP).unwrap_err();
            assert_eq!(reason(e), ADMIN_ONLY_XML, "{refused}");
            assert!(xml_check(&g(refused), Role::Admin).is_ok());
        }
        for allowed in [
            "<graphics type='vnc' listen='0.0.0.0' passwd='secret'/>",
            "<graphics type='vnc' listen='127.0.0.1'/>",
            "<graphics type='spice'><listen type='address' address='::1'/></graphics>",
            "<graphics type='vnc' listen='localhost'/>",
            "<graphics type='vnc' autoport='yes'/>",
            "<graphics type='sdl' display=':0'/>",
        ] {
            assert!(xml_check(&g(allowed), OP).is_ok(), "{allowed}");
        }
    }

    #[test]
    fn a_spec_is_checked_field_by_field() {
        let c = roots(&["/srv/vm"]);
        let spec = v1::DomainSpec {
            disks: vec![v1::DiskSpec {
                source_path: "/srv/vm/a.img".into(),
                ..Default::default()
            }],
            graphics: vec![v1::GraphicsSpec {
                listen: "127.0.0.1".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(c
            .check_domain_spec("spec", &spec, OP, Reach::Remote)
            .is_ok());
        let mut bad = spec.clone();
        bad.boot = Some(v1::BootSpec {
            kernel: "/boot/vmlinuz".into(),
            ..Default::default()
        });
        match c.check_domain_spec("spec", &bad, OP, Reach::Remote) {
            Err(Error::Confined(r)) => assert_eq!(r.metadata["field"], "spec.boot.kernel"),
            other => panic!("{other:?}"),
        }
        let mut open = spec.clone();
        open.graphics[0].listen = "0.0.0.0".into();
        assert_eq!(
            reason(
                c.check_domain_spec("spec", &open, OP, Reach::Remote)
                    .unwrap_err()
            ),
            ADMIN_ONLY_XML
        );
        assert!(c
            .check_domain_spec("spec", &open, Role::Admin, Reach::Remote)
            .is_ok());
    }

    #[test]
    fn deep_documents_are_refused_not_overflowed() {
        let xml = format!("{}{}", "<a>".repeat(200_000), "</a>".repeat(200_000));
        assert!(matches!(
            xml_check(&xml, OP),
            Err(Error::InvalidArgument(_))
        ));
        let ok = format!("{}{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
        assert!(xml_check(&ok, OP).is_ok());
    }
}
