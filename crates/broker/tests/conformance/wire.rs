//! Raw-socket byte tests. Exact bytes where the protocol fixes them; structure where servers
//! legitimately differ (INFO contents, ids, the 503's optional `Nats-Subject` header).

use anyhow::{Result, bail, ensure};
use std::collections::BTreeMap;

use crate::each_broker;
use crate::raw::{Frame, Raw};

const QUIET: &str = r#"{"verbose":false,"pedantic":false,"protocol":1}"#;
const QUIET_HEADERS: &str =
    r#"{"verbose":false,"pedantic":false,"protocol":1,"headers":true,"no_responders":true}"#;

#[test]
fn info_comes_first_with_what_clients_need() -> Result<()> {
    each_broker(|broker| {
        let raw = Raw::open(&broker.addr())?;
        let info = &raw.info;
        ensure!(info["max_payload"] == 1_048_576, "max_payload in {info}");
        ensure!(info["headers"] == true, "headers in {info}");
        ensure!(info["proto"] == 1, "proto in {info}");
        ensure!(
            info["server_id"].as_str().is_some_and(|s| !s.is_empty()),
            "server_id in {info}"
        );
        ensure!(info["version"].as_str().is_some(), "version in {info}");
        ensure!(info["client_id"].as_u64().is_some(), "client_id in {info}");
        ensure!(
            info["host"].as_str().is_some() && info["port"].as_u64().is_some(),
            "{info}"
        );
        ensure!(
            info.get("auth_required").is_none_or(|v| v == false),
            "{info}"
        );
        for absent in ["connect_urls", "ldm", "jetstream", "tls_required"] {
            ensure!(
                info.get(absent).is_none_or(|v| v == false),
                "{absent} in {info}"
            );
        }
        Ok(())
    })
}

#[test]
fn ping_before_connect_gets_pong() -> Result<()> {
    each_broker(|broker| {
        let mut raw = Raw::open(&broker.addr())?;
        raw.send(b"PING\r\n")?;
        raw.expect(b"PONG\r\n")
    })
}

#[test]
fn empty_connect_is_verbose_by_default() -> Result<()> {
    each_broker(|broker| {
        let mut raw = Raw::open(&broker.addr())?;
        raw.send(b"CONNECT {}\r\nPING\r\n")?;
        raw.expect(b"+OK\r\n")?;
        raw.expect(b"PONG\r\n")
    })
}

#[test]
fn verbose_acknowledges_sub_pub_unsub() -> Result<()> {
    each_broker(|broker| {
        let mut raw = Raw::open(&broker.addr())?;
        raw.send(b"CONNECT {\"verbose\":true}\r\n")?;
        raw.expect(b"+OK\r\n")?;
        raw.send(b"SUB foo 1\r\n")?;
        raw.expect(b"+OK\r\n")?;
        raw.send(b"PUB foo 2\r\nhi\r\n")?;
        // The +OK comes before the delivery (nats-server processInboundClientMsg).
        raw.expect(b"+OK\r\n")?;
        raw.expect(b"MSG foo 1 2\r\nhi\r\n")?;
        raw.send(b"UNSUB 1\r\n")?;
        raw.expect(b"+OK\r\n")?;
        raw.send(b"PING\r\n")?;
        raw.expect(b"PONG\r\n")
    })
}

#[test]
fn sub_pub_msg_exact_bytes() -> Result<()> {
    each_broker(|broker| {
        let mut raw = Raw::handshake(&broker.addr(), QUIET)?;
        raw.send(b"SUB foo 1\r\nPUB foo 5\r\nhello\r\nPUB foo bar.baz 2\r\nhi\r\npub foo 0\r\n\r\nPING\r\n")?;
        raw.expect(b"MSG foo 1 5\r\nhello\r\n")?;
        raw.expect(b"MSG foo 1 bar.baz 2\r\nhi\r\n")?;
        raw.expect(b"MSG foo 1 0\r\n\r\n")?;
        raw.expect(b"PONG\r\n")
    })
}

