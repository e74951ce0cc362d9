//! TLS settings for the blocking client (feature `tls`): a rustls client
//! configuration (ring provider, TLS 1.2 and 1.3) that trusts the CA
//! certificates of a PEM file and, optionally, presents a client
//! certificate (for `verify_peer` servers and the `EXTERNAL` mechanism).

use std::path::Path;
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

fn invalid(what: &str, path: &Path, e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("{what} {}: {e}", path.display()),
    )
}

fn certs(what: &str, path: &Path) -> std::io::Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_file_iter(path)
        .map_err(|e| invalid(what, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(what, path, e))
}

/// A client configuration trusting the CAs in `ca` (PEM), presenting
/// `client` (certificate chain and key, PEM) when given.
///
/// # Errors
/// Unreadable or unusable files.
pub fn config(ca: &Path, client: Option<(&Path, &Path)>) -> std::io::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for c in certs("CA file", ca)? {
        roots.add(c).map_err(|e| invalid("CA file", ca, e))?;
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(std::io::Error::other)?
            .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = certs("certificate file", cert)?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| invalid("key file", key, e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(std::io::Error::other)?
        }
    };
    Ok(Arc::new(config))
}
