//! Collected requests ([`muster_proto::job`], docs/design.md §2): checking an announced
//! record, turning what arrives on a reply subject into an event of its request, and
//! answering `muster.<collective>.registry.job.get` with a request's record and events.

use std::sync::{Arc, Mutex};

use async_nats::{Client, Message};
use muster_proto::Response;
use muster_proto::job::{EventKind, JobAnswer, JobEvent, JobQuery, JobRecord};
use muster_security::signed::open;
use muster_security::{Kind, Verifier};

use crate::pages::{answer_budget, read_store, send_answer};
use crate::stats::Counters;
use crate::store::Store;

/// What arrived on `subject` (below `muster.<collective>.replies.`, given as `prefix` with its
/// trailing dot) as an event of the request its id names: a no-responders status for a part,
/// or an acknowledgement or reply of that very request. `Err` says why it is not one.
pub fn event_from(
    prefix: &str,
    subject: &str,
    no_responders: bool,
    payload: &[u8],
    received: f64,
    verifier: Option<&Verifier>,
) -> Result<(String, JobEvent), &'static str> {
    let rest = subject.strip_prefix(prefix).ok_or("not a reply subject")?;
    let (id, part) = rest.split_once('.').ok_or("no part in the subject")?;
    if muster_proto::job::check_id(id).is_err() || part.is_empty() || part.contains('.') {
        return Err("not a reply subject");
    }
    let event = |kind, identity, reply| JobEvent {
        part: part.to_string(),
        kind,
        identity,
        received,
        reply,
    };
    if no_responders {
        return Ok((id.to_string(), event(EventKind::NotConnected, None, None)));
    }
    let (inner, signer) = open(verifier, Kind::Node, payload, received).map_err(|e| e.reason())?;
    let response = Response::decode(&inner).map_err(|_| "not an acknowledgement or reply")?;
    if response.request_id() != id {
        return Err("answers another request");
    }
    if signer.as_deref().is_some_and(|s| s != response.sender()) {
        return Err("signed by another node than the sender");
    }
    let identity = Some(response.sender().to_string());
    Ok((
        id.to_string(),
        match response {
            Response::Ack(_) => event(EventKind::Ack, identity, None),
            Response::Reply(reply) => event(EventKind::Reply, identity, Some(reply)),
        },
    ))
}

/// A collected request's record from the network: with an issuer, signed by a caller
/// credential naming the record's caller; without, a signed record is unwrapped unchecked.
pub fn job_from(verifier: Option<&Verifier>, bytes: &[u8], now: f64) -> Result<JobRecord, String> {
    let (inner, signer) = open(verifier, Kind::Caller, bytes, now).map_err(|e| e.to_string())?;
    let job = JobRecord::decode(&inner).map_err(|e| e.to_string())?;
    if let Some(signer) = signer
        && signer != job.caller
    {
        return Err(format!(
            "signed by {signer:?}, but the record says caller {:?}",
            job.caller
        ));
    }
    Ok(job)
}

