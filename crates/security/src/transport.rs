//! How a client, daemon or registry connects to the broker: TLS (the CA the broker's
//! certificate must chain to, and optionally a client certificate) and NATS credentials (a
//! user and password, or a token). The `[transport]` table of `server.toml` and
//! `client.toml`:
//!
//! ```toml
//! [transport]
//! tls_ca = "/etc/muster/ca.pem"        # set: TLS is required
//! tls_cert = "/etc/muster/web1.crt"    # a client certificate, when the broker asks for one
//! tls_key = "/etc/muster/web1.key.pem"
//! user = "muster"
//! password = "…"                       # or: token = "…"
//! ```
//!
//! TLS is rustls with the ring provider, the one crypto provider in the whole build.

use std::path::PathBuf;

use serde::Deserialize;

/// Transport settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Transport {
    /// CA certificates (PEM) that sign the broker's certificate. Set: TLS is required.
    pub tls_ca: Option<PathBuf>,
    /// A client certificate (PEM), for brokers that verify clients.
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// NATS user name (with `password`).
    pub user: Option<String>,
    /// NATS password.
    pub password: Option<String>,
    /// NATS token (instead of user and password).
    pub token: Option<String>,
}

/// Transport settings that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transport: {0}")]
pub struct TransportError(pub String);

impl Transport {
    /// Checks the settings go together, the files exist, and the certificates and key are
    /// ones rustls takes.
    pub fn check(&self) -> Result<(), TransportError> {
        let fail = |m: &str| Err(TransportError(m.to_string()));
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return fail("tls_cert and tls_key go together: give both or neither");
        }
        if self.tls_cert.is_some() && self.tls_ca.is_none() {
            return fail("a client certificate needs tls_ca: TLS is set up with the CA");
        }
        if self.user.is_some() != self.password.is_some() {
            return fail("user and password go together: give both or neither");
        }
        if self.token.is_some() && self.user.is_some() {
            return fail("give a token or a user and password, not both");
        }
        for path in [&self.tls_ca, &self.tls_cert, &self.tls_key]
            .into_iter()
            .flatten()
        {
            if !path.is_file() {
                return Err(TransportError(format!(
                    "{} is not a readable file",
                    path.display()
                )));
            }
        }
        self.check_certificates(std::time::SystemTime::now())
    }

    /// Checks the CA file and the client certificate and key as rustls would take them at
    /// `now`, so that one it refuses is named with the reason here, once, instead of each
    /// connection failing with a generic TLS error.
    fn check_certificates(&self, now: std::time::SystemTime) -> Result<(), TransportError> {
        let fail = |e: crate::pki::PkiError| TransportError(e.to_string());
        if let Some(ca) = &self.tls_ca {
            crate::pki::check_ca_file(ca).map_err(fail)?;
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            crate::pki::check_certificate(cert, key, crate::pki::Role::Client, now)
                .map_err(fail)?;
        }
        Ok(())
    }

    /// Whether TLS is used.
    pub fn tls(&self) -> bool {
        self.tls_ca.is_some()
    }

    /// Applies the settings to connection options.
    pub fn apply(
        &self,
        mut options: async_nats::ConnectOptions,
    ) -> Result<async_nats::ConnectOptions, TransportError> {
        self.check()?;
        if let Some(ca) = &self.tls_ca {
            options = options.require_tls(true).add_root_certificates(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        if let (Some(user), Some(password)) = (&self.user, &self.password) {
            options = options.user_and_password(user.clone(), password.clone());
        }
        if let Some(token) = &self.token {
            options = options.token(token.clone());
        }
        Ok(options)
    }
}

/// Waits until the broker has handled everything `client` sent before — its subscriptions, its
/// publishes — by sending a message to itself and waiting for it: a broker handles one
/// connection's messages in order. (`flush` only empties the client's own buffer.)
pub async fn round_trip(
    client: &async_nats::Client,
    timeout: std::time::Duration,
) -> Result<(), TransportError> {
    use futures::StreamExt;
    let fail = |e: &dyn std::fmt::Display| TransportError(format!("round trip to the broker: {e}"));
    let echo = client.new_inbox();
    let mut back = client.subscribe(echo.clone()).await.map_err(|e| fail(&e))?;
    client
        .publish(echo, Default::default())
        .await
        .map_err(|e| fail(&e))?;
    client.flush().await.map_err(|e| fail(&e))?;
    match tokio::time::timeout(timeout, back.next()).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(fail(&"the connection closed")),
        Err(_) => Err(fail(&format!("no echo within {timeout:?}"))),
    }
}