#[test]
fn publish_split_across_writes() -> Result<()> {
    each_broker(|broker| {
        let mut raw = Raw::handshake(&broker.addr(), QUIET)?;
        raw.send(b"SUB foo 7\r\n")?;
        for piece in [
            &b"PU"[..],
            b"B fo",
            b"o 11\r",
            b"\nhello",
            b" world",
            b"\r",
            b"\nPING\r\n",
        ] {
            raw.send(piece)?;
        }
        raw.expect(b"MSG foo 7 11\r\nhello world\r\n")?;
        raw.expect(b"PONG\r\n")
    })
}

#[test]
fn hpub_hmsg_exact_bytes() -> Result<()> {
    each_broker(|broker| {
        let mut raw = Raw::handshake(&broker.addr(), QUIET_HEADERS)?;
        let headers = b"NATS/1.0\r\nA: b\r\n\r\n";
        let hl = headers.len();
        raw.send(b"SUB foo 1\r\n")?;
        let mut hpub = format!("HPUB foo r.1 {hl} {}\r\n", hl + 5).into_bytes();
        hpub.extend_from_slice(headers);
        hpub.extend_from_slice(b"hello\r\nPING\r\n");
        raw.send(&hpub)?;
        let mut expected = format!("HMSG foo 1 r.1 {hl} {}\r\n", hl + 5).into_bytes();
        expected.extend_from_slice(headers);
        expected.extend_from_slice(b"hello\r\n");
        raw.expect(&expected)?;
        raw.expect(b"PONG\r\n")
    })
}

#[test]
fn headers_are_dropped_for_a_subscriber_without_them() -> Result<()> {
    each_broker(|broker| {
        let mut plain = Raw::handshake(&broker.addr(), QUIET)?;
        plain.send(b"SUB foo 1\r\n")?;
        plain.until_pong()?;
        let mut publisher = Raw::handshake(&broker.addr(), QUIET_HEADERS)?;
        publisher.send(b"HPUB foo 18 23\r\nNATS/1.0\r\nA: b\r\n\r\nhello\r\n")?;
        publisher.until_pong()?;
        plain.expect(b"MSG foo 1 5\r\nhello\r\n")
    })
}

#[test]
fn unsub_with_max_delivers_exactly_max() -> Result<()> {
    each_broker(|broker| {
        let mut raw = Raw::handshake(&broker.addr(), QUIET)?;
        raw.send(b"SUB foo 1\r\nUNSUB 1 2\r\n")?;
        raw.send(b"PUB foo 1\r\na\r\nPUB foo 1\r\nb\r\nPUB foo 1\r\nc\r\n")?;
        let frames = raw.until_pong()?;
        ensure!(frames.len() == 2, "{frames:?}");
        raw.send(b"PUB foo 1\r\nd\r\n")?;
        ensure!(raw.until_pong()?.is_empty());

        // Already past the max: gone at once. An unknown sid is no error.
        raw.send(b"SUB bar 2\r\nPUB bar 1\r\nx\r\nUNSUB 2 1\r\nPUB bar 1\r\ny\r\nUNSUB 99\r\n")?;
        let frames = raw.until_pong()?;
        ensure!(frames.len() == 1, "{frames:?}");

        // An unparsable or zero max removes the subscription at once (processUnsub).
        raw.send(b"SUB baz 3\r\nUNSUB 3 many\r\nSUB qux 4\r\nUNSUB 4 0\r\n")?;
        raw.send(b"PUB baz 1\r\nx\r\nPUB qux 1\r\nx\r\n")?;
        let frames = raw.until_pong()?;
        ensure!(frames.is_empty(), "{frames:?}");
        Ok(())
    })
}

#[test]
fn a_reused_sid_keeps_its_first_subscription() -> Result<()> {
    each_broker(|broker| {
        let mut raw = Raw::handshake(&broker.addr(), QUIET)?;
        raw.send(b"SUB foo 1\r\nSUB bar 1\r\nPUB bar 1\r\nx\r\nPUB foo 1\r\ny\r\n")?;
        let frames = raw.until_pong()?;
        ensure!(
            frames
                == vec![Frame::Msg {
                    subject: "foo".into(),
                    sid: "1".into(),
                    reply: None,
                    payload: b"y".to_vec()
                }],
            "{frames:?}"
        );
        Ok(())
    })
}

