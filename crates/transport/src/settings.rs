//! The settings of a connection to the broker, the same for every role (client, daemon,
//! registry, simulator): TLS (the CA the broker's certificate must chain to, and optionally a
//! client certificate) and NATS credentials (a user and password, or a token). The
//! `[transport]` table of `server.toml` and `client.toml`:
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
        let fail = |e: muster_security::pki::PkiError| TransportError(e.to_string());
        if let Some(ca) = &self.tls_ca {
            muster_security::pki::check_ca_file(ca).map_err(fail)?;
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            muster_security::pki::check_certificate(
                cert,
                key,
                muster_security::pki::Role::Client,
                now,
            )
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

#[cfg(test)]
mod tests {
    use super::*;
    use muster_security::pki::{Leaf, Made, Role, make_ca, make_leaf};

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
