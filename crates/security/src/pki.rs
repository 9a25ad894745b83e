//! X.509 certificates for the broker connection (docs/design.md §7).
//!
//! [`make_ca`] and [`make_leaf`] are `muster issuer tls`: a CA, and the broker (server) and
//! client certificates it signs, as PEM files that both Muster's embedded broker and
//! nats-server take — ECDSA P-256 keys (PKCS#8), X.509 version 3 with basicConstraints,
//! keyUsage, extendedKeyUsage and, for a broker, subjectAltName. Private keys are written with
//! mode 0600, directories made for them with 0700, and no file is ever overwritten.
//!
//! [`check_ca_file`] and [`check_certificate`] run when a client, daemon or registry loads its
//! `[transport]` files: a certificate rustls (webpki) would refuse in every handshake —
//! version 1, a CA certificate as one's own, expired, without the right extendedKeyUsage, a
//! key that belongs to another certificate, a file with no certificate in it — is named with
//! the reason at start, instead of each connection failing with a generic TLS error.
//!
//! No clock is read here: the time is a parameter.

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand_core::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber,
};
use rustls_pki_types::pem::{PemObject, SectionKind};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use x509_parser::x509::X509Version;

/// The CA's certificate, in the directory `muster issuer tls ca` writes.
pub const CA_CERT: &str = "ca.crt";
/// The CA's private key, beside it.
pub const CA_KEY: &str = "ca.key";

/// The last second X.509 can express (GeneralizedTime ends with the year 9999).
const LAST_SECOND: i64 = 253_402_300_799;

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A broker's own certificate (extendedKeyUsage serverAuth).
    Server,
    /// A client's, daemon's or registry's certificate (extendedKeyUsage clientAuth).
    Client,
}

impl Role {
    fn holder(self) -> &'static str {
        match self {
            Role::Server => "broker",
            Role::Client => "client",
        }
    }

    fn purpose(self) -> &'static str {
        match self {
            Role::Server => "serverAuth",
            Role::Client => "clientAuth",
        }
    }

    /// The command that makes a good one.
    fn command(self) -> &'static str {
        match self {
            Role::Server => "muster issuer tls server",
            Role::Client => "muster issuer tls client",
        }
    }
}

/// A certificate that cannot be made, or a file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PkiError {
    /// This file cannot be used, for this reason.
    #[error("{}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The file exists, and certificates and keys are never overwritten.
    #[error(
        "{} exists; certificates and keys are never overwritten (move it away, or write \
         somewhere else)",
        .0.display()
    )]
    Exists(PathBuf),
    /// What was asked for cannot be made.
    #[error("{0}")]
    Invalid(String),
}

fn file_error(path: &Path, reason: impl Into<String>) -> PkiError {
    PkiError::File {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn invalid(e: impl std::fmt::Display) -> PkiError {
    PkiError::Invalid(format!("cannot make the certificate: {e}"))
}

/// The files one `make_*` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Made {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, mode 0600).
    pub key: PathBuf,
    /// When the certificate expires (Unix seconds).
    pub not_after: i64,
}

/// A broker's or a client's certificate to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    /// What it is for.
    pub role: Role,
    /// Its subject's common name (what nats-server's `verify_and_map` maps a client by).
    pub common_name: String,
    /// DNS names in its subjectAltName (a broker's host names).
    pub dns_names: Vec<String>,
    /// IP addresses in its subjectAltName (a broker's addresses).
    pub ips: Vec<IpAddr>,
}

/// Makes a CA: `DIR/ca.crt` and `DIR/ca.key`, valid for `valid` from `now`. It may sign only
/// end-entity certificates (pathlen 0).
pub fn make_ca(dir: &Path, name: &str, valid: Duration, now: SystemTime) -> Result<Made, PkiError> {
    let cert = dir.join(CA_CERT);
    let key_path = dir.join(CA_KEY);
    refuse_existing(&[&cert, &key_path])?;
    let (mut params, not_after) = params(name, now, valid, None)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().map_err(invalid)?;
    let certificate = params.self_signed(&key).map_err(invalid)?;
    write_files(&cert, &certificate.pem(), &key_path, &key.serialize_pem())?;
    Ok(Made {
        cert,
        key: key_path,
        not_after,
    })
}

