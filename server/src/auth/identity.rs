//! Turning what a caller presents into a [`Caller`]: bearer tokens (kept
//! only as SHA-256 digests, compared in constant time) and client
//! certificates (matched by subject or subject alternative name).

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::{Caller, Role};
use crate::config::{AuthConfig, ClientCertConfig};

/// The longest `authorization` value looked at; longer ones are refused
/// unread (a token is a few dozen bytes).
pub const MAX_AUTHORIZATION_BYTES: usize = 4096;

/// Why a presented credential identifies nobody. The texts never contain
/// the credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No token and no mapped certificate.
    #[error("no credentials: send 'authorization: Bearer <token>' metadata or a client certificate the server maps to a role")]
    Missing,
    /// The `authorization` value is not `Bearer <token>`.
    #[error("malformed authorization metadata: expected 'Bearer <token>' (at most {MAX_AUTHORIZATION_BYTES} bytes of visible ASCII)")]
    Malformed,
    /// The token is not one the server knows.
    #[error("unknown bearer token")]
    UnknownToken,
    /// The certificate is valid for the CA but mapped to no identity.
    #[error("the client certificate ({0}) is not mapped to a role in [[auth.clients]]")]
    UnmappedCertificate(String),
}

/// The identities of `[auth]`, ready to match.
#[derive(Debug, Clone)]
pub struct Identities {
    tokens: Vec<(String, Role, [u8; 32])>,
    clients: Vec<ClientCertConfig>,
}

/// 64 hex digits as 32 bytes.
pub fn parse_sha256(hex_digest: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(hex_digest.trim()).ok()?;
    bytes.try_into().ok()
}

impl Identities {
    /// The identities `config` lists (validated by `Config::validate`;
    /// a token whose digest does not parse is left out).
    pub fn new(config: &AuthConfig) -> Self {
        Identities {
            tokens: config
                .tokens
                .iter()
                .filter_map(|t| Some((t.name.clone(), t.role, parse_sha256(&t.sha256)?)))
                .collect(),
            clients: config.clients.clone(),
        }
    }

    /// The caller an `authorization` value names.
    pub fn by_authorization(&self, value: &[u8]) -> Result<Caller, Rejection> {
        if value.len() > MAX_AUTHORIZATION_BYTES {
            return Err(Rejection::Malformed);
        }
        let text = std::str::from_utf8(value).map_err(|_| Rejection::Malformed)?;
        let (scheme, token) = text.split_once(' ').ok_or(Rejection::Malformed)?;
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer")
            || token.is_empty()
            || !token.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(Rejection::Malformed);
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // Every row is compared, whatever matched before: the time taken
        // says nothing about which token (or how much of one) was right.
        let mut found: Option<&(String, Role, [u8; 32])> = None;
        for row in &self.tokens {
            if bool::from(row.2.ct_eq(&digest)) {
                found = Some(row);
            }
        }
        found
            .map(|(name, role, _)| Caller {
                name: name.clone(),
                role: *role,
            })
            .ok_or(Rejection::UnknownToken)
    }

    /// The caller a client certificate (DER, leaf) names. The TLS layer has
    /// already verified it against `client_ca`.
    pub fn by_certificate(&self, der: &[u8]) -> Result<Caller, Rejection> {
        let Ok((_, cert)) = X509Certificate::from_der(der) else {
            return Err(Rejection::UnmappedCertificate(
                "unparsable certificate".into(),
            ));
        };
        let subject = subject_text(&cert);
        let sans = subject_alt_names(&cert);
        for c in &self.clients {
            let matched = match (&c.subject, &c.san) {
                (Some(want), _) => same_dn(want, &subject).then(|| want.clone()),
                (None, Some(want)) => sans.iter().find(|s| *s == want).cloned(),
                (None, None) => None,
            };
            if let Some(matched) = matched {
                return Ok(Caller {
                    name: c.name.clone().unwrap_or(matched),
                    role: c.role,
                });
            }
        }
        Err(Rejection::UnmappedCertificate(format!(
            "subject '{subject}'"
        )))
    }
}

/// A certificate's subject as `CN=ops,O=Example` (attributes in the
/// certificate's order).
pub fn subject_text(cert: &X509Certificate<'_>) -> String {
    let mut parts = Vec::new();
    for rdn in cert.subject().iter() {
        for attr in rdn.iter() {
            let key = x509_parser::objects::oid2abbrev(
                attr.attr_type(),
                x509_parser::objects::oid_registry(),
            )
            .map(str::to_owned)
            .unwrap_or_else(|_| attr.attr_type().to_id_string());
            let value = attr.as_str().unwrap_or("?");
            parts.push(format!("{key}={value}"));
        }
    }
    parts.join(",")
}

/// Whether configured DN `want` names `have` (`KEY=value` pairs in order;
/// keys case-insensitive, blanks around separators ignored).
fn same_dn(want: &str, have: &str) -> bool {
    let split = |s: &str| -> Vec<(String, String)> {
        s.split(',')
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                Some((k.trim().to_ascii_uppercase(), v.trim().to_owned()))
            })
            .collect()
    };
    let (w, h) = (split(want), split(have));
    !w.is_empty() && w == h
}

