//! Inventory queries (docs/design.md §2): a [`RegistryQuery`] on
//! `muster.<collective>.registry.query`, answered from the store by the same filter engine
//! the nodes use, one page at a time.

use std::sync::{Arc, Mutex};

use async_nats::{Client, Message};
use muster_proto::filter::lookup;
use muster_proto::registration::{RegistryAnswer, RegistryQuery, SeenNode};
use tracing::debug;

use crate::pages::{answer_budget, read_store, send_answer};
use crate::stats::Counters;
use crate::store::Store;

/// The answer to `query` from `store` at time `now`: the matching nodes, or an error answer
/// when the filter does not compile.
pub fn answer(store: &Store, query: &RegistryQuery, now: f64, budget: usize) -> RegistryAnswer {
    let filter = match query.filter.compile() {
        Ok(filter) => filter,
        Err(e) => return RegistryAnswer::error(format!("invalid filter: {e}")),
    };
    let since = query.seen_within.map(|secs| now - secs as f64);
    let nodes = match store.matching(&filter, since) {
        Ok(nodes) => nodes,
        Err(e) => return RegistryAnswer::error(e.to_string()),
    };
    let mut page = Vec::new();
    let mut used: usize = 0;
    let mut next = None;
    let after = query.after.as_deref();
    for node in nodes
        .into_iter()
        .filter(|n| after.is_none_or(|a| n.registration.identity.as_str() > a))
    {
        let mut seen = node.seen();
        if let Some(path) = &query.fact {
            let value = lookup(&node.registration.facts, path);
            seen.fact = Some(value.cloned().unwrap_or(serde_json::Value::Null));
        }
        if query.records {
            seen.record = Some(node.registration);
        }
        let size = serde_json::to_vec(&seen).map_or(0, |b| b.len().saturating_add(1));
        if !page.is_empty() && used.saturating_add(size) > budget {
            next = page.last().map(|n: &SeenNode| n.identity.clone());
            break;
        }
        used = used.saturating_add(size);
        page.push(seen);
    }
    let mut answer = RegistryAnswer::nodes(page);
    answer.next = next;
    answer
}

/// Answers one query message.
pub(crate) async fn handle_query(
    client: Client,
    reader: Arc<Mutex<Store>>,
    counters: Arc<Counters>,
    message: Message,
) {
    let Some(reply) = message.reply else {
        Counters::add(&counters.bad_queries, 1);
        return;
    };
    let query = match RegistryQuery::decode(&message.payload) {
        Ok(query) => query,
        Err(e) => {
            Counters::add(&counters.bad_queries, 1);
            debug!(reason = e.reason(), error = %e, "dropped a registry query");
            let bytes = RegistryAnswer::error(format!("invalid query: {e}")).to_bytes();
            let _ = client.publish(reply, bytes.into()).await;
            return;
        }
    };
    let budget = answer_budget(&client);
    let answer = read_store(reader, move |store| {
        answer(store, &query, crate::now(), budget)
    })
    .await
    .unwrap_or_else(|e| RegistryAnswer::error(format!("the query failed: {e}")));
    if answer.error.is_some() {
        Counters::add(&counters.bad_queries, 1);
    }
    Counters::add(&counters.queries, 1);
    send_answer(&client, reply, answer.to_bytes(), |e| {
        RegistryAnswer::error(e).to_bytes()
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use muster_proto::Filter;

    #[test]
    fn a_bad_filter_gets_an_error_answer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("r.sqlite")).unwrap();
        let query = RegistryQuery::new(
            Filter {
                identity: vec!["/(/".into()],
                ..Filter::default()
            },
            None,
        );
        let answer = answer(&store, &query, 0.0, 1 << 20);
        assert!(
            answer.error.as_deref().unwrap_or("").contains("invalid"),
            "{answer:?}"
        );
        let ok = super::answer(
            &store,
            &RegistryQuery::new(Filter::default(), Some(60)),
            0.0,
            1 << 20,
        );
        assert_eq!(ok, RegistryAnswer::nodes(vec![]));
    }

    #[test]
    fn queries_can_ask_for_one_fact_or_the_records() {
        use muster_proto::registration::{REGISTRATION_PROTOCOL, Registration};
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("r.sqlite")).unwrap();
        let node = |identity: &str, facts: serde_json::Value| Registration {
            protocol: REGISTRATION_PROTOCOL.to_string(),
            identity: identity.to_string(),
            facts,
            classes: vec![],
            agents: vec!["rpcutil".into()],
            collectives: vec!["muster".into()],
            version: "0.1.0".into(),
            started: 1,
            time: 1.0,
        };
        let a = node("a", serde_json::json!({"os": {"family": "Debian"}}));
        let b = node("b", serde_json::json!({}));
        store.record(&[(a.clone(), 10.0), (b, 10.0)]).unwrap();
        let mut query = RegistryQuery::new(Filter::default(), None);
        query.fact = Some("os.family".into());
        let answer = super::answer(&store, &query, 20.0, 1 << 20);
        let facts: Vec<_> = answer.nodes.iter().map(|n| n.fact.clone()).collect();
        // `null` for a node without the fact; it decodes as "no value".
        assert_eq!(
            facts,
            [
                Some(serde_json::json!("Debian")),
                Some(serde_json::Value::Null)
            ]
        );
        let back = RegistryAnswer::decode(&answer.to_bytes()).unwrap();
        assert_eq!(back.nodes[0].fact, Some(serde_json::json!("Debian")));
        assert!(back.nodes.iter().all(|n| n.record.is_none()));

        let mut query = RegistryQuery::new(Filter::default(), None);
        query.records = true;
        query.filter.identity.push("a".into());
        let answer = super::answer(&store, &query, 20.0, 1 << 20);
        assert_eq!(answer.nodes.len(), 1);
        assert_eq!(answer.nodes[0].record.as_ref(), Some(&a));
    }

    #[test]
    fn long_answers_come_in_pages_that_cover_every_node_once() {
        use muster_proto::registration::{REGISTRATION_PROTOCOL, Registration};
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("r.sqlite")).unwrap();
        let batch: Vec<_> = (0..50)
            .map(|i| {
                let r = Registration {
                    protocol: REGISTRATION_PROTOCOL.to_string(),
                    identity: format!("node{i:02}"),
                    facts: serde_json::json!({"padding": "x".repeat(100)}),
                    classes: vec![],
                    agents: vec![],
                    collectives: vec![],
                    version: String::new(),
                    started: 0,
                    time: 1.0,
                };
                (r, 10.0)
            })
            .collect();
        store.record(&batch).unwrap();
        let mut query = RegistryQuery::new(Filter::default(), None);
        query.records = true;
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let answer = super::answer(&store, &query, 20.0, 2000);
            assert!(
                answer.to_bytes().len() < 2600,
                "a page stays near its budget"
            );
            pages += 1;
            seen.extend(answer.nodes.into_iter().map(|n| n.identity));
            match answer.next {
                Some(next) => query.after = Some(next),
                None => break,
            }
        }
        let all: Vec<String> = (0..50).map(|i| format!("node{i:02}")).collect();
        assert_eq!(seen, all);
        assert!(pages > 5, "{pages} pages");
    }
}