/// Makes a broker's or a client's certificate signed by the CA in `ca_dir`: `OUT.crt` and
/// `OUT.key`, valid for `valid` from `now` but not past the CA's own expiry.
pub fn make_leaf(
    ca_dir: &Path,
    leaf: &Leaf,
    out: &Path,
    valid: Duration,
    now: SystemTime,
) -> Result<Made, PkiError> {
    let cert = suffixed(out, ".crt");
    let key_path = suffixed(out, ".key");
    refuse_existing(&[&cert, &key_path])?;
    let mut subject_alt_names = Vec::new();
    for name in &leaf.dns_names {
        if rustls_pki_types::DnsName::try_from(name.as_str()).is_err() {
            return Err(PkiError::Invalid(format!(
                "{name:?} is not a DNS name (an IP address goes in --ip)"
            )));
        }
        subject_alt_names.push(SanType::DnsName(name.clone().try_into().map_err(invalid)?));
    }
    subject_alt_names.extend(leaf.ips.iter().map(|ip| SanType::IpAddress(*ip)));
    if leaf.role == Role::Server && subject_alt_names.is_empty() {
        return Err(PkiError::Invalid(
            "a broker certificate needs at least one host name or IP address: clients check \
             the one they connect to against them (rustls and Go never look at the common name)"
                .into(),
        ));
    }
    let (ca, ca_not_after) = load_ca(ca_dir)?;
    let (mut params, not_after) = params(&leaf.common_name, now, valid, Some(ca_not_after))?;
    params.subject_alt_names = subject_alt_names;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![match leaf.role {
        Role::Server => ExtendedKeyUsagePurpose::ServerAuth,
        Role::Client => ExtendedKeyUsagePurpose::ClientAuth,
    }];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().map_err(invalid)?;
    let certificate = params.signed_by(&key, &ca).map_err(invalid)?;
    write_files(&cert, &certificate.pem(), &key_path, &key.serialize_pem())?;
    Ok(Made {
        cert,
        key: key_path,
        not_after,
    })
}

/// `PATH` with `suffix` appended (not an extension replaced: `broker.example` stays whole).
fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut text = path.as_os_str().to_os_string();
    text.push(suffix);
    PathBuf::from(text)
}

fn refuse_existing(paths: &[&Path]) -> Result<(), PkiError> {
    match paths.iter().find(|p| p.exists()) {
        Some(path) => Err(PkiError::Exists(path.to_path_buf())),
        None => Ok(()),
    }
}

/// Common parameters: the subject, a random serial, and the validity — from five minutes
/// before `now` (another machine's clock may be a little behind this one's) for `valid`, but
/// not past `until`.
fn params(
    common_name: &str,
    now: SystemTime,
    valid: Duration,
    until: Option<i64>,
) -> Result<(CertificateParams, i64), PkiError> {
    if common_name.trim().is_empty() {
        return Err(PkiError::Invalid("the name is empty".into()));
    }
    if valid.as_secs() == 0 {
        return Err(PkiError::Invalid(
            "a certificate must be valid for at least 1s".into(),
        ));
    }
    let now = now
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .ok_or_else(|| PkiError::Invalid("the clock is before 1970".into()))?;
    let wanted = i64::try_from(valid.as_secs())
        .ok()
        .and_then(|v| now.checked_add(v))
        .filter(|t| *t <= LAST_SECOND)
        .ok_or_else(|| {
            PkiError::Invalid(
                "it would be valid past the year 9999, where X.509 times end: make it valid \
                 for less"
                    .into(),
            )
        })?;
    let not_after = until.map_or(wanted, |u| wanted.min(u));
    if not_after <= now {
        return Err(PkiError::Invalid(
            "the CA has expired: make a new one with `muster issuer tls ca`".into(),
        ));
    }
    let time = |t: i64| time::OffsetDateTime::from_unix_timestamp(t).map_err(invalid);
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.not_before = time(now.saturating_sub(300))?;
    params.not_after = time(not_after)?;
    params.serial_number = Some(serial());
    Ok((params, not_after))
}

/// A random positive 16-byte serial number: RFC 5280 wants serials unique for each CA.
fn serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut bytes);
    if let Some(first) = bytes.first_mut() {
        *first = (*first & 0x7f) | 0x40;
    }
    SerialNumber::from_slice(&bytes)
}

