//! Inventory queries to `muster registry` (docs/design.md §2): which nodes matching a filter have
//! registered, and when each was last seen.

use std::time::Duration;

use async_nats::RequestErrorKind;
use muster_proto::Filter;
use muster_proto::registration::{RegistryAnswer, RegistryQuery, SeenNode};
use muster_proto::subject;

use crate::connection::{Client, ClientError};

impl Client {
    /// Asks a registry for the nodes matching `filter` (last seen within `seen_within`, when
    /// given), sorted by identity. One registry of the queue group answers.
    ///
    /// When no registry is running the error says so at once (the broker's *no responders*);
    /// when none answers within `timeout` the error says that.
    pub async fn query_registry(
        &self,
        filter: &Filter,
        seen_within: Option<Duration>,
        timeout: Duration,
    ) -> Result<Vec<SeenNode>, ClientError> {
        // Round a maximum age up to whole seconds, so "within 1.5 s" never excludes a node.
        let seen_within =
            seen_within.map(|d| d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0)));
        self.ask_registry(RegistryQuery::new(filter.clone(), seen_within), timeout)
            .await
    }

    /// Sends `query` to a registry: use it to ask for one fact (`query.fact`) or the whole
    /// records (`query.records`) of the matching nodes, as they last registered. A long answer
    /// comes in pages; this asks for each.
    pub async fn ask_registry(
        &self,
        mut query: RegistryQuery,
        timeout: Duration,
    ) -> Result<Vec<SeenNode>, ClientError> {
        query
            .filter
            .compile()
            .map_err(|e| ClientError::Invalid(format!("invalid filter: {e}")))?;
        let mut nodes = Vec::new();
        loop {
            let answer = self.ask_registry_page(&query, timeout).await?;
            nodes.extend(answer.nodes);
            match answer.next {
                // A next that does not advance would loop forever.
                Some(next) if query.after.as_ref().is_none_or(|a| &next > a) => {
                    query.after = Some(next);
                }
                _ => return Ok(nodes),
            }
        }
    }

    async fn ask_registry_page(
        &self,
        query: &RegistryQuery,
        timeout: Duration,
    ) -> Result<RegistryAnswer, ClientError> {
        let subject = subject::registry_query(&self.collective);
        let request = async_nats::Request::new()
            .payload(query.to_bytes().into())
            .timeout(Some(timeout));
        let message = self
            .nats
            .send_request(subject.clone(), request)
            .await
            .map_err(|e| match e.kind() {
                RequestErrorKind::NoResponders => ClientError::NoRegistry(format!(
                    "no registry is running for collective {:?} (nobody answers on {subject}); \
                     start one with `muster registry --db FILE`, or use another discovery method",
                    self.collective
                )),
                RequestErrorKind::TimedOut => ClientError::NoRegistry(format!(
                    "no registry answered on {subject} within {timeout:?}"
                )),
                _ => ClientError::Broker(format!("registry query on {subject}: {e}")),
            })?;
        let answer = RegistryAnswer::decode(&message.payload).map_err(|e| {
            ClientError::Registry(format!(
                "the registry sent an answer that does not decode: {e}"
            ))
        })?;
        match answer.error {
            Some(error) => Err(ClientError::Registry(format!("the registry said: {error}"))),
            None => Ok(answer),
        }
    }
}
