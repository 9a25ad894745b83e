//! Why a connection to the broker failed, in the terms of the settings that fix it, and the
//! attempts that find out: each URL tried alone when several fail together.

use crate::settings::Transport;

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

/// The failures of [`try_brokers`] for people, after "cannot reach the broker at URLS: ": the
/// cause, or with several URLs `URL: cause` for each, `; `-separated.
pub(crate) fn describe(causes: &[(String, Cause)]) -> String {
    if let [(_, cause)] = causes {
        return cause.to_string();
    }
    causes
        .iter()
        .map(|(url, cause)| format!("{url}: {cause}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Connects to `brokers` with `options`; on
/// failure returns each URL with why it failed. With one URL that is async-nats' own error;
/// with several, each URL is tried alone to tell them apart, since async-nats reports only the
/// last one it tried.
pub(crate) async fn try_brokers(
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
pub(crate) async fn diagnose(
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