/// The CA of `dir` as a signer, and when it expires.
fn load_ca(dir: &Path) -> Result<(Issuer<'static, KeyPair>, i64), PkiError> {
    let cert_path = dir.join(CA_CERT);
    let key_path = dir.join(CA_KEY);
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|e| {
            file_error(
                path,
                format!(
                    "cannot read it: {e} (make the CA first: muster issuer tls ca --dir {})",
                    dir.display()
                ),
            )
        })
    };
    let key_text = read(&key_path)?;
    let cert_text = read(&cert_path)?;
    let key = KeyPair::from_pem(&key_text)
        .map_err(|e| file_error(&key_path, format!("not a private key that can sign: {e}")))?;
    let der = certificates(&cert_path, cert_text.as_bytes())?
        .into_iter()
        .next()
        .ok_or_else(|| file_error(&cert_path, "no certificate in the file"))?;
    let (_, x509) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| file_error(&cert_path, format!("not an X.509 certificate: {e}")))?;
    if !x509.is_ca() {
        return Err(file_error(
            &cert_path,
            "not a CA certificate (no basicConstraints CA:TRUE): it cannot sign certificates",
        ));
    }
    if x509.public_key().raw != key.subject_public_key_info().as_slice() {
        return Err(file_error(
            &key_path,
            format!(
                "does not match the CA certificate {}: it is the key of another certificate",
                cert_path.display()
            ),
        ));
    }
    let not_after = x509.validity().not_after.timestamp();
    let issuer = Issuer::from_ca_cert_der(&der, key)
        .map_err(|e| file_error(&cert_path, format!("cannot sign with it: {e}")))?;
    Ok((issuer, not_after))
}

/// Makes the directories the files go in (0700), then writes the key (0600) and the
/// certificate, each only if it does not exist yet.
fn write_files(cert: &Path, cert_pem: &str, key: &Path, key_pem: &str) -> Result<(), PkiError> {
    for path in [cert, key] {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| file_error(parent, format!("cannot make the directory: {e}")))?;
        }
    }
    write_new(key, key_pem, 0o600)?;
    write_new(cert, cert_pem, 0o644)
}

fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), PkiError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => PkiError::Exists(path.to_path_buf()),
            _ => file_error(path, format!("cannot write it: {e}")),
        })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| file_error(path, format!("cannot write it: {e}")))
}

