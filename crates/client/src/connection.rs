//! The connection to the broker.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use muster_proto::{Request, Response, SecureEnvelope, subject};
use muster_security::signed::{self, sign_request};
use muster_security::{Credential, Kind, SecretKey, TrustError, Verifier};
use tracing::debug;

use crate::exit::ExitStatus;
use crate::report::IgnoreReason;

/// Why a message from the network was not taken as an answer.
#[derive(Debug)]
pub(crate) enum Unopened {
    /// Not an acknowledgement or a reply at all.
    Garbage,
    /// One that could not be verified.
    Untrusted {
        /// Why.
        why: IgnoreReason,
        /// What it claims to be, unverified, when it decodes.
        claimed: Option<Claimed>,
    },
}

/// What an unverified message claims to be: to tell replies from acknowledgements, and
/// answers to this request from others.
#[derive(Debug)]
pub(crate) struct Claimed {
    /// The request it says it answers.
    pub(crate) request_id: String,
    /// Whether it is an acknowledgement (else a reply).
    pub(crate) ack: bool,
}

/// What a message claims to be, without checking any signature.
fn claimed(payload: &[u8]) -> Option<Claimed> {
    let response = match serde_json::from_slice::<muster_proto::SignedMessage>(payload) {
        Ok(s) => Response::decode(s.message.as_bytes()).ok(),
        Err(_) => Response::decode(payload).ok(),
    }?;
    Some(Claimed {
        request_id: response.request_id().to_string(),
        ack: matches!(response, Response::Ack(_)),
    })
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ConnectConfig {
    /// Broker URLs, tried in turn.
    pub brokers: Vec<String>,
    /// The collective to address.
    pub collective: String,
    /// The caller's name, sent in every request.
    pub caller: String,
    /// How long to wait for the broker.
    pub connect_timeout: Duration,
    /// Sign requests with this key and credential (the caller becomes the credential's name).
    pub signing: Option<Signing>,
    /// Accept only replies signed by nodes whose credentials this issuer signed.
    pub verifier: Option<Verifier>,
    /// TLS and NATS credentials.
    pub transport: muster_transport::Transport,
}

/// The caller's key and credential.
#[derive(Debug, Clone)]
pub struct Signing {
    /// The private key.
    pub key: Arc<SecretKey>,
    /// The credential token.
    pub credential: String,
    /// The credential's name.
    pub caller: String,
}

impl Signing {
    /// Reads the caller's key and credential files; the credential must be for that key.
    pub fn load(
        key: &std::path::Path,
        credential: &std::path::Path,
    ) -> Result<Signing, ClientError> {
        let secret = SecretKey::read(key).map_err(|e| ClientError::Invalid(format!("key: {e}")))?;
        let token = std::fs::read_to_string(credential)
            .map_err(|e| {
                ClientError::Invalid(format!(
                    "cannot read the credential {}: {e}",
                    credential.display()
                ))
            })?
            .trim()
            .to_string();
        let (claimed, _, _) = Credential::decode_unverified(&token).map_err(|e| {
            ClientError::Invalid(format!("credential {}: {e}", credential.display()))
        })?;
        if claimed.key().ok() != Some(secret.public()) {
            return Err(ClientError::Invalid(format!(
                "the credential {} is for another key than {}",
                credential.display(),
                key.display()
            )));
        }
        Ok(Signing {
            key: Arc::new(secret),
            credential: token,
            caller: claimed.name,
        })
    }
}

impl ConnectConfig {
    /// Where and how to connect as `config` says: its brokers and collective, the caller's
    /// key and credential to sign with, and the issuer to check replies against.
    pub fn from_config(config: &crate::ClientConfig) -> Result<ConnectConfig, ClientError> {
        let signing = match (&config.key, &config.credential) {
            (Some(key), Some(credential)) => Some(Signing::load(key, credential)?),
            (None, None) => None,
            _ => {
                return Err(ClientError::Invalid(
                    "the client config gives only one of key and credential: requests are \
                     signed with the key, and nodes need the credential to check the signature"
                        .into(),
                ));
            }
        };
        let verifier = match &config.issuer {
            Some(path) => {
                let issuer = muster_security::PublicKey::read(path)
                    .map_err(|e| ClientError::Invalid(format!("issuer: {e}")))?;
                Some(Verifier::new(issuer, signed::PEER_CLOCK_SKEW_SECS))
            }
            None => None,
        };
        Ok(ConnectConfig {
            brokers: config.brokers.clone(),
            collective: config.collective.clone(),
            signing,
            verifier,
            transport: config.transport.clone(),
            ..ConnectConfig::default()
        })
    }
}

impl Default for ConnectConfig {
    fn default() -> Self {
        ConnectConfig {
            brokers: vec!["nats://127.0.0.1:4222".to_string()],
            collective: subject::DEFAULT_COLLECTIVE.to_string(),
            caller: std::env::var("USER").unwrap_or_else(|_| "operator".to_string()),
            connect_timeout: Duration::from_secs(3),
            signing: None,
            verifier: None,
            transport: Default::default(),
        }
    }
}

/// What can go wrong talking to the broker or the nodes.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No broker could be reached.
    #[error("cannot reach the broker at {brokers}: {message}\n{hint}")]
    BrokerUnreachable {
        /// The URLs tried.
        brokers: String,
        /// Why: the cause for each URL (refused, TLS: unknown issuer, auth failed, …).
        message: String,
        /// What to do about the first cause.
        hint: String,
    },
    /// A broker URL is not valid.
    #[error("invalid broker URL {url:?}: {message}")]
    BrokerUrl {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// The connection failed after it was made.
    #[error("broker error: {0}")]
    Broker(String),
    /// The request or its inputs are not valid.
    #[error("{0}")]
    Invalid(String),
    /// No registry answered (nobody subscribes its query subject, or none answered in time).
    #[error("{0}")]
    NoRegistry(String),
    /// A registry answered with something that cannot be used: an answer that does not decode,
    /// or the registry's own error.
    #[error("{0}")]
    Registry(String),
    /// A `--no-results` request could not be announced to a registry, so it was not sent.
    #[error("{0}\nWith --no-results nobody would see the replies: nothing was sent.")]
    Uncollected(String),
    /// A request looked up after the fact is neither in the journal nor in a registry.
    #[error("{0}")]
    UnknownRequest(String),
    /// A node list could not be read.
    #[error("cannot read the node list {path}: {message}")]
    NodeList {
        /// The file (`-` for stdin).
        path: String,
        /// Why.
        message: String,
    },
}

impl ClientError {
    /// The exit status this error ends a command with.
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            ClientError::BrokerUnreachable { .. } | ClientError::Broker(_) => {
                ExitStatus::BrokerUnreachable
            }
            ClientError::BrokerUrl { .. }
            | ClientError::Invalid(_)
            | ClientError::NoRegistry(_)
            | ClientError::Registry(_)
            | ClientError::Uncollected(_)
            | ClientError::UnknownRequest(_)
            | ClientError::NodeList { .. } => ExitStatus::Usage,
        }
    }
}

