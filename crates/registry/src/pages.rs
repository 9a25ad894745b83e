//! Answering on the broker, for queries and collected requests alike: reading the store off
//! the async threads, the byte budget of one page of a long answer (the rest is asked for
//! with `after`, docs/design.md §2), and sending an answer the broker can take.

use std::sync::{Arc, Mutex};

use async_nats::Client;
use tracing::warn;

use crate::store::Store;

/// Runs `read` on the store, off the async threads.
pub(crate) async fn read_store<T: Send + 'static>(
    reader: Arc<Mutex<Store>>,
    read: impl FnOnce(&Store) -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    tokio::task::spawn_blocking(move || {
        let store = match reader.lock() {
            Ok(store) => store,
            Err(poisoned) => poisoned.into_inner(),
        };
        read(&store)
    })
    .await
}

/// Sends an answer; one larger than the broker takes (a single record or event over the
/// budget of a page) is replaced by the error answer `error` makes.
pub(crate) async fn send_answer(
    client: &Client,
    reply: async_nats::Subject,
    mut bytes: Vec<u8>,
    error: impl FnOnce(String) -> Vec<u8>,
) {
    let max = client.server_info().max_payload;
    if max > 0 && bytes.len() > max {
        bytes = error(format!(
            "the answer ({} bytes) is larger than the broker's max payload ({max} bytes)",
            bytes.len()
        ));
    }
    if let Err(e) = client.publish(reply, bytes.into()).await {
        warn!(error = %e, "cannot send an answer");
    }
}

/// How many bytes of nodes or events go in one answer: what the broker takes, less room for
/// the envelope.
pub(crate) fn answer_budget(client: &Client) -> usize {
    match client.server_info().max_payload {
        0 => 1 << 20,
        max => max,
    }
    .saturating_sub(1024)
    .max(1024)
}