/// The PEM sections of `bytes` (read from `path`), or why they cannot be read.
fn sections(path: &Path, bytes: &[u8]) -> Result<Vec<(SectionKind, Vec<u8>)>, PkiError> {
    let mut reader = bytes;
    let mut found = Vec::new();
    loop {
        match rustls_pki_types::pem::from_buf(&mut reader) {
            Ok(Some(section)) => found.push(section),
            Ok(None) => return Ok(found),
            Err(e) => return Err(file_error(path, format!("not a valid PEM file: {e}"))),
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, PkiError> {
    std::fs::read(path).map_err(|e| file_error(path, format!("cannot read it: {e}")))
}

/// The certificates of a PEM file, in order, or why there are none.
fn certificates(path: &Path, bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let sections = sections(path, bytes)?;
    let certs: Vec<CertificateDer<'static>> = sections
        .iter()
        .filter(|(kind, _)| *kind == SectionKind::Certificate)
        .map(|(_, der)| CertificateDer::from(der.clone()))
        .collect();
    if !certs.is_empty() {
        return Ok(certs);
    }
    let reason = if bytes.first() == Some(&0x30) {
        "no PEM certificate: this looks like a DER (binary) file; convert it with `openssl x509 \
         -inform der -in FILE -out FILE.pem`"
    } else if sections
        .iter()
        .any(|(kind, der)| PrivateKeyDer::from_pem(*kind, der.clone()).is_some())
    {
        "no certificate in the file, only a private key: is this the key file?"
    } else {
        "no certificate in the file (no \"-----BEGIN CERTIFICATE-----\" block)"
    };
    Err(file_error(path, reason))
}

/// The first private key of a PEM file, or why there is none.
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, PkiError> {
    let bytes = read(path)?;
    let sections = sections(path, &bytes)?;
    let only_certificates = sections
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
    } else if only_certificates {
        "no private key in the file, only a certificate: is this the certificate file?"
    } else {
        "no private key in the file (no \"-----BEGIN PRIVATE KEY-----\" block)"
    };
    Err(file_error(path, reason))
}

/// Checks a CA file (`tls_ca`): it holds certificates rustls can trust, and each is a CA's —
/// a certificate that is neither a CA's nor self-signed can never be the issuer of the
/// broker's certificate.
pub fn check_ca_file(path: &Path) -> Result<(), PkiError> {
    for cert in certificates(path, &read(path)?)? {
        webpki::anchor_from_trusted_cert(&cert).map_err(|e| {
            file_error(
                path,
                format!("rustls (webpki) cannot use it as a CA certificate: {e}"),
            )
        })?;
        let Ok((_, x509)) = x509_parser::parse_x509_certificate(&cert) else {
            continue;
        };
        // A version 1 certificate has no basicConstraints; rustls takes it as a CA.
        if x509.version() == X509Version::V3
            && !x509.is_ca()
            && x509.subject().as_raw() != x509.issuer().as_raw()
        {
            return Err(file_error(
                path,
                format!(
                    "not a CA certificate: it is the certificate of {} (issued by {}); give the \
                     certificate of the CA that signed the broker's ({CA_CERT}, made by `muster \
                     issuer tls ca`)",
                    x509.subject(),
                    x509.issuer()
                ),
            ));
        }
    }
    Ok(())
}

/// Checks a certificate file (its own certificate first, then any intermediates) and its key
/// for `role` at `now`: whatever rustls (webpki) checks of a certificate by itself — version,
/// validity, basicConstraints, extendedKeyUsage — and that the key is the certificate's.
/// Whether a CA the peer trusts signed it is for the peer to say.
pub fn check_certificate(
    cert: &Path,
    key: &Path,
    role: Role,
    now: SystemTime,
) -> Result<(), PkiError> {
    let chain = certificates(cert, &read(cert)?)?;
    if let Some((leaf, intermediates)) = chain.split_first() {
        refusal(leaf, intermediates, role, now).map_err(|reason| file_error(cert, reason))?;
    }
    let key_der = private_key(key)?;
    let provider = rustls::crypto::ring::default_provider();
    match rustls::sign::CertifiedKey::from_der(chain, key_der, &provider) {
        Ok(_) => Ok(()),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(file_error(
                key,
                format!(
                    "does not match the certificate {}: it is the key of another certificate",
                    cert.display()
                ),
            ))
        }
        Err(e) => Err(file_error(key, format!("rustls cannot use this key: {e}"))),
    }
}

/// Why rustls (webpki) would refuse `leaf` as a `role` certificate at `now`, if it would.
fn refusal(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    role: Role,
    now: SystemTime,
) -> Result<(), String> {
    let time = UnixTime::since_unix_epoch(now.duration_since(UNIX_EPOCH).unwrap_or_default());
    let usage = match role {
        Role::Server => webpki::KeyUsage::server_auth(),
        Role::Client => webpki::KeyUsage::client_auth(),
    };
    let verified = webpki::EndEntityCert::try_from(leaf).and_then(|cert| {
        cert.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &[],
            intermediates,
            time,
            usage,
            None,
            None,
        )
        .map(|_| ())
    });
    match verified {
        // With no trust anchor given, webpki checks the certificate's own properties first and
        // then finds no issuer: an unknown issuer is all that is left to the peer.
        Ok(()) | Err(webpki::Error::UnknownIssuer) => Ok(()),
        Err(e) => Err(reason(&e, leaf, role)),
    }
}