/// Why a connection to the broker failed, in the terms of the settings that fix it: the
/// source chain of async-nats' error (an I/O error wrapping a rustls error, a server error)
/// walked down to the cause, never just "IO error".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// Nothing listens at the address.
    Refused,
    /// The broker's certificate does not chain to a CA in `tls_ca`.
    UnknownIssuer,
    /// The broker's certificate is not for the host in the URL.
    NameMismatch,
    /// The broker's certificate is refused for another reason (expired, not yet valid, …).
    BadBrokerCertificate(String),
    /// The broker wants a client certificate and none is configured.
    CertificateRequired,
    /// The broker refused the client certificate.
    ClientCertificateRefused(String),
    /// Another TLS failure.
    Tls(String),
    /// The broker refused the user and password or token (or wants some).
    AuthFailed,
    /// No answer within the connection timeout.
    TimedOut,
    /// The host name does not resolve.
    Dns(String),
    /// Anything else, with what async-nats said.
    Other(String),
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cause::Refused => write!(f, "connection refused"),
            Cause::UnknownIssuer => write!(f, "TLS: unknown issuer"),
            Cause::NameMismatch => write!(f, "TLS: name mismatch"),
            Cause::BadBrokerCertificate(why) => {
                write!(f, "TLS: bad certificate (the broker's: {why})")
            }
            Cause::CertificateRequired => write!(f, "TLS: certificate required"),
            Cause::ClientCertificateRefused(why) => {
                write!(
                    f,
                    "TLS: bad certificate (the broker refused the client's: {why})"
                )
            }
            Cause::Tls(why) => write!(f, "TLS: {why}"),
            Cause::AuthFailed => write!(f, "auth failed"),
            Cause::TimedOut => write!(f, "timed out"),
            Cause::Dns(why) => write!(f, "DNS: {why}"),
            Cause::Other(why) => write!(f, "{why}"),
        }
    }
}