/// Answers one query for a collected request; the rest of a long answer is asked for on
/// `direct`, this registry's own subject.
pub(crate) async fn handle_job_query(
    client: Client,
    reader: Arc<Mutex<Store>>,
    counters: Arc<Counters>,
    message: Message,
    direct: String,
) {
    let Some(reply) = message.reply else {
        Counters::add(&counters.bad_queries, 1);
        return;
    };
    Counters::add(&counters.queries, 1);
    let budget = answer_budget(&client);
    let answer = match JobQuery::decode(&message.payload) {
        Ok(query) => read_store(reader, move |store| {
            match store.job(&query.id, query.after, budget) {
                Ok(page) => {
                    let mut answer = JobAnswer::found(page.record, page.events);
                    answer.next = page.next;
                    answer.registry = page.next.map(|_| direct);
                    answer
                }
                Err(e) => JobAnswer::error(e.to_string()),
            }
        })
        .await
        .unwrap_or_else(|e| JobAnswer::error(format!("the query failed: {e}"))),
        Err(e) => {
            Counters::add(&counters.bad_queries, 1);
            JobAnswer::error(format!("invalid job query: {e}"))
        }
    };
    send_answer(&client, reply, answer.to_bytes(), |e| {
        JobAnswer::error(e).to_bytes()
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use muster_proto::Filter;

    #[test]
    fn reply_subjects_become_events_of_their_request() {
        use muster_proto::{Ack, Reply, StatusCode};
        let prefix = "muster.muster.replies.";
        let ack = serde_json::to_vec(&Ack::new("01ab", "web1")).unwrap();
        let reply = serde_json::to_vec(&Reply::new(
            "01ab",
            "web1",
            1.0,
            StatusCode::Ok,
            "OK",
            serde_json::json!({}),
        ))
        .unwrap();
        let (id, event) = event_from(
            prefix,
            "muster.muster.replies.01ab.3",
            false,
            &ack,
            5.0,
            None,
        )
        .unwrap();
        assert_eq!(
            (id.as_str(), event.part.as_str(), event.kind),
            ("01ab", "3", EventKind::Ack)
        );
        assert_eq!(event.identity.as_deref(), Some("web1"));
        let (_, event) = event_from(
            prefix,
            "muster.muster.replies.01ab.b0",
            false,
            &reply,
            5.0,
            None,
        )
        .unwrap();
        assert_eq!(event.kind, EventKind::Reply);
        assert_eq!(event.reply.unwrap().sender, "web1");
        let (_, event) = event_from(
            prefix,
            "muster.muster.replies.01ab.b0",
            true,
            b"",
            5.0,
            None,
        )
        .unwrap();
        assert_eq!(
            (event.kind, event.identity),
            (EventKind::NotConnected, None)
        );
        for (subject, payload, why) in [
            (
                "muster.muster.replies.other.0",
                &reply[..],
                "answers another request",
            ),
            (
                "muster.muster.replies.01ab",
                &reply[..],
                "no part in the subject",
            ),
            (
                "muster.muster.replies.01ab.0.1",
                &reply[..],
                "not a reply subject",
            ),
            (
                "muster.other.replies.01ab.0",
                &reply[..],
                "not a reply subject",
            ),
            (
                "muster.muster.replies.01ab.0",
                b"{}",
                "not an acknowledgement or reply",
            ),
        ] {
            assert_eq!(
                event_from(prefix, subject, false, payload, 5.0, None).unwrap_err(),
                why,
                "{subject}"
            );
        }
    }

    #[test]
    fn announced_records_must_be_signed_by_their_caller_when_the_issuer_is_known() {
        use muster_proto::job::JOB_PROTOCOL;
        use muster_security::SecretKey;
        use muster_security::credential::{Credential, Kind};
        use muster_security::signed::sign_message;
        let issuer = SecretKey::generate();
        let alice = SecretKey::generate();
        let token = |kind, name: &str| {
            Credential::new(kind, name, &alice.public(), 0, 1 << 32, None)
                .unwrap()
                .issue(&issuer)
        };
        let record = |caller: &str| JobRecord {
            protocol: JOB_PROTOCOL.to_string(),
            id: "j1".into(),
            time: 1.0,
            agent: "rpcutil".into(),
            action: "ping".into(),
            caller: caller.into(),
            data: serde_json::json!({}),
            filter: Filter::default(),
            expected: vec!["web1".into()],
            absent: vec![],
            last_seen: Default::default(),
            batch_size: None,
            timeout_ms: 1000,
            retry_of: None,
            not_connected: vec![],
        };
        let signed = |r: &JobRecord, kind| {
            sign_message(
                String::from_utf8(r.to_bytes()).unwrap(),
                &alice,
                &token(kind, "alice"),
            )
        };
        let v = Verifier::new(issuer.public(), 5.0);
        assert_eq!(
            job_from(Some(&v), &signed(&record("alice"), Kind::Caller), 10.0).unwrap(),
            record("alice")
        );
        let err = job_from(Some(&v), &signed(&record("root"), Kind::Caller), 10.0).unwrap_err();
        assert!(err.contains("signed by \"alice\""), "{err}");
        assert!(job_from(Some(&v), &signed(&record("alice"), Kind::Node), 10.0).is_err());
        assert!(job_from(Some(&v), &record("alice").to_bytes(), 10.0).is_err());
        assert_eq!(
            job_from(None, &record("bob").to_bytes(), 10.0).unwrap(),
            record("bob")
        );
        assert_eq!(
            job_from(None, &signed(&record("alice"), Kind::Caller), 10.0).unwrap(),
            record("alice")
        );
    }
}
