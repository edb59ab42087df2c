//! Certificates and TLS configuration for mutual TLS. A Vigil deployment has one CA; the
//! collector holds a server certificate and each agent a client certificate whose common
//! name is the agent's identity. Generation uses rcgen; the rustls configs use only the
//! ring provider and require TLS 1.3 and Vigil's ALPN.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

/// File names used inside a certificates directory.
pub mod files {
    /// The CA certificate, shared by every party.
    pub const CA_CERT: &str = "ca.pem";
    /// The CA private key; only `certs init` and `certs issue-agent` read it.
    pub const CA_KEY: &str = "ca.key";
    /// The collector's server certificate.
    pub const COLLECTOR_CERT: &str = "collector.pem";
    /// The collector's private key.
    pub const COLLECTOR_KEY: &str = "collector.key";
    /// An agent's client certificate.
    pub const AGENT_CERT: &str = "agent.pem";
    /// An agent's private key.
    pub const AGENT_KEY: &str = "agent.key";
}

/// Errors from certificate generation, parsing and TLS setup.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen failed to build or sign a certificate.
    #[error("generating certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A PEM file held no certificate or key, or could not be parsed.
    #[error("parsing PEM {what}: {detail}")]
    Pem { what: &'static str, detail: String },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The client verifier could not be built.
    #[error("client verifier: {0}")]
    Verifier(String),
    /// The peer certificate has no usable common name.
    #[error("peer certificate has no common name")]
    NoCommonName,
    /// An agent name is not usable as a DNS-like identity.
    #[error("invalid agent name {0:?}: use letters, digits, '.', '-' and '_' only")]
    BadName(String),
}

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct CertPair {
    pub cert_pem: String,
    pub key_pem: String,
}

fn params(common_name: &str, sans: &[String]) -> Result<CertificateParams, CertError> {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "Vigil");
    p.distinguished_name = dn;
    for san in sans {
        p.subject_alt_names
            .push(match san.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(san.clone().try_into()?),
            });
    }
    Ok(p)
}

/// Creates a self-signed CA.
pub fn generate_ca(common_name: &str) -> Result<CertPair, CertError> {
    let key = KeyPair::generate()?;
    let mut p = params(common_name, &[])?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = p.self_signed(&key)?;
    Ok(CertPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Which side of the connection a leaf certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Collector,
    Agent,
}

/// Checks that an agent name is safe to use as an identity and a file name.
pub fn validate_name(name: &str) -> Result<(), CertError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(CertError::BadName(name.to_string()))
    }
}

/// Issues a leaf certificate signed by the CA. An agent's common name is its identity.
pub fn issue(
    ca: &CertPair,
    role: Role,
    name: &str,
    sans: &[String],
) -> Result<CertPair, CertError> {
    validate_name(name)?;
    let ca_key = KeyPair::from_pem(&ca.key_pem)?;
    let ca_params = CertificateParams::from_ca_cert_pem(&ca.cert_pem)?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let key = KeyPair::generate()?;
    let mut all_sans = vec![name.to_string()];
    all_sans.extend(sans.iter().cloned());
    all_sans.dedup();
    let mut p = params(name, &all_sans)?;
    p.is_ca = IsCa::NoCa;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![match role {
        Role::Collector => ExtendedKeyUsagePurpose::ServerAuth,
        Role::Agent => ExtendedKeyUsagePurpose::ClientAuth,
    }];
    let cert = p.signed_by(&key, &ca_cert, &ca_key)?;
    Ok(CertPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn certs_from_pem(
    what: &'static str,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| CertError::Pem {
            what,
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(CertError::Pem {
            what,
            detail: "no CERTIFICATE block found".into(),
        });
    }
    Ok(certs)
}

fn key_from_pem(what: &'static str, pem: &[u8]) -> Result<PrivateKeyDer<'static>, CertError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| CertError::Pem {
        what,
        detail: e.to_string(),
    })
}

fn roots(ca_pem: &[u8]) -> Result<rustls::RootCertStore, CertError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs_from_pem("CA certificate", ca_pem)? {
        roots.add(c)?;
    }
    Ok(roots)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The collector's TLS config: TLS 1.3, Vigil ALPN, and a client certificate from `ca_pem`
/// required on every connection.
pub fn server_config(
    ca_pem: &[u8],
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<rustls::ServerConfig, CertError> {
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots(ca_pem)?),
        provider(),
    )
    .build()
    .map_err(|e| CertError::Verifier(e.to_string()))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            certs_from_pem("collector certificate", cert_pem)?,
            key_from_pem("collector key", key_pem)?,
        )?;
    cfg.alpn_protocols = vec![crate::ALPN.to_vec()];
    Ok(cfg)
}

/// The agent's TLS config: trusts only `ca_pem` and presents the agent certificate.
pub fn client_config(
    ca_pem: &[u8],
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<rustls::ClientConfig, CertError> {
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(ca_pem)?)
        .with_client_auth_cert(
            certs_from_pem("agent certificate", cert_pem)?,
            key_from_pem("agent key", key_pem)?,
        )?;
    cfg.alpn_protocols = vec![crate::ALPN.to_vec()];
    Ok(cfg)
}

/// The identity of a peer: the common name of its (already verified) leaf certificate.
pub fn identity_from_der(der: &[u8]) -> Result<String, CertError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| CertError::Pem {
        what: "peer certificate",
        detail: e.to_string(),
    })?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .ok_or(CertError::NoCommonName)?;
    Ok(cn.to_string())
}

/// The common name of the first certificate in a PEM file (used to name the local agent).
pub fn identity_from_pem(pem: &[u8]) -> Result<String, CertError> {
    let certs = certs_from_pem("certificate", pem)?;
    identity_from_der(&certs[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_agent_certificate_carries_its_name_and_configs_build() {
        let ca = generate_ca("Vigil test CA").unwrap();
        let server = issue(&ca, Role::Collector, "localhost", &["127.0.0.1".into()]).unwrap();
        let agent = issue(&ca, Role::Agent, "web-01", &[]).unwrap();
        assert_eq!(
            identity_from_pem(agent.cert_pem.as_bytes()).unwrap(),
            "web-01"
        );
        server_config(
            ca.cert_pem.as_bytes(),
            server.cert_pem.as_bytes(),
            server.key_pem.as_bytes(),
        )
        .unwrap();
        client_config(
            ca.cert_pem.as_bytes(),
            agent.cert_pem.as_bytes(),
            agent.key_pem.as_bytes(),
        )
        .unwrap();
    }

    #[test]
    fn names_with_path_characters_are_refused() {
        assert!(validate_name("../etc").is_err());
        assert!(validate_name("").is_err());
        assert!(validate_name("node-1.example").is_ok());
    }
}