#[test]
fn queue_group_gets_one_copy() -> Result<()> {
    each_broker(|broker| {
        let mut raw = Raw::handshake(&broker.addr(), QUIET)?;
        raw.send(b"SUB foo q 1\r\nSUB foo q 2\r\nSUB foo 3\r\nSUB foo other 4\r\n")?;
        for i in 0..20 {
            raw.send(format!("PUB foo 2\r\n{i:02}\r\n").as_bytes())?;
        }
        let frames = raw.until_pong()?;
        let mut per_sid: BTreeMap<String, usize> = BTreeMap::new();
        for f in &frames {
            *per_sid
                .entry(f.sid().unwrap_or("?").to_string())
                .or_default() += 1;
        }
        let q = per_sid.get("1").copied().unwrap_or(0) + per_sid.get("2").copied().unwrap_or(0);
        ensure!(q == 20, "queue q got {q} copies: {per_sid:?}");
        ensure!(per_sid.get("3") == Some(&20), "{per_sid:?}");
        ensure!(per_sid.get("4") == Some(&20), "{per_sid:?}");
        Ok(())
    })
}

#[test]
fn wildcards() -> Result<()> {
    each_broker(|broker| {
        let mut raw = Raw::handshake(&broker.addr(), QUIET)?;
        raw.send(b"SUB foo.* 1\r\nSUB foo.> 2\r\nSUB > 3\r\nSUB *.bar 4\r\nSUB foo.bar 5\r\nSUB foo*.bar 6\r\n")?;
        let cases: &[(&str, &[&str])] = &[
            ("foo.bar", &["1", "2", "3", "4", "5"]),
            ("foo.bar.baz", &["2", "3"]),
            ("foo", &["3"]),
            ("x.bar", &["3", "4"]),
            ("foo*.bar", &["3", "4", "6"]),
        ];
        for (subject, sids) in cases {
            raw.send(format!("PUB {subject} 0\r\n\r\n").as_bytes())?;
            let frames = raw.until_pong()?;
            let mut got: Vec<&str> = frames.iter().filter_map(Frame::sid).collect();
            got.sort_unstable();
            ensure!(got == *sids, "{subject}: {got:?}");
            for f in &frames {
                ensure!(
                    matches!(f, Frame::Msg { subject: s, .. } if s == subject),
                    "{f:?}"
                );
            }
        }
        Ok(())
    })
}

