//! TLS for client connections: rustls with the ring provider (the one crypto provider of the
//! whole build), the broker's certificate, and optionally client certificates verified against
//! a CA. As nats-server does without `handshake_first`, the broker sends INFO in plain text
//! with `tls_required`, then the client starts the handshake.

use std::io;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio_rustls::TlsAcceptor;

use crate::config::Tls;

fn invalid(what: &str, path: &std::path::Path, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("tls {what} {}: {e}", path.display()),
    )
}

/// The acceptor for `tls`, or why its files cannot be used.
pub(crate) fn acceptor(tls: &Tls) -> io::Result<TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .map_err(|e| invalid("cert", &tls.cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| invalid("cert", &tls.cert, e))?;
    if certs.is_empty() {
        return Err(invalid("cert", &tls.cert, "no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| invalid("key", &tls.key, e))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| io::Error::other(e.to_string()))?;
    let builder = match &tls.ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).map_err(|e| invalid("ca", ca, e))? {
                roots
                    .add(cert.map_err(|e| invalid("ca", ca, e))?)
                    .map_err(|e| invalid("ca", ca, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| invalid("ca", ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| invalid("cert", &tls.cert, e))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
