//! TLS for client connections: rustls with the ring provider (the one crypto provider of the
//! whole build), the broker's certificate, and optionally client certificates verified against
//! a CA. As nats-server does without `handshake_first`, the broker sends INFO in plain text
//! with `tls_required`, then the client starts the handshake.
//!
//! The files are checked when they are loaded as rustls (webpki) would check them in each
//! handshake — the certificate's version, validity, basicConstraints and extendedKeyUsage,
//! and that the key is the certificate's — so that one it refuses is named with the reason at
//! start ([`check`]), not reported as a generic TLS error by every client.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use tokio_rustls::TlsAcceptor;

use crate::config::Tls;

fn invalid(what: &str, path: &Path, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("tls {what} {}: {e}", path.display()),
    )
}

/// Checks `[tls]`: that the broker can serve with these files, and why not.
pub fn check(tls: &Tls) -> io::Result<()> {
    acceptor(tls).map(|_| ())
}

/// The acceptor for `tls`, or why its files cannot be used.
pub(crate) fn acceptor(tls: &Tls) -> io::Result<TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = certificates("cert", &tls.cert)?;
    if let Some((leaf, intermediates)) = certs.split_first() {
        refusal(leaf, intermediates, SystemTime::now())
            .map_err(|reason| invalid("cert", &tls.cert, reason))?;
    }
    let key = private_key(&tls.key)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| io::Error::other(e.to_string()))?;
    let builder = match &tls.ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates("ca", ca)? {
                roots.add(cert).map_err(|e| invalid("ca", ca, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| invalid("ca", ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder.with_single_cert(certs, key).map_err(|e| match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => invalid(
            "key",
            &tls.key,
            format!(
                "does not match the certificate {}: it is the key of another certificate",
                tls.cert.display()
            ),
        ),
        e => invalid("cert", &tls.cert, e),
    })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A file's PEM sections: what each is, and its DER.
type Sections = Vec<(SectionKind, Vec<u8>)>;

/// A file's bytes and its PEM sections.
fn sections(what: &str, path: &Path) -> io::Result<(Vec<u8>, Sections)> {
    let bytes = std::fs::read(path).map_err(|e| invalid(what, path, e))?;
    let mut reader = bytes.as_slice();
    let mut found = Vec::new();
    while let Some(section) = rustls::pki_types::pem::from_buf(&mut reader)
        .map_err(|e| invalid(what, path, format!("not a valid PEM file: {e}")))?
    {
        found.push(section);
    }
    Ok((bytes, found))
}

/// The certificates of a PEM file, or why there are none.
fn certificates(what: &str, path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    let (bytes, sections) = sections(what, path)?;
    let mut keys = false;
    let mut certs = Vec::new();
    for (kind, der) in sections {
        match kind {
            SectionKind::Certificate => certs.push(CertificateDer::from(der)),
            kind => keys |= PrivateKeyDer::from_pem(kind, der).is_some(),
        }
    }
    if !certs.is_empty() {
        return Ok(certs);
    }
    let reason = if bytes.first() == Some(&0x30) {
        "no PEM certificate: this looks like a DER (binary) file; convert it with `openssl x509 \
         -inform der -in FILE -out FILE.pem`"
    } else if keys {
        "no certificate in the file, only a private key: is this the key file?"
    } else {
        "no certificate in the file (no \"-----BEGIN CERTIFICATE-----\" block)"
    };
    Err(invalid(what, path, reason))
}

/// The first private key of a PEM file, or why there is none.
fn private_key(path: &Path) -> io::Result<PrivateKeyDer<'static>> {
    let (bytes, sections) = sections("key", path)?;
    let certificates = sections
        .iter()
        .any(|(kind, _)| *kind == SectionKind::Certificate);
    if let Some(key) = sections
        .into_iter()
        .find_map(|(kind, der)| PrivateKeyDer::from_pem(kind, der))
    {
        return Ok(key);
    }
    let reason = if String::from_utf8_lossy(&bytes).contains("ENCRYPTED PRIVATE KEY") {
        "an encrypted private key: rustls reads only unencrypted ones (decrypt it with `openssl \
         pkey -in FILE -out FILE.key`, and keep that at mode 0600)"
    } else if certificates {
        "no private key in the file, only a certificate: is this the certificate file?"
    } else {
        "no private key in the file (no \"-----BEGIN PRIVATE KEY-----\" block)"
    };
    Err(invalid("key", path, reason))
}

/// Why a client's rustls (webpki) would refuse `leaf` as the broker's certificate at `now`,
/// if it would. (Go clients refuse the same.)
fn refusal(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: SystemTime,
) -> Result<(), String> {
    let time = UnixTime::since_unix_epoch(
        now.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default(),
    );
    let verified = webpki::EndEntityCert::try_from(leaf).and_then(|cert| {
        cert.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &[],
            intermediates,
            time,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .map(|_| ())
    });
    let command = "muster issuer tls server";
    match verified {
        // With no trust anchor given, webpki checks the certificate's own properties first and
        // then finds no issuer: the issuer is for each client to check against its CA.
        Ok(()) | Err(webpki::Error::UnknownIssuer) => Ok(()),
        Err(webpki::Error::UnsupportedCertVersion) => Err(format!(
            "X.509 version {} certificate; rustls (webpki) accepts only version 3 — make it with \
             `{command}`",
            version(leaf)
        )),
        Err(webpki::Error::CaUsedAsEndEntity) => Err(format!(
            "a CA certificate (basicConstraints CA:TRUE), not a broker certificate; rustls \
             (webpki) refuses a CA certificate as a broker's own — make one with `{command}`"
        )),
        Err(webpki::Error::CertExpired { not_after, .. }) => Err(format!(
            "expired on {} — make a new one with `{command}`",
            at(not_after)
        )),
        Err(webpki::Error::CertNotValidYet { not_before, .. }) => Err(format!(
            "not valid before {}: is this machine's clock right?",
            at(not_before)
        )),
        Err(webpki::Error::RequiredEkuNotFoundContext(_)) => Err(format!(
            "its extendedKeyUsage does not include serverAuth, so rustls (webpki) refuses it as \
             a broker certificate — make one with `{command}`"
        )),
        Err(e) => Err(format!("rustls (webpki) refuses it: {e}")),
    }
}

fn at(time: UnixTime) -> String {
    let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(time.as_secs());
    humantime_serde::re::humantime::format_rfc3339_seconds(time).to_string()
}

/// The X.509 version of a certificate that is not version 3: 1 when the DER has no version
/// field (`[0]` after the TBSCertificate's header), else the field's value plus one.
fn version(cert: &[u8]) -> u64 {
    /// The contents of the DER element at the start of `der`, and what follows it.
    fn element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = der.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            let (bytes, rest) = (rest.get(..n)?, rest.get(n..)?);
            let len = bytes.iter().try_fold(0usize, |acc, &b| {
                acc.checked_mul(256)?.checked_add(b.into())
            })?;
            (len, rest)
        };
        Some((tag, rest.get(..len)?, rest.get(len..)?))
    }
    let explicit = element(cert)
        .and_then(|(_, certificate, _)| element(certificate))
        .and_then(|(_, tbs, _)| element(tbs))
        .filter(|(tag, _, _)| *tag == 0xa0)
        .and_then(|(_, version, _)| element(version))
        .and_then(|(_, value, _)| value.last().copied());
    explicit.map_or(1, |v| u64::from(v) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use muster_testkit::tls::TestCerts;

    fn tls(cert: &Path, key: &Path) -> Tls {
        Tls {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            ca: None,
        }
    }

    #[test]
    fn files_rustls_would_refuse_are_named_with_the_reason() {
        let certs = TestCerts::new().unwrap();
        let (cert, key) = certs.server();
        let (_, client_key) = certs.client();
        check(&Tls {
            ca: Some(certs.ca()),
            ..tls(&cert, &key)
        })
        .unwrap();
        let err = check(&tls(&cert, &client_key)).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "tls key {}: does not match the certificate {}: it is the key of another \
                 certificate",
                client_key.display(),
                cert.display()
            )
        );
        let err = check(&tls(&key, &key)).unwrap_err().to_string();
        assert!(
            err.contains("only a private key: is this the key file?"),
            "{err}"
        );
        let err = check(&tls(&cert, &cert)).unwrap_err().to_string();
        assert!(
            err.contains("only a certificate: is this the certificate file?"),
            "{err}"
        );
        let err = check(&Tls {
            ca: Some(key.clone()),
            ..tls(&cert, &key)
        })
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("tls ca "), "{err}");
        // Expired, and not yet valid: at another time.
        let leaf = certificates("cert", &cert).unwrap().remove(0);
        let year = std::time::Duration::from_secs(365 * 86400);
        let far = SystemTime::now() + 10_000 * year;
        let err = refusal(&leaf, &[], far).unwrap_err();
        assert!(err.starts_with("expired on "), "{err}");
        let err = refusal(&leaf, &[], SystemTime::UNIX_EPOCH).unwrap_err();
        assert!(err.starts_with("not valid before "), "{err}");
    }

    #[test]
    fn the_version_of_a_certificate_is_read_from_its_der() {
        let certs = TestCerts::new().unwrap();
        let leaf = certificates("cert", &certs.server().0).unwrap().remove(0);
        assert_eq!(version(&leaf), 3);
        // No version field: version 1. (SEQUENCE { SEQUENCE { INTEGER 1 } })
        assert_eq!(version(&[0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x01]), 1);
        // Truncated or lying lengths are no panic.
        assert_eq!(version(&[0x30, 0x85, 0xff, 0xff, 0xff, 0xff, 0xff]), 1);
        assert_eq!(version(&[]), 1);
    }
}