fn reason(error: &webpki::Error, leaf: &CertificateDer<'_>, role: Role) -> String {
    let (holder, command) = (role.holder(), role.command());
    let at = |t: &UnixTime| muster_proto::time::rfc3339(t.as_secs() as f64);
    match error {
        webpki::Error::UnsupportedCertVersion => {
            let version = x509_parser::parse_x509_certificate(leaf)
                .map_or(1, |(_, x509)| x509.version().0.saturating_add(1));
            format!(
                "X.509 version {version} certificate; rustls (webpki) accepts only version 3 — \
                 make it with `{command}`"
            )
        }
        webpki::Error::CaUsedAsEndEntity => format!(
            "a CA certificate (basicConstraints CA:TRUE), not a {holder} certificate; rustls \
             (webpki) refuses a CA certificate as a {holder}'s own — make one with `{command}`"
        ),
        webpki::Error::CertExpired { not_after, .. } => format!(
            "expired on {} — make a new one with `{command}`",
            at(not_after)
        ),
        webpki::Error::CertNotValidYet { not_before, .. } => format!(
            "not valid before {}: is this machine's clock right?",
            at(not_before)
        ),
        webpki::Error::RequiredEkuNotFoundContext(_) => {
            format!(
                "its extendedKeyUsage does not include {}, so rustls (webpki) refuses it as a \
                 {holder} certificate — make one with `{command}`",
                role.purpose()
            )
        }
        other => format!("rustls (webpki) refuses it: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> SystemTime {
        SystemTime::now()
    }

    const YEAR: Duration = Duration::from_secs(365 * 86400);

    fn server(names: &[&str]) -> Leaf {
        Leaf {
            role: Role::Server,
            common_name: names.first().unwrap_or(&"broker").to_string(),
            dns_names: names.iter().map(|s| s.to_string()).collect(),
            ips: vec!["127.0.0.1".parse().unwrap()],
        }
    }

    fn client(name: &str) -> Leaf {
        Leaf {
            role: Role::Client,
            common_name: name.into(),
            dns_names: vec![],
            ips: vec![],
        }
    }

    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn made_certificates_pass_the_checks_and_chain_to_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let ca_dir = dir.path().join("pki");
        let ca = make_ca(&ca_dir, "test CA", 10 * YEAR, now()).unwrap();
        assert_eq!(mode(&ca_dir), 0o700);
        assert_eq!(mode(&ca.key), 0o600);
        check_ca_file(&ca.cert).unwrap();
        let broker = make_leaf(
            &ca_dir,
            &server(&["localhost"]),
            &ca_dir.join("broker"),
            YEAR,
            now(),
        )
        .unwrap();
        assert_eq!(broker.cert, ca_dir.join("broker.crt"));
        assert_eq!(mode(&broker.key), 0o600);
        check_certificate(&broker.cert, &broker.key, Role::Server, now()).unwrap();
        let alice = make_leaf(
            &ca_dir,
            &client("alice"),
            &dir.path().join("new/alice"),
            YEAR,
            now(),
        )
        .unwrap();
        assert_eq!(mode(&dir.path().join("new")), 0o700);
        check_certificate(&alice.cert, &alice.key, Role::Client, now()).unwrap();

        // The certificates chain to the CA for their purpose, as rustls verifies them.
        let ca_der = certificates(&ca.cert, &read(&ca.cert).unwrap()).unwrap();
        let anchors = vec![webpki::anchor_from_trusted_cert(&ca_der[0]).unwrap()];
        let time = UnixTime::since_unix_epoch(now().duration_since(UNIX_EPOCH).unwrap());
        for (made, usage) in [
            (&broker, webpki::KeyUsage::server_auth()),
            (&alice, webpki::KeyUsage::client_auth()),
        ] {
            let der = certificates(&made.cert, &read(&made.cert).unwrap()).unwrap();
            let cert = webpki::EndEntityCert::try_from(&der[0]).unwrap();
            cert.verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &anchors,
                &[],
                time,
                usage,
                None,
                None,
            )
            .unwrap();
        }
        // A broker certificate is not a client's, and the other way round.
        let err = check_certificate(&broker.cert, &broker.key, Role::Client, now()).unwrap_err();
        assert!(
            err.to_string().contains("does not include clientAuth"),
            "{err}"
        );
        let err = check_certificate(&alice.cert, &alice.key, Role::Server, now()).unwrap_err();
        assert!(
            err.to_string().contains("does not include serverAuth"),
            "{err}"
        );
    }

    #[test]
    fn nothing_is_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        make_ca(dir.path(), "CA", YEAR, now()).unwrap();
        let before = std::fs::read(dir.path().join(CA_KEY)).unwrap();
        let err = make_ca(dir.path(), "CA", YEAR, now()).unwrap_err();
        assert_eq!(err, PkiError::Exists(dir.path().join(CA_CERT)));
        assert_eq!(std::fs::read(dir.path().join(CA_KEY)).unwrap(), before);
        std::fs::write(dir.path().join("alice.key"), "mine").unwrap();
        let err = make_leaf(
            dir.path(),
            &client("alice"),
            &dir.path().join("alice"),
            YEAR,
            now(),
        )
        .unwrap_err();
        assert_eq!(err, PkiError::Exists(dir.path().join("alice.key")));
        assert!(!dir.path().join("alice.crt").exists());
    }

    #[test]
    fn a_leaf_expires_with_its_ca_and_times_end_with_the_year_9999() {
        let dir = tempfile::tempdir().unwrap();
        let ca = make_ca(dir.path(), "CA", Duration::from_secs(3600), now()).unwrap();
        let leaf = make_leaf(
            dir.path(),
            &client("alice"),
            &dir.path().join("alice"),
            YEAR,
            now(),
        )
        .unwrap();
        assert_eq!(leaf.not_after, ca.not_after);
        let err = make_ca(
            &dir.path().join("far"),
            "CA",
            Duration::from_secs(10_000 * 365 * 86400),
            now(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("year 9999"), "{err}");
    }

    #[test]
    fn what_cannot_be_made_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let nothing = Leaf {
            ips: vec![],
            ..server(&[])
        };
        let err = make_leaf(dir.path(), &nothing, &dir.path().join("b"), YEAR, now()).unwrap_err();
        assert!(err.to_string().contains("at least one host name"), "{err}");
        let err = make_leaf(
            dir.path(),
            &server(&["not a name"]),
            &dir.path().join("b"),
            YEAR,
            now(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("not a DNS name"), "{err}");
        // No CA yet: the message says how to make one.
        let err = make_leaf(
            dir.path(),
            &client("alice"),
            &dir.path().join("a"),
            YEAR,
            now(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("muster issuer tls ca --dir"),
            "{err}"
        );
    }

    #[test]
    fn a_refused_certificate_is_named_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let ca = make_ca(dir.path(), "CA", 10 * YEAR, now()).unwrap();
        let alice = make_leaf(
            dir.path(),
            &client("alice"),
            &dir.path().join("alice"),
            YEAR,
            now(),
        )
        .unwrap();
        let bob = make_leaf(
            dir.path(),
            &client("bob"),
            &dir.path().join("bob"),
            YEAR,
            now(),
        )
        .unwrap();
        let check = |cert: &Path, key: &Path, at: SystemTime| {
            check_certificate(cert, key, Role::Client, at)
                .unwrap_err()
                .to_string()
        };
        // A key that is another certificate's: the key file is named.
        let err = check(&alice.cert, &bob.key, now());
        assert!(
            err.starts_with(&format!(
                "{}: does not match the certificate",
                bob.key.display()
            )),
            "{err}"
        );
        // The CA's certificate as one's own.
        let err = check(&ca.cert, &ca.key, now());
        assert!(
            err.contains("a CA certificate (basicConstraints CA:TRUE)"),
            "{err}"
        );
        // Expired, and not valid yet.
        let err = check(&alice.cert, &alice.key, now() + 2 * YEAR);
        assert!(err.contains("expired on"), "{err}");
        let err = check(&alice.cert, &alice.key, now() - YEAR);
        assert!(err.contains("not valid before"), "{err}");
        // Files with no certificate, or no key, in them.
        let err = check(&alice.key, &alice.key, now());
        assert!(
            err.contains("only a private key: is this the key file?"),
            "{err}"
        );
        let err = check(&alice.cert, &alice.cert, now());
        assert!(
            err.contains("only a certificate: is this the certificate file?"),
            "{err}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let err = check(&empty, &alice.key, now());
        assert!(err.contains("no certificate in the file"), "{err}");
        // A leaf as the CA file.
        let err = check_ca_file(&alice.cert).unwrap_err().to_string();
        assert!(
            err.contains("not a CA certificate: it is the certificate of CN=alice"),
            "{err}"
        );
        let err = check_ca_file(&alice.key).unwrap_err().to_string();
        assert!(err.contains("only a private key"), "{err}");
    }
}