#[test]
fn echo_false_skips_own_messages() -> Result<()> {
    each_broker(|broker| {
        let mut quiet = Raw::handshake(&broker.addr(), r#"{"verbose":false,"echo":false}"#)?;
        let mut other = Raw::handshake(&broker.addr(), QUIET)?;
        other.send(b"SUB foo 1\r\n")?;
        other.until_pong()?;
        quiet.send(b"SUB foo 1\r\nPUB foo 1\r\nx\r\n")?;
        ensure!(quiet.until_pong()?.is_empty());
        other.expect(b"MSG foo 1 1\r\nx\r\n")
    })
}

#[test]
fn no_responders_503_on_the_reply_subscription() -> Result<()> {
    each_broker(|broker| {
        let mut raw = Raw::client(&broker.addr())?;
        raw.send(b"SUB _INBOX.abc.* 9\r\nPUB nobody.home _INBOX.abc.1 0\r\n\r\n")?;
        let frames = raw.until_pong()?;
        let [
            Frame::Hmsg {
                subject,
                sid,
                reply,
                headers,
                payload,
            },
        ] = &frames[..]
        else {
            bail!("expected one HMSG, got {frames:?}");
        };
        ensure!(
            subject == "_INBOX.abc.1" && sid == "9" && reply.is_none(),
            "{frames:?}"
        );
        ensure!(payload.is_empty(), "{frames:?}");
        let headers = String::from_utf8_lossy(headers);
        ensure!(headers.starts_with("NATS/1.0 503\r\n"), "{headers:?}");
        ensure!(headers.ends_with("\r\n\r\n"), "{headers:?}");
        // 2.10+ names the subject; 2.9 does not.
        for line in headers.lines().skip(1).filter(|l| !l.is_empty()) {
            ensure!(line == "Nats-Subject: nobody.home", "{headers:?}");
        }
        // Without a reply subject, or when someone listens, there is no 503.
        raw.send(b"PUB nobody.home 0\r\n\r\nSUB svc 1\r\nPUB svc _INBOX.abc.2 0\r\n\r\n")?;
        let frames = raw.until_pong()?;
        ensure!(
            frames.len() == 1 && frames[0].sid() == Some("1"),
            "{frames:?}"
        );
        Ok(())
    })
}

#[test]
fn no_503_without_no_responders() -> Result<()> {
    each_broker(|broker| {
        let mut raw = Raw::handshake(
            &broker.addr(),
            QUIET_HEADERS
                .replace("\"no_responders\":true", "\"no_responders\":false")
                .as_str(),
        )?;
        raw.send(b"SUB _INBOX.abc.* 9\r\nPUB nobody _INBOX.abc.1 0\r\n\r\n")?;
        ensure!(raw.until_pong()?.is_empty());
        Ok(())
    })
}

#[test]
fn pedantic_wildcard_publish_is_reported_and_still_routed() -> Result<()> {
    each_broker(|broker| {
        let mut raw = Raw::handshake(&broker.addr(), r#"{"verbose":false,"pedantic":true}"#)?;
        raw.send(b"SUB foo.* 1\r\nPUB foo.* 1\r\nx\r\n")?;
        let frames = raw.until_pong()?;
        ensure!(
            frames.first() == Some(&Frame::Err("'Invalid Publish Subject'".into())),
            "{frames:?}"
        );
        ensure!(
            frames.len() == 2 && frames[1].sid() == Some("1"),
            "{frames:?}"
        );
        Ok(())
    })
}

#[test]
fn server_pings_and_accepts_pong() -> Result<()> {
    each_broker(|broker| {
        let mut raw = Raw::handshake(&broker.addr(), QUIET)?;
        // nats-server's first PING comes about 2 s after CONNECT.
        let (frame, _) = raw.next_raw()?;
        ensure!(frame == Frame::Ping, "{frame:?}");
        raw.send(b"PONG\r\n")?;
        ensure!(raw.until_pong()?.is_empty());
        Ok(())
    })
}

// ----- nats-server's error table for bad client input: the deterministic rows -----

fn expect_error(connect: Option<&str>, input: &[u8], err: Option<&str>) -> Result<()> {
    each_broker(|broker| {
        let mut raw = match connect {
            Some(json) => Raw::handshake(&broker.addr(), json)?,
            None => Raw::open(&broker.addr())?,
        };
        raw.send(input)?;
        match err {
            Some(text) => raw.expect_err_and_close(text),
            None => raw.expect_closed(),
        }
    })
}

#[test]
fn unknown_operation_closes() -> Result<()> {
    expect_error(
        Some(QUIET),
        b"FOO bar\r\n",
        Some("Unknown Protocol Operation"),
    )
}

#[test]
fn client_msg_is_an_unknown_operation() -> Result<()> {
    expect_error(
        Some(QUIET),
        b"MSG foo 1 1\r\nx\r\n",
        Some("Unknown Protocol Operation"),
    )
}

#[test]
fn payload_size_mismatch_closes() -> Result<()> {
    expect_error(
        Some(QUIET),
        b"PUB a 3\r\nab\r\n",
        Some("Unknown Protocol Operation"),
    )
}

#[test]
fn payload_over_max_payload_closes() -> Result<()> {
    expect_error(
        Some(QUIET),
        b"PUB a 1048577\r\n",
        Some("Maximum Payload Violation"),
    )
}

#[test]
fn hpub_over_max_payload_closes() -> Result<()> {
    expect_error(
        Some(QUIET_HEADERS),
        b"HPUB a 12 1048577\r\n",
        Some("Maximum Payload Violation"),
    )
}

#[test]
fn control_line_over_4096_closes() -> Result<()> {
    let mut line = b"SUB ".to_vec();
    line.extend(std::iter::repeat_n(b'a', 5000));
    line.extend_from_slice(b" 1\r\n");
    expect_error(Some(QUIET), &line, Some("maximum control line exceeded"))
}

#[test]
fn invalid_subject_keeps_the_connection() -> Result<()> {
    each_broker(|broker| {
        let mut raw = Raw::handshake(&broker.addr(), QUIET)?;
        raw.send(b"SUB foo..bar 1\r\n")?;
        raw.expect(b"-ERR 'Invalid Subject'\r\n")?;
        raw.send(b"SUB foo.>.bar 2\r\n")?;
        raw.expect(b"-ERR 'Invalid Subject'\r\n")?;
        raw.send(b"SUB ok 3\r\nPUB ok 1\r\nx\r\n")?;
        raw.expect(b"MSG ok 3 1\r\nx\r\n")?;
        ensure!(raw.until_pong()?.is_empty());
        Ok(())
    })
}

#[test]
fn no_responders_without_headers_is_refused() -> Result<()> {
    expect_error(
        None,
        b"CONNECT {\"verbose\":false,\"no_responders\":true}\r\n",
        Some("no responders requires headers support"),
    )
}

#[test]
fn bad_arguments_close_silently() -> Result<()> {
    for input in [
        &b"PUB a\r\n"[..],
        b"PUB a b c 1\r\n",
        b"PUB a -1\r\n",
        b"SUB foo\r\n",
        b"UNSUB\t\r\n",
        b"HPUB a 12 12\r\nNATS/1.0\r\n\r\n\r\n",
        b"HPUB a 20 10\r\n",
        b"CONNECT {nope}\r\n",
        b"-ERR 'bye'\r\n",
    ] {
        let connect = if input.starts_with(b"HPUB a 20") {
            QUIET_HEADERS
        } else {
            QUIET
        };
        expect_error(Some(connect), input, None)
            .map_err(|e| e.context(String::from_utf8_lossy(input).into_owned()))?;
    }
    Ok(())
}

#[test]
fn garbage_before_a_good_op_does_not_leak_messages() -> Result<()> {
    // What was parsed before the error is processed; nothing after it.
    each_broker(|broker| {
        let mut watcher = Raw::handshake(&broker.addr(), QUIET)?;
        watcher.send(b"SUB foo 1\r\n")?;
        watcher.until_pong()?;
        let mut raw = Raw::handshake(&broker.addr(), QUIET)?;
        raw.send(b"PUB foo 1\r\na\r\nFOO\r\nPUB foo 1\r\nb\r\n")?;
        raw.expect_err_and_close("Unknown Protocol Operation")?;
        let frames = watcher.until_pong()?;
        ensure!(frames.len() == 1, "{frames:?}");
        Ok(())
    })
}

#[test]
fn liberal_parsing_like_nats_server() -> Result<()> {
    each_broker(|broker| {
        let mut raw = Raw::handshake(&broker.addr(), QUIET)?;
        // Lower-case verbs, tabs, LF-only line ends, junk after PING, client INFO and +OK.
        raw.send(b"sub\tfoo\t 1\npub foo 2\nhi\r\nPING whatever\r\n")?;
        raw.expect(b"MSG foo 1 2\r\nhi\r\n")?;
        raw.expect(b"PONG\r\n")?;
        raw.send(b"INFO {\"server_id\":\"x\"}\r\n+OK\r\nping\n")?;
        raw.expect(b"PONG\r\n")
    })
}

#[test]
fn empty_line_is_an_unknown_operation() -> Result<()> {
    expect_error(Some(QUIET), b"\r\n", Some("Unknown Protocol Operation"))
}

#[test]
fn unsupported_protocol_level_is_refused() -> Result<()> {
    expect_error(
        None,
        b"CONNECT {\"verbose\":false,\"protocol\":2}\r\n",
        Some("invalid client protocol"),
    )
}

#[test]
fn unsub_max_on_a_queue_member() -> Result<()> {
    each_broker(|broker| {
        let mut raw = Raw::handshake(&broker.addr(), QUIET)?;
        raw.send(b"SUB work q 1\r\nUNSUB 1 3\r\n")?;
        for _ in 0..5 {
            raw.send(b"PUB work 1\r\nx\r\n")?;
        }
        let frames = raw.until_pong()?;
        ensure!(frames.len() == 3, "{frames:?}");
        Ok(())
    })
}