impl Cause {
    /// Finds the cause of `error`; `transport` are the settings it was made with (whether a
    /// client certificate or credentials were given decides what the broker's refusal means).
    pub fn of(error: &async_nats::ConnectError, transport: &Transport) -> Cause {
        use async_nats::ConnectErrorKind as Kind;
        match error.kind() {
            Kind::Authentication | Kind::AuthorizationViolation => return Cause::AuthFailed,
            Kind::TimedOut => return Cause::TimedOut,
            Kind::Dns => return Cause::Dns(innermost(error)),
            _ => {}
        }
        let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(e) = next {
            if let Some(tls) = e.downcast_ref::<async_nats::rustls::Error>() {
                return Cause::of_tls(tls, transport);
            }
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                // An I/O error's `source` skips the error it wraps: look at it directly.
                if let Some(tls) = io
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<async_nats::rustls::Error>())
                {
                    return Cause::of_tls(tls, transport);
                }
                match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => return Cause::Refused,
                    std::io::ErrorKind::TimedOut => return Cause::TimedOut,
                    _ => {}
                }
            }
            next = e.source();
        }
        match error.kind() {
            Kind::Tls => Cause::Tls(innermost(error)),
            _ => Cause::Other(innermost(error)),
        }
    }

    fn of_tls(error: &async_nats::rustls::Error, transport: &Transport) -> Cause {
        use async_nats::rustls::{AlertDescription as Alert, CertificateError as Cert, Error};
        match error {
            Error::InvalidCertificate(Cert::UnknownIssuer | Cert::BadSignature) => {
                Cause::UnknownIssuer
            }
            Error::InvalidCertificate(
                Cert::NotValidForName | Cert::NotValidForNameContext { .. },
            ) => Cause::NameMismatch,
            Error::InvalidCertificate(why) => Cause::BadBrokerCertificate(format!("{why:?}")),
            Error::AlertReceived(Alert::CertificateRequired) => Cause::CertificateRequired,
            // Some brokers (Go's TLS before 1.3) answer a missing certificate with this alert.
            Error::AlertReceived(Alert::BadCertificate) if transport.tls_cert.is_none() => {
                Cause::CertificateRequired
            }
            Error::AlertReceived(
                alert @ (Alert::BadCertificate
                | Alert::UnknownCA
                | Alert::UnsupportedCertificate
                | Alert::CertificateExpired
                | Alert::CertificateRevoked
                | Alert::CertificateUnknown
                | Alert::DecryptError),
            ) => Cause::ClientCertificateRefused(format!("{alert:?}")),
            other => Cause::Tls(other.to_string()),
        }
    }

    /// What to do about it, for people.
    pub fn hint(&self, transport: &Transport) -> String {
        match self {
            Cause::Refused | Cause::TimedOut => {
                "Is it running? Point --broker (or MUSTER_BROKER) at it.".to_string()
            }
            Cause::Other(_) => "Check the broker URL, and the [transport] settings against the \
                                broker's."
                .to_string(),
            Cause::Dns(_) => "Check the host name in the broker URL.".to_string(),
            Cause::UnknownIssuer if transport.tls_ca.is_none() => {
                "The broker speaks TLS, and its certificate is not signed by a CA this machine \
                 trusts: set [transport] tls_ca to the CA that signed it."
                    .to_string()
            }
            Cause::UnknownIssuer => "The broker's certificate is not signed by the CA in \
                                     [transport] tls_ca: set tls_ca to the CA that signed it."
                .to_string(),
            Cause::NameMismatch => "Use a broker URL with a host name (or IP address) that the \
                                    broker's certificate names."
                .to_string(),
            Cause::BadBrokerCertificate(_) => {
                "The broker's certificate cannot be used: renew or reissue it.".to_string()
            }
            Cause::CertificateRequired => "The broker refused the client without a certificate: \
                                           set [transport] tls_cert and tls_key."
                .to_string(),
            Cause::ClientCertificateRefused(_) => "The broker refused the client certificate: set \
                                                   [transport] tls_cert and tls_key to a \
                                                   certificate signed by the broker's client CA."
                .to_string(),
            Cause::Tls(_) => "Check the [transport] TLS settings against the broker's.".to_string(),
            Cause::AuthFailed if transport.user.is_none() && transport.token.is_none() => {
                "The broker wants credentials: set [transport] user and password, or token."
                    .to_string()
            }
            Cause::AuthFailed => "The broker refused the credentials: check [transport] user and \
                                  password, or token."
                .to_string(),
        }
    }
}

/// The last message in an error's source chain: the one that says what happened.
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut last = error;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

/// Connects to `brokers` with `options`; on
/// failure returns each URL with why it failed. With one URL that is async-nats' own error;
/// with several, each URL is tried alone to tell them apart, since async-nats reports only the
/// last one it tried.
pub async fn connect(
    brokers: &[String],
    transport: &Transport,
    options: async_nats::ConnectOptions,
) -> Result<async_nats::Client, Vec<(String, Cause)>> {
    let error = match options.clone().connect(brokers.to_vec()).await {
        Ok(client) => return Ok(client),
        Err(e) => e,
    };
    if brokers.len() <= 1 {
        let url = brokers.first().cloned().unwrap_or_default();
        return Err(vec![(url, Cause::of(&error, transport))]);
    }
    let mut causes = Vec::new();
    for url in brokers {
        match options.clone().connect(url.as_str()).await {
            // It came up meanwhile: connect to all of them again, for failover.
            Ok(probe) => {
                drop(probe);
                return match options.clone().connect(brokers.to_vec()).await {
                    Ok(client) => Ok(client),
                    Err(e) => Err(vec![(brokers.join(", "), Cause::of(&e, transport))]),
                };
            }
            Err(e) => causes.push((url.clone(), Cause::of(&e, transport))),
        }
    }
    Err(causes)
}