/// The DNS, URI, email and IP subject alternative names of a certificate.
fn subject_alt_names(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(ext)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    ext.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(s) | GeneralName::URI(s) | GeneralName::RFC822Name(s) => {
                Some((*s).to_owned())
            }
            GeneralName::IPAddress(b) => match b.len() {
                4 => <[u8; 4]>::try_from(*b)
                    .ok()
                    .map(|a| std::net::IpAddr::from(a).to_string()),
                16 => <[u8; 16]>::try_from(*b)
                    .ok()
                    .map(|a| std::net::IpAddr::from(a).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::config::TokenConfig;

    fn sha(t: &str) -> String {
        hex::encode(Sha256::digest(t.as_bytes()))
    }

    fn ids() -> Identities {
        Identities::new(&AuthConfig {
            tokens: vec![
                TokenConfig {
                    name: "bot".into(),
                    role: Role::Reader,
                    sha256: sha("s3cret-token"),
                },
                TokenConfig {
                    name: "ops".into(),
                    role: Role::Admin,
                    sha256: sha("admin-token").to_ascii_uppercase(),
                },
            ],
            ..AuthConfig::default()
        })
    }

    #[test]
    fn tokens_match_by_digest_only() {
        let ids = ids();
        let c = ids.by_authorization(b"Bearer s3cret-token").unwrap();
        assert_eq!((c.name.as_str(), c.role), ("bot", Role::Reader));
        assert_eq!(
            ids.by_authorization(b"bearer admin-token").unwrap().role,
            Role::Admin
        );
        // A valid prefix with a wrong tail, a wrong case, a token with
        // something after it: all unknown.
        for t in [
            "Bearer s3cret-tokeX",
            "Bearer s3cret-token2",
            "Bearer S3CRET-TOKEN",
        ] {
            assert_eq!(
                ids.by_authorization(t.as_bytes()).unwrap_err(),
                Rejection::UnknownToken,
                "{t}"
            );
        }
    }

    #[test]
    fn malformed_authorization_is_refused_without_echo() {
        let ids = ids();
        let long = format!("Bearer {}", "a".repeat(MAX_AUTHORIZATION_BYTES));
        for v in [
            &b"s3cret-token"[..],
            b"Basic czNjcmV0",
            b"Bearer ",
            b"Bearer a b",
            b"Bearer \xff\xfe",
            long.as_bytes(),
        ] {
            let e = ids.by_authorization(v).unwrap_err();
            assert_eq!(e, Rejection::Malformed, "{v:?}");
            assert!(!e.to_string().contains("s3cret"));
        }
    }

    #[test]
    fn dn_comparison() {
        assert!(same_dn("CN=ops", "CN=ops"));
        assert!(same_dn("cn = ops , O=Example", "CN=ops,O=Example"));
        assert!(!same_dn("CN=ops", "CN=ops,O=Example"));
        assert!(!same_dn("CN=ops", "CN=Ops"));
        assert!(!same_dn("", ""));
    }

    #[test]
    fn digests_parse() {
        assert!(parse_sha256(&sha("x")).is_some());
        assert!(parse_sha256("abc").is_none());
        assert!(parse_sha256(&"g".repeat(64)).is_none());
    }

    /// A certificate (DER) with subject `CN=<cn>,O=Example` and these SANs.
    fn cert(cn: &str, sans: &[&str]) -> Vec<u8> {
        let mut p =
            rcgen::CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, cn);
        dn.push(rcgen::DnType::OrganizationName, "Example");
        p.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn certificates_match_by_subject_or_san() {
        let client = |subject: Option<&str>, san: Option<&str>, role| ClientCertConfig {
            name: None,
            subject: subject.map(str::to_owned),
            san: san.map(str::to_owned),
            role,
        };
        let ids = Identities::new(&AuthConfig {
            clients: vec![
                client(Some("CN=ops,O=Example"), None, Role::Admin),
                client(None, Some("bot.example.com"), Role::Operator),
            ],
            ..AuthConfig::default()
        });
        let c = ids
            .by_certificate(&cert("ops", &["ops.example.com"]))
            .unwrap();
        assert_eq!((c.name.as_str(), c.role), ("CN=ops,O=Example", Role::Admin));
        let c = ids
            .by_certificate(&cert("robot", &["x.example.com", "bot.example.com"]))
            .unwrap();
        assert_eq!(
            (c.name.as_str(), c.role),
            ("bot.example.com", Role::Operator)
        );
        // A subject that only starts like a configured one, and no SAN match.
        let e = ids
            .by_certificate(&cert("ops2", &["ops.example.com"]))
            .unwrap_err();
        assert_eq!(
            e,
            Rejection::UnmappedCertificate("subject 'CN=ops2,O=Example'".into())
        );
        assert!(ids.by_certificate(b"not a certificate").is_err());
    }
}
