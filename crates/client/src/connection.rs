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
    /// The node it says it comes from.
    pub(crate) sender: String,
}

/// What a message claims to be, without checking any signature.
pub(crate) fn claimed(payload: &[u8]) -> Option<Claimed> {
    let response = match serde_json::from_slice::<muster_proto::SignedMessage>(payload) {
        Ok(s) => Response::decode(s.message.as_bytes()).ok(),
        Err(_) => Response::decode(payload).ok(),
    }?;
    Some(Claimed {
        request_id: response.request_id().to_string(),
        ack: matches!(response, Response::Ack(_)),
        sender: response.sender().to_string(),
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
    /// How many messages a subscription (a request's inbox) buffers before the client drops
    /// them and says so in the report (`lost`). The default, [`INBOX_CAPACITY`], holds an
    /// acknowledgement and a reply of every node of a 130,000-node set with room to spare.
    /// Smaller only to test what an overflow does.
    pub inbox_capacity: usize,
    /// How many threads open (verify and decode) acknowledgements and replies at once
    /// (`None`: one per core). `Some(1)` opens them on the receiving task, one after the
    /// other — what the benchmark compares with.
    pub open_workers: Option<usize>,
    /// Where the node credentials found signed by the issuer are kept between runs
    /// ([`crate::remembered`]); `None`: nowhere, each run checks every credential.
    pub remembered_credentials: Option<std::path::PathBuf>,
}

/// The messages a request's inbox buffers by default: room for an acknowledgement and a reply
/// from each of 2 × 65,536 nodes. async-nats sizes every subscription of a connection alike,
/// and a buffer only takes memory for what it holds.
pub const INBOX_CAPACITY: usize = 1 << 18;

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
            inbox_capacity: INBOX_CAPACITY,
            open_workers: None,
            remembered_credentials: None,
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
    opener: Opener,
    open_workers: usize,
    pub(crate) losses: Arc<muster_transport::Losses>,
    remembered: Option<std::path::PathBuf>,
}

/// Opens acknowledgements and replies: what [`Client::open`] needs, to be sent to the
/// threads that open a batch of them.
#[derive(Clone)]
struct Opener {
    verifier: Option<Verifier>,
    untrusted: Arc<AtomicUsize>,
}

/// A batch of signed answers smaller than this many messages per thread is opened on the
/// receiving task: handing it over would cost more than it saves.
const MIN_PER_WORKER: usize = 16;

/// What the losses of a connection were at one moment, to tell what a request lost.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LossMark {
    slow_consumer: usize,
    disconnected: usize,
}

impl LossMark {
    /// What was lost since this mark, if anything.
    pub(crate) fn since(self, losses: &muster_transport::Losses) -> Option<crate::report::Lost> {
        let lost = crate::report::Lost {
            slow_consumer: losses.slow_consumer().saturating_sub(self.slow_consumer),
            disconnected: losses.disconnected().saturating_sub(self.disconnected),
        };
        (lost.slow_consumer > 0 || lost.disconnected > 0).then_some(lost)
    }
}

impl Client {
    /// Connects to the first broker that answers.
    pub async fn connect(config: &ConnectConfig) -> Result<Client, ClientError> {
        subject::check_token("collective", &config.collective)
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        let losses = Arc::new(muster_transport::Losses::default());
        let connection = muster_transport::Connection {
            connect_timeout: config.connect_timeout,
            // Large fleets answer at once: a subscriber that falls behind loses messages, and
            // the report says so (`lost`, from the counted slow-consumer events).
            subscription_capacity: Some(config.inbox_capacity.max(1)),
            client_capacity: Some(1 << 14),
            ignore_discovered_servers: true,
            losses: Some(losses.clone()),
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
            opener: Opener {
                verifier: config.verifier.clone(),
                untrusted: Arc::new(AtomicUsize::new(0)),
            },
            open_workers: config.open_workers.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
            }),
            losses,
            remembered: config.verifier.as_ref().and_then(|verifier| {
                let path = config.remembered_credentials.clone()?;
                verifier.recall(crate::remembered::load(&path));
                Some(path)
            }),
        })
    }

    /// Keeps the node credentials found signed by the issuer since the last call for later
    /// runs ([`ConnectConfig::remembered_credentials`]). Done at the end of every request and
    /// discovery; a failure to write only costs later runs the checks.
    pub(crate) fn keep_found_credentials(&self) {
        let (Some(path), Some(verifier)) = (&self.remembered, &self.opener.verifier) else {
            return;
        };
        if let Err(e) = crate::remembered::append(path, &verifier.found()) {
            debug!(path = %path.display(), error = %e, "cannot keep the credentials checked");
        }
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
        self.opener.untrusted.load(Ordering::Relaxed)
    }

    /// The connection's losses now, to compare with after a request.
    pub(crate) fn loss_mark(&self) -> LossMark {
        LossMark {
            slow_consumer: self.losses.slow_consumer(),
            disconnected: self.losses.disconnected(),
        }
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

    /// Opens acknowledgements and replies from the network, if they can be trusted: with an
    /// issuer configured each must be signed by a node credential naming its sender.
    ///
    /// The messages are a batch received at `now` (the broker's statuses, `None`, are not
    /// opened), in their order. A large batch of answers to verify is split over [`ConnectConfig::open_workers`]
    /// threads, which verify signatures on every core while the connection keeps receiving;
    /// the result is the same as opening one after the other. Credentials are judged at `now`,
    /// when the messages arrived, however long opening takes.
    pub(crate) async fn open_all(
        &self,
        messages: &[async_nats::Message],
        now: f64,
    ) -> Vec<Option<Result<Response, Unopened>>> {
        self.opener.open_all(self.open_workers, messages, now).await
    }

    /// Whether answers are verified (an issuer is configured).
    pub(crate) fn verifies(&self) -> bool {
        self.opener.verifier.is_some()
    }

    /// The collective requests go to.
    pub fn collective(&self) -> &str {
        &self.collective
    }
}