/// Why each of `brokers` cannot be connected to now: one attempt at each alone, with the
/// transport settings. For services that let async-nats retry, whose events name only the
/// kind of failure ("IO error"): they ask this what the cause is. Empty when every URL
/// connects.
pub async fn diagnose(
    brokers: &[String],
    transport: &Transport,
    timeout: std::time::Duration,
) -> Vec<(String, Cause)> {
    let Ok(options) = transport.apply(async_nats::ConnectOptions::new()) else {
        return Vec::new();
    };
    let mut causes = Vec::new();
    for url in brokers {
        match options
            .clone()
            .name("muster-diagnosis")
            .connection_timeout(timeout)
            .connect(url.as_str())
            .await
        {
            Ok(probe) => drop(probe),
            Err(e) => causes.push((url.clone(), Cause::of(&e, transport))),
        }
    }
    causes
}

/// What a retrying service has said about its failures, so that it says each cause once
/// while it stays the same rather than at every attempt.
#[derive(Debug, Default)]
pub struct Retrying {
    said: std::sync::Mutex<Vec<(String, Cause)>>,
    asking: std::sync::atomic::AtomicBool,
}

impl Retrying {
    /// The causes of a failed attempt, if they differ from the last ones said (and no other
    /// call is asking the brokers already).
    pub async fn failed(
        &self,
        brokers: &[String],
        transport: &Transport,
    ) -> Option<Vec<(String, Cause)>> {
        use std::sync::atomic::Ordering;
        if self.asking.swap(true, Ordering::AcqRel) {
            return None;
        }
        let causes = diagnose(brokers, transport, std::time::Duration::from_secs(3)).await;
        self.asking.store(false, Ordering::Release);
        if causes.is_empty() {
            return None;
        }
        let mut said = self.said.lock().unwrap_or_else(|e| e.into_inner());
        if *said == causes {
            return None;
        }
        *said = causes.clone();
        Some(causes)
    }

