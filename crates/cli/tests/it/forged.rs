//! Answers from the network that no honest registry sends — a time past the year 9999, a batch
//! size past any fleet — end a command cleanly: the CLI does not panic (exit code 101) on
//! anything another client on the broker can publish.

use anyhow::Result;
use futures::StreamExt;
use muster_proto::subject;
use muster_testkit::DaemonSpec;
use serde_json::json;

use crate::cli::muster;
use crate::fixture;

/// Answers every request on `subject` with `answer`, until the runtime is dropped. Returns once
/// the broker has the subscription.
fn fake_registry(
    runtime: &tokio::runtime::Runtime,
    url: &str,
    subject: String,
    answer: serde_json::Value,
) -> Result<()> {
    let bytes = serde_json::to_vec(&answer)?;
    runtime.block_on(async {
        let nats = async_nats::connect(url).await?;
        let mut requests = nats.subscribe(subject).await?;
        nats.flush().await?;
        tokio::spawn(async move {
            while let Some(request) = requests.next().await {
                if let Some(reply) = request.reply {
                    let _ = nats.publish(reply, bytes.clone().into()).await;
                    let _ = nats.flush().await;
                }
            }
        });
        anyhow::Ok(())
    })
}

on_both_brokers! {
    /// A registry answer saying a node was last seen in the year 11476 (`3e11` Unix seconds)
    /// is not believed: `ping` reports the node that answered and exits 0.
    fn a_last_seen_past_the_year_9999_does_not_crash_ping() -> Result<()> {
        let Some(fleet) = fixture::fleet(&[DaemonSpec::new("web1")])? else {
            return Ok(());
        };
        let url = fleet.url();
        let runtime = tokio::runtime::Runtime::new()?;
        let answer = json!({
            "protocol": "muster:registry-answer:1",
            "nodes": [{"identity": "ghost", "first_seen": 1.0, "last_seen": 3e11}],
        });
        fake_registry(&runtime, &url, subject::registry_query("muster"), answer)?;
        let run = muster(&["ping", "--json"]).broker(&url).run();
        // Said, not silently dropped: discovery went on without the registry's view.
        run.code(0)
            .stderr_has("the registry's answer could not be used")
            .stderr_has("year 9999");
        let replies = crate::cli::replies(&run.json());
        assert_eq!(replies, [("web1".to_string(), "ok".to_string())], "{run}");
        Ok(())
    }
}

on_both_brokers! {
    /// A collected request whose record gives a batch size past `usize` arithmetic (with a
    /// not-connected status for its second batch) is refused as the registry's answer: `show`
    /// says so and exits with a usage error, never a panic.
    fn a_huge_batch_size_does_not_crash_show() -> Result<()> {
        let Some(nats) = fixture::broker()? else {
            return Ok(());
        };
        let url = nats.url();
        let runtime = tokio::runtime::Runtime::new()?;
        let id = "0123456789abcdef0123456789abcdef";
        let answer = json!({
            "protocol": "muster:job-answer:1",
            "job": {
                "protocol": "muster:job:1", "id": id, "time": 1764072000.5,
                "agent": "rpcutil", "action": "ping", "expected": ["web1", "web2"],
                "batch_size": usize::MAX, "timeout_ms": 1000,
            },
            "events": [{"part": "b1", "kind": "not_connected", "received": 1764072001.0}],
        });
        fake_registry(&runtime, &url, subject::job_get("muster"), answer)?;
        let run = muster(&["show", id]).broker(&url).run();
        run.code(2).stderr_has("batch_size");
        Ok(())
    }
}

on_both_brokers! {
    /// With `--dm registry`, an answer whose times are past the year 9999 is refused whole, and
    /// `find` says why instead of formatting them.
    fn a_record_time_past_the_year_9999_is_refused() -> Result<()> {
        let Some(nats) = fixture::broker()? else {
            return Ok(());
        };
        let url = nats.url();
        let runtime = tokio::runtime::Runtime::new()?;
        let answer = json!({
            "protocol": "muster:registry-answer:1",
            "nodes": [{"identity": "ghost", "first_seen": 1e12, "last_seen": 1e12}],
        });
        fake_registry(&runtime, &url, subject::registry_query("muster"), answer)?;
        let run = muster(&["find", "--dm", "registry", "-t", "2"])
            .broker(&url)
            .run();
        // Exit 2, as for any answer from a registry that does not decode (docs/design.md §3):
        // the broker was reached, what came back cannot be used.
        run.code(2).stderr_has("first_seen").stderr_has("year 9999");
        Ok(())
    }
}

on_both_brokers! {
    /// Something on the reply inbox that is neither an acknowledgement nor a reply is counted
    /// in the report, not dropped without a word.
    fn an_undecodable_answer_is_counted() -> Result<()> {
        let Some(fleet) = fixture::fleet(&[DaemonSpec::new("web1")])? else {
            return Ok(());
        };
        let url = fleet.url();
        let runtime = tokio::runtime::Runtime::new()?;
        fake_registry(
            &runtime,
            &url,
            subject::broadcast("muster", "rpcutil"),
            json!("not an answer"),
        )?;
        let run = muster(&["ping", "--json"]).broker(&url).run();
        run.code(0);
        let report = run.json();
        let replies = crate::cli::replies(&report);
        assert_eq!(replies, [("web1".to_string(), "ok".to_string())], "{run}");
        let ignored = report["ignored"].as_array().cloned().unwrap_or_default();
        assert!(
            ignored
                .iter()
                .any(|i| i["reason"] == "undecodable" && i["replies"] == 1),
            "{run}"
        );
        Ok(())
    }
}