impl Opener {
    /// An acknowledgement or reply from the network, if it can be trusted: with an issuer
    /// configured it must be signed by a node credential naming its sender.
    fn open(&self, payload: &[u8], now: f64) -> Result<Response, Unopened> {
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

    /// [`Client::open_all`] with `workers` threads.
    async fn open_all(
        &self,
        workers: usize,
        messages: &[async_nats::Message],
        now: f64,
    ) -> Vec<Option<Result<Response, Unopened>>> {
        let payloads: Vec<Option<bytes::Bytes>> = messages
            .iter()
            .map(|m| m.status.is_none().then(|| m.payload.clone()))
            .collect();
        // Unsigned answers only need decoding, cheaper than handing them to another thread.
        let workers = match self.verifier {
            Some(_) => workers.min(payloads.len() / MIN_PER_WORKER).max(1),
            None => 1,
        };
        if workers == 1 {
            return payloads
                .iter()
                .map(|p| p.as_ref().map(|p| self.open(p, now)))
                .collect();
        }
        let per_worker = payloads.len().div_ceil(workers);
        let chunks: Vec<Vec<Option<bytes::Bytes>>> =
            payloads.chunks(per_worker).map(<[_]>::to_vec).collect();
        let tasks: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let opener = self.clone();
                let fallback = chunk.clone();
                let task = tokio::task::spawn_blocking(move || {
                    chunk
                        .iter()
                        .map(|p| p.as_ref().map(|p| opener.open(p, now)))
                        .collect::<Vec<_>>()
                });
                (task, fallback)
            })
            .collect();
        let mut opened = Vec::with_capacity(payloads.len());
        for (task, chunk) in tasks {
            match task.await {
                Ok(part) => opened.extend(part),
                // The runtime is shutting down (or a thread panicked): open them here.
                Err(e) => {
                    debug!(error = %e, "opening on a worker thread failed; opening here");
                    opened.extend(chunk.iter().map(|p| p.as_ref().map(|p| self.open(p, now))));
                }
            }
        }
        opened
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use muster_proto::{Ack, Reply, StatusCode};

    fn message(payload: Vec<u8>) -> async_nats::Message {
        async_nats::Message {
            subject: "_INBOX.x.1".into(),
            reply: None,
            payload: payload.into(),
            headers: None,
            status: None,
            description: None,
            length: 0,
        }
    }

    /// Every kind of answer a node (or anyone) can send, many times over, so that a batch is
    /// split over threads: opened on threads, each comes out as opened one after the other,
    /// in the same place.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_opens_on_threads_as_it_does_in_turn() {
        let issuer = SecretKey::generate();
        let mallory = SecretKey::generate();
        let mut messages = Vec::new();
        for n in 0..20 {
            let name = format!("web{n}");
            let key = SecretKey::generate();
            let credential = Credential::new(Kind::Node, &name, &key.public(), 900, 3600, None)
                .unwrap()
                .issue(&issuer);
            let ack = serde_json::to_string(&Ack::new("id", &name)).unwrap();
            let reply = serde_json::to_string(&Reply::new(
                "id",
                &name,
                1000.0,
                StatusCode::Ok,
                "OK",
                serde_json::json!({}),
            ))
            .unwrap();
            let other = serde_json::to_string(&Ack::new("id", "web-other")).unwrap();
            messages.push(message(signed::sign_message(
                ack.clone(),
                &key,
                &credential,
            )));
            messages.push(message(signed::sign_message(
                reply.clone(),
                &key,
                &credential,
            )));
            // Signed by another key than the credential's; claiming another sender; unsigned;
            // not an answer at all; a broker status.
            messages.push(message(signed::sign_message(reply, &mallory, &credential)));
            messages.push(message(signed::sign_message(other, &key, &credential)));
            messages.push(message(ack.into_bytes()));
            messages.push(message(b"garbage".to_vec()));
            let mut status = message(Vec::new());
            status.status = Some(async_nats::StatusCode::NO_RESPONDERS);
            messages.push(status);
        }
        let opener = Opener {
            verifier: Some(Verifier::new(issuer.public(), 5.0)),
            untrusted: Arc::new(AtomicUsize::new(0)),
        };
        let in_turn = format!("{:?}", opener.open_all(1, &messages, 1000.0).await);
        let untrusted = opener.untrusted.load(Ordering::Relaxed);
        let fresh = Opener {
            verifier: Some(Verifier::new(issuer.public(), 5.0)),
            untrusted: Arc::new(AtomicUsize::new(0)),
        };
        let on_threads = format!("{:?}", fresh.open_all(2, &messages, 1000.0).await);
        assert_eq!(on_threads, in_turn);
        assert_eq!(fresh.untrusted.load(Ordering::Relaxed), untrusted);
        // 20 good acknowledgements and 20 good replies; 3 untrusted per node.
        assert_eq!(in_turn.matches("Ok(Ack(").count(), 20);
        assert_eq!(in_turn.matches("Ok(Reply(").count(), 20);
        assert_eq!(untrusted, 60);
        assert_eq!(in_turn.matches("Garbage").count(), 20);
    }
}