    /// Connected: the next failure is said again.
    pub fn connected(&self) {
        self.said.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// The connection's event callback for a service that retries (the daemon, the registry):
/// logs connects and disconnects, and — since async-nats' events name only the kind of a
/// failed attempt ("IO error") — asks each broker once why, saying it when the cause changes.
pub fn log_events(
    brokers: &[String],
    transport: &Transport,
) -> impl Fn(async_nats::Event) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + Sync>>
+ Send
+ Sync
+ 'static {
    use async_nats::Event;
    use std::sync::Arc;
    let brokers = Arc::new(brokers.to_vec());
    let transport = Arc::new(transport.clone());
    let retrying = Arc::new(Retrying::default());
    move |event| {
        let (brokers, transport, retrying) = (brokers.clone(), transport.clone(), retrying.clone());
        Box::pin(async move {
            match event {
                Event::Connected => {
                    retrying.connected();
                    tracing::info!("connected to the broker");
                }
                Event::Disconnected => {
                    tracing::warn!("disconnected from the broker; reconnecting")
                }
                Event::ClientError(_) => {
                    // On a task of its own: the callback's future must be Sync, and a
                    // connection attempt is not.
                    tokio::spawn(async move {
                        let causes = retrying.failed(&brokers, &transport).await;
                        for (url, cause) in causes.unwrap_or_default() {
                            tracing::warn!(
                                "cannot connect to the broker at {url}: {cause}; retrying. {}",
                                cause.hint(&transport)
                            );
                        }
                    });
                }
                other => tracing::warn!(%other, "broker connection event"),
            }
        })
    }
}

/// The failures of [`connect`] for people, after "cannot reach the broker at URLS: ": the
/// cause, or with several URLs `URL: cause` for each, `; `-separated.
pub fn describe(causes: &[(String, Cause)]) -> String {
    if let [(_, cause)] = causes {
        return cause.to_string();
    }
    causes
        .iter()
        .map(|(url, cause)| format!("{url}: {cause}"))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{Leaf, Made, Role, make_ca, make_leaf};

    const YEAR: std::time::Duration = std::time::Duration::from_secs(365 * 86400);

    /// A CA and a client certificate made with it.
    fn certificates(dir: &std::path::Path) -> (Made, Made) {
        let now = std::time::SystemTime::now();
        let ca = make_ca(dir, "test CA", YEAR, now).unwrap();
        let client = Leaf {
            role: Role::Client,
            common_name: "web1".into(),
            dns_names: vec![],
            ips: vec![],
        };
        let made = make_leaf(dir, &client, &dir.join("web1"), YEAR, now).unwrap();
        (ca, made)
    }

    #[test]
    fn certificates_rustls_would_refuse_are_named_when_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, client) = certificates(dir.path());
        let ok = Transport {
            tls_ca: Some(ca.cert.clone()),
            tls_cert: Some(client.cert.clone()),
            tls_key: Some(client.key.clone()),
            ..Transport::default()
        };
        for (t, needle) in [
            (
                Transport {
                    tls_key: Some(ca.key.clone()),
                    ..ok.clone()
                },
                format!("{}: does not match the certificate", ca.key.display()),
            ),
            (
                Transport {
                    tls_cert: Some(ca.cert.clone()),
                    tls_key: Some(ca.key.clone()),
                    ..ok.clone()
                },
                format!("{}: a CA certificate", ca.cert.display()),
            ),
            (
                Transport {
                    tls_ca: Some(client.key.clone()),
                    ..ok.clone()
                },
                "no certificate in the file, only a private key".to_string(),
            ),
        ] {
            let err = t.check().unwrap_err().to_string();
            assert!(err.starts_with("transport: "), "{err}");
            assert!(err.contains(&needle), "{err}");
        }
    }

    /// The cause is found however deep async-nats wrapped it.
    #[test]
    fn causes_are_found_down_the_source_chain() {
        use async_nats::rustls::{AlertDescription as Alert, CertificateError as Cert, Error};
        use async_nats::{ConnectError, ConnectErrorKind as Kind};
        use std::io;
        let tls = |e: Error| {
            ConnectError::with_source(Kind::Io, io::Error::new(io::ErrorKind::InvalidData, e))
        };
        let with_cert = Transport {
            tls_cert: Some("c".into()),
            ..Transport::default()
        };
        let none = Transport::default();
        let cases = [
            (
                ConnectError::with_source(
                    Kind::Io,
                    io::Error::from(io::ErrorKind::ConnectionRefused),
                ),
                &none,
                Cause::Refused,
            ),
            (
                tls(Error::InvalidCertificate(Cert::UnknownIssuer)),
                &none,
                Cause::UnknownIssuer,
            ),
            (
                tls(Error::InvalidCertificate(Cert::NotValidForName)),
                &none,
                Cause::NameMismatch,
            ),
            (
                tls(Error::AlertReceived(Alert::CertificateRequired)),
                &none,
                Cause::CertificateRequired,
            ),
            (
                tls(Error::AlertReceived(Alert::BadCertificate)),
                &none,
                Cause::CertificateRequired,
            ),
            (
                tls(Error::AlertReceived(Alert::BadCertificate)),
                &with_cert,
                Cause::ClientCertificateRefused("BadCertificate".into()),
            ),
            (
                ConnectError::new(Kind::AuthorizationViolation),
                &none,
                Cause::AuthFailed,
            ),
            (ConnectError::new(Kind::TimedOut), &none, Cause::TimedOut),
        ];
        for (error, transport, cause) in cases {
            assert_eq!(Cause::of(&error, transport), cause, "{error}");
            assert!(!cause.to_string().contains("IO error"));
        }
        assert!(Cause::Refused.hint(&none).contains("Is it running?"));
        assert!(!Cause::AuthFailed.hint(&none).contains("Is it running?"));
    }

    #[test]
    fn settings_that_do_not_go_together_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, client) = certificates(dir.path());
        let ok = Transport {
            tls_ca: Some(ca.cert.clone()),
            tls_cert: Some(client.cert.clone()),
            tls_key: Some(client.key.clone()),
            user: Some("u".into()),
            password: Some("p".into()),
            token: None,
        };
        assert_eq!(ok.check(), Ok(()));
        for (t, needle) in [
            (
                Transport {
                    tls_key: None,
                    ..ok.clone()
                },
                "go together",
            ),
            (
                Transport {
                    tls_ca: None,
                    ..ok.clone()
                },
                "needs tls_ca",
            ),
            (
                Transport {
                    password: None,
                    ..ok.clone()
                },
                "user and password",
            ),
            (
                Transport {
                    token: Some("t".into()),
                    ..ok.clone()
                },
                "not both",
            ),
            (
                Transport {
                    tls_ca: Some(dir.path().join("none")),
                    ..ok.clone()
                },
                "not a readable file",
            ),
        ] {
            let err = t.check().unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }
}