/// A connected client.
#[derive(Clone)]
pub struct Client {
    pub(crate) nats: async_nats::Client,
    pub(crate) collective: String,
    pub(crate) caller: String,
    pub(crate) sender: String,
    pub(crate) signing: Option<Signing>,
    pub(crate) verifier: Option<Verifier>,
    untrusted: Arc<AtomicUsize>,
}

impl Client {
    /// Connects to the first broker that answers.
    pub async fn connect(config: &ConnectConfig) -> Result<Client, ClientError> {
        subject::check_token("collective", &config.collective)
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        let connection = muster_transport::Connection {
            connect_timeout: config.connect_timeout,
            // Large fleets answer at once: a subscriber that falls behind loses messages.
            subscription_capacity: Some(1 << 18),
            client_capacity: Some(1 << 14),
            ignore_discovered_servers: true,
            ..muster_transport::Connection::new("muster-client", &config.brokers, &config.transport)
        };
        let nats = muster_transport::connect(&connection)
            .await
            .map_err(|e| match e {
                muster_transport::ConnectError::BrokerUrl { url, message } => {
                    ClientError::BrokerUrl { url, message }
                }
                muster_transport::ConnectError::Transport(e) => ClientError::Invalid(e.to_string()),
                muster_transport::ConnectError::Unreachable {
                    brokers,
                    message,
                    hint,
                    ..
                } => ClientError::BrokerUnreachable {
                    brokers,
                    message,
                    hint,
                },
            })?;
        let sender = hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "unknown".to_string());
        Ok(Client {
            nats,
            collective: config.collective.clone(),
            caller: config
                .signing
                .as_ref()
                .map_or_else(|| config.caller.clone(), |s| s.caller.clone()),
            sender,
            signing: config.signing.clone(),
            verifier: config.verifier.clone(),
            untrusted: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The underlying NATS client, for programs that need more than this library offers.
    pub fn nats(&self) -> &async_nats::Client {
        &self.nats
    }

    /// The caller's name, sent in every request.
    pub fn caller(&self) -> &str {
        &self.caller
    }

    /// How many acknowledgements and replies were ignored because they were not signed by a
    /// node the issuer vouches for (or claimed another sender than the signer).
    pub fn untrusted(&self) -> usize {
        self.untrusted.load(Ordering::Relaxed)
    }

    /// Whether requests are signed.
    pub fn signs(&self) -> bool {
        self.signing.is_some()
    }

    /// The request in its envelope: signed when the client has a key.
    pub(crate) fn envelope(&self, request: &Request) -> SecureEnvelope {
        match &self.signing {
            Some(s) => sign_request(request, &s.key, &s.credential),
            None => SecureEnvelope::unsigned(request),
        }
    }

    /// An acknowledgement or reply from the network, if it can be trusted: with an issuer
    /// configured it must be signed by a node credential naming its sender.
    pub(crate) fn open(&self, payload: &[u8], now: f64) -> Result<Response, Unopened> {
        let untrusted = |why: &dyn std::fmt::Display, reason: &'static str| {
            debug!(%why, "ignored an untrusted acknowledgement or reply");
            self.untrusted.fetch_add(1, Ordering::Relaxed);
            Err(Unopened::Untrusted {
                why: IgnoreReason::from_trust_reason(reason),
                claimed: claimed(payload),
            })
        };
        match signed::open(self.verifier.as_ref(), Kind::Node, payload, now) {
            Ok((inner, signer)) => match (Response::decode(&inner), signer) {
                (Ok(r), Some(signer)) if signer != r.sender() => untrusted(
                    &format!("{} signed a reply of {}", signer, r.sender()),
                    "sender_mismatch",
                ),
                (Ok(r), _) => Ok(r),
                // Unwrapped from a signed message, and nothing usable inside.
                (Err(e), _) if matches!(inner, std::borrow::Cow::Owned(_)) => {
                    untrusted(&e, "malformed")
                }
                (Err(_), _) => Err(Unopened::Garbage),
            },
            // Unsigned garbage is only garbage; an unsigned reply, where replies must be
            // signed, is one anybody could have forged.
            Err(TrustError::Unsigned) if Response::decode(payload).is_err() => {
                Err(Unopened::Garbage)
            }
            Err(e) => untrusted(&e, e.reason()),
        }
    }

    /// The collective requests go to.
    pub fn collective(&self) -> &str {
        &self.collective
    }
}
