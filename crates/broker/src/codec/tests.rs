use super::*;
use proptest::prelude::*;

fn decoder() -> Decoder {
    let mut d = Decoder::new(Limits {
        max_payload: 64,
        max_control_line: 64,
    });
    d.set_headers(true);
    d
}

fn decode_str(input: &str) -> Vec<Result<ClientOp, ProtocolError>> {
    let mut buf = BytesMut::from(input.as_bytes());
    decoder().decode_all(&mut buf)
}

fn decode_default(input: &str) -> Vec<Result<ClientOp, ProtocolError>> {
    let mut buf = BytesMut::from(input.as_bytes());
    Decoder::new(Limits::default()).decode_all(&mut buf)
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn publish(subject: &str, reply: Option<&str>, headers: Option<&str>, payload: &str) -> ClientOp {
    ClientOp::Pub {
        subject: b(subject),
        reply: reply.map(b),
        headers: headers.map(b),
        payload: b(payload),
    }
}

fn sub(subject: &str, queue: Option<&str>, sid: &str) -> ClientOp {
    ClientOp::Sub {
        subject: b(subject),
        queue: queue.map(b),
        sid: b(sid),
    }
}

#[test]
fn decodes_valid_operations() {
    let cases: Vec<(&str, Vec<ClientOp>)> = vec![
        ("PING\r\n", vec![ClientOp::Ping]),
        ("ping\r\n", vec![ClientOp::Ping]),
        ("PING\n", vec![ClientOp::Ping]),
        ("PING and anything\r\n", vec![ClientOp::Ping]),
        ("PONG\r\n", vec![ClientOp::Pong]),
        ("+OK\r\n", vec![ClientOp::Ok]),
        ("INFO {\"x\":1}\r\n", vec![ClientOp::Info]),
        ("-ERR 'oops'\r\n", vec![ClientOp::Err(b("'oops'"))]),
        ("SUB foo 1\r\n", vec![sub("foo", None, "1")]),
        (
            "sub\tfoo.*  \t q 22\r\n",
            vec![sub("foo.*", Some("q"), "22")],
        ),
        ("SUB foo.> 1\n", vec![sub("foo.>", None, "1")]),
        (
            "UNSUB 1\r\n",
            vec![ClientOp::Unsub {
                sid: b("1"),
                max: None,
            }],
        ),
        (
            "UNSUB 1 5\r\n",
            vec![ClientOp::Unsub {
                sid: b("1"),
                max: Some(5),
            }],
        ),
        // processUnsub: an unparsable or zero max means "now".
        (
            "UNSUB 1 x\r\n",
            vec![ClientOp::Unsub {
                sid: b("1"),
                max: None,
            }],
        ),
        (
            "UNSUB 1 0\r\n",
            vec![ClientOp::Unsub {
                sid: b("1"),
                max: None,
            }],
        ),
        (
            "PUB foo 5\r\nhello\r\n",
            vec![publish("foo", None, None, "hello")],
        ),
        ("PUB foo 0\r\n\r\n", vec![publish("foo", None, None, "")]),
        (
            "PUB foo bar 5\r\nhello\r\n",
            vec![publish("foo", Some("bar"), None, "hello")],
        ),
        (
            "pub foo 4\r\n\r\n\r\n\r\n",
            vec![publish("foo", None, None, "\r\n\r\n")],
        ),
        (
            "HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
            vec![publish("foo", None, Some("NATS/1.0\r\n\r\n"), "hi")],
        ),
        (
            "HPUB foo r 12 12\r\nNATS/1.0\r\n\r\n\r\n",
            vec![publish("foo", Some("r"), Some("NATS/1.0\r\n\r\n"), "")],
        ),
        (
            "PING\r\nPUB a 1\r\nx\r\nPONG\r\n",
            vec![
                ClientOp::Ping,
                publish("a", None, None, "x"),
                ClientOp::Pong,
            ],
        ),
    ];
    for (input, expected) in cases {
        let got: Vec<ClientOp> = decode_str(input)
            .into_iter()
            .map(|r| r.unwrap_or_else(|e| panic!("{input:?}: {e}")))
            .collect();
        assert_eq!(got, expected, "{input:?}");
    }
}

#[test]
fn connect_uses_nats_server_defaults() {
    let ops = decode_default("CONNECT {}\r\n");
    let Ok(ClientOp::Connect(c)) = &ops[0] else {
        panic!("{ops:?}")
    };
    assert!(c.verbose && c.pedantic && c.echo);
    assert!(!c.headers && !c.no_responders);

    let async_nats = r#"CONNECT {"verbose":false,"pedantic":false,"jwt":null,"nkey":null,"sig":null,"name":null,"echo":true,"lang":"rust","version":"0.51.0","protocol":1,"tls_required":false,"user":null,"pass":null,"auth_token":null,"headers":true,"no_responders":true}"#;
    let ops = decode_default(&format!("{async_nats}\r\n"));
    let Ok(ClientOp::Connect(c)) = &ops[0] else {
        panic!("{ops:?}")
    };
    assert!(!c.verbose && !c.pedantic && c.echo && c.headers && c.no_responders);
    assert_eq!(c.protocol, 1);
    assert_eq!(c.lang.as_deref(), Some("rust"));
    assert_eq!(c.user, None);

    let ops = decode_default("CONNECT {\"verbose\":null,\"echo\":false,\"unknown\":[1]}\r\n");
    let Ok(ClientOp::Connect(c)) = &ops[0] else {
        panic!("{ops:?}")
    };
    assert!(c.verbose && !c.echo);
}

#[test]
fn classifies_bad_input_like_nats_server() {
    use ErrorAction::*;
    let unknown = ErrAndClose("Unknown Protocol Operation");
    let cases: &[(&str, ErrorAction)] = &[
        ("FOO\r\n", unknown),
        ("\r\n", unknown),
        ("MSG foo 1 1\r\nx\r\n", unknown),
        ("PUBX foo 1\r\n", unknown),
        ("PUB\r\n", unknown),
        ("P\x00NG\r\n", unknown),
        ("PUB a 3\r\nab\r\n", unknown),
        ("PUB a 3\r\nabcd\r\n", unknown),
        ("PUB a 3\r\nabc\rX", unknown),
        ("PUB a\r\n", Close),
        ("PUB a b c 1\r\n", Close),
        ("PUB a -1\r\n", Close),
        ("PUB a 1x\r\n", Close),
        ("PUB a 1234567890\r\n", Close),
        ("HPUB a 5 3\r\n", Close),
        ("HPUB a 3\r\n", Close),
        ("SUB foo\r\n", Close),
        ("SUB a b c d\r\n", Close),
        ("UNSUB\t\r\n", Close),
        ("UNSUB 1 2 3\r\n", Close),
        ("CONNECT\r\n", Close),
        ("CONNECT {\r\n", Close),
        ("CONNECT {\"verbose\":\"yes\"}\r\n", Close),
        ("INFO x\r\n", Close),
        ("PUB a 65\r\n", ErrAndClose("Maximum Payload Violation")),
        ("HPUB a 12 65\r\n", ErrAndClose("Maximum Payload Violation")),
        ("SUB foo..bar 1\r\n", ErrAndStay("Invalid Subject")),
        ("SUB foo.>.bar 1\r\n", ErrAndStay("Invalid Subject")),
        ("SUB . 1\r\n", ErrAndStay("Invalid Subject")),
    ];
    for &(input, expected) in cases {
        let ops = decode_str(input);
        let err = ops
            .iter()
            .find_map(|r| r.as_ref().err())
            .unwrap_or_else(|| panic!("{input:?} decoded to {ops:?}"));
        assert_eq!(err.action(), expected, "{input:?}: {err}");
    }
}

#[test]
fn control_line_limit() {
    let long = format!("SUB {} 1", "a".repeat(100));
    // Without its newline yet.
    let mut buf = BytesMut::from(long.as_bytes());
    let err = decoder().decode(&mut buf).unwrap_err();
    assert_eq!(
        err.action(),
        ErrorAction::ErrAndClose("maximum control line exceeded")
    );
    // Whole.
    let err = decode_str(&format!("{long}\r\n"))[0].clone().unwrap_err();
    assert!(matches!(err, ProtocolError::MaxControlLine { .. }));
    // Payloads do not count.
    let ops = decode_str(&format!("PUB a 60\r\n{}\r\n", "x".repeat(60)));
    assert!(ops[0].is_ok());
}

#[test]
fn hpub_needs_headers() {
    let mut d = Decoder::new(Limits::default());
    let mut buf = BytesMut::from(&b"HPUB a 12 12\r\nNATS/1.0\r\n\r\n\r\n"[..]);
    assert_eq!(d.decode(&mut buf).unwrap_err().action(), ErrorAction::Close);
}

#[test]
fn require_connect_refuses_anything_else_first() {
    for first in ["PING\r\n", "SUB a 1\r\n", "FOO\r\n"] {
        let mut d = Decoder::new(Limits::default());
        d.set_require_connect(true);
        let mut buf = BytesMut::from(first.as_bytes());
        assert_eq!(
            d.decode(&mut buf).unwrap_err().action(),
            ErrorAction::ErrAndClose("Authorization Violation"),
            "{first:?}"
        );
    }
    let mut d = Decoder::new(Limits::default());
    d.set_require_connect(true);
    let mut buf = BytesMut::from(&b"connect {}\r\n"[..]);
    assert!(matches!(d.decode(&mut buf), Ok(Some(ClientOp::Connect(_)))));
}

#[test]
fn stays_usable_after_an_invalid_subject_and_poisoned_after_a_fatal_error() {
    let ops = decode_str("SUB a..b 1\r\nSUB a 2\r\n");
    assert!(ops[0].is_err());
    assert_eq!(ops[1], Ok(sub("a", None, "2")));

    let mut d = decoder();
    let mut buf = BytesMut::from(&b"FOO\r\nPING\r\n"[..]);
    assert!(d.decode(&mut buf).is_err());
    assert!(d.decode(&mut buf).is_err());
}

#[test]
fn needs_more_bytes() {
    for partial in [
        "P",
        "PI",
        "PIN",
        "PU",
        "PUB",
        "PUB ",
        "PUB a",
        "PUB a 5\r\nhel",
        "PUB a 5\r\nhello",
        "PUB a 5\r\nhello\r",
        "CONNECT {",
        "UNS",
        "-",
        "+O",
        "HPUB a 12 14\r\nNATS",
    ] {
        let mut buf = BytesMut::from(partial.as_bytes());
        assert_eq!(decoder().decode(&mut buf), Ok(None), "{partial:?}");
    }
}

#[test]
fn encoders() {
    let mut out = BytesMut::new();
    encode_msg(b"foo", b"1", None, b"hello", &mut out);
    encode_msg(b"foo", b"22", Some(b"_INBOX.x"), b"", &mut out);
    encode_hmsg(b"foo", b"1", None, b"NATS/1.0\r\n\r\n", b"hi", &mut out);
    encode_err("Invalid Subject", &mut out);
    out.extend_from_slice(PING);
    out.extend_from_slice(PONG);
    out.extend_from_slice(OK);
    assert_eq!(
        &out[..],
        &b"MSG foo 1 5\r\nhello\r\nMSG foo 22 _INBOX.x 0\r\n\r\n\
           HMSG foo 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n-ERR 'Invalid Subject'\r\n\
           PING\r\nPONG\r\n+OK\r\n"[..]
    );

    let mut out = BytesMut::new();
    let info = ServerInfo {
        server_id: "id".into(),
        server_name: "n".into(),
        version: "0.1.0".into(),
        proto: 1,
        host: "127.0.0.1".into(),
        port: 4222,
        headers: true,
        max_payload: 1_048_576,
        client_id: 7,
        client_ip: "127.0.0.1".into(),
        auth_required: false,
        tls_required: false,
        tls_verify: false,
    };
    encode_info(&info, &mut out);
    let text = std::str::from_utf8(&out).unwrap();
    assert!(text.starts_with("INFO {") && text.ends_with("}\r\n"));
    let json: serde_json::Value = serde_json::from_str(&text[5..text.len() - 2]).unwrap();
    assert_eq!(json["max_payload"], 1_048_576);
    assert_eq!(json["headers"], true);
    assert_eq!(json["proto"], 1);
    assert!(json.get("auth_required").is_none());
}

#[test]
fn decimal() {
    for n in [0u64, 7, 10, 99, 1_000_000, u64::MAX] {
        let mut out = Vec::new();
        put_decimal(&mut out, n);
        assert_eq!(out, n.to_string().into_bytes());
    }
}

/// The checked-in fuzz corpus runs here too, so CI exercises it without cargo-fuzz.
#[test]
fn fuzz_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/codec");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        if let Err(e) = check_split_consistency(&data) {
            panic!("{}: {e}", path.display());
        }
        count += 1;
    }
    assert!(
        count >= 12,
        "only {count} corpus files in {}",
        dir.display()
    );
}

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[a-zA-Z0-9_\\-]{1,8}",
        1 => Just("*".to_string()),
    ]
}

fn literal_subject() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec("[a-zA-Z0-9_\\-]{1,8}", 1..4).prop_map(|t| Bytes::from(t.join(".")))
}

fn sub_subject() -> impl Strategy<Value = Bytes> {
    (proptest::collection::vec(token(), 1..4), any::<bool>()).prop_map(|(mut t, gt)| {
        if gt {
            t.push(">".to_string());
        }
        Bytes::from(t.join("."))
    })
}

fn bytes_up_to(n: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..n).prop_map(Bytes::from)
}

fn header_block() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(("[A-Za-z\\-]{1,8}", "[ -~]{0,10}"), 0..3).prop_map(|pairs| {
        let mut h = String::from("NATS/1.0\r\n");
        for (k, v) in pairs {
            h.push_str(&format!("{k}: {v}\r\n"));
        }
        h.push_str("\r\n");
        Bytes::from(h)
    })
}

fn sid() -> impl Strategy<Value = Bytes> {
    "[0-9]{1,6}".prop_map(Bytes::from)
}

fn client_op() -> impl Strategy<Value = ClientOp> {
    prop_oneof![
        Just(ClientOp::Ping),
        Just(ClientOp::Pong),
        Just(ClientOp::Ok),
        (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(verbose, echo, headers)| {
            ClientOp::Connect(Box::new(Connect {
                verbose,
                echo,
                headers,
                name: Some("c".into()),
                ..Connect::default()
            }))
        }),
        (sub_subject(), proptest::option::of("[a-z]{1,5}"), sid()).prop_map(|(s, q, id)| {
            ClientOp::Sub {
                subject: s,
                queue: q.map(Bytes::from),
                sid: id,
            }
        }),
        (sid(), proptest::option::of(1u64..1000))
            .prop_map(|(sid, max)| ClientOp::Unsub { sid, max }),
        (
            literal_subject(),
            proptest::option::of(literal_subject()),
            proptest::option::of(header_block()),
            bytes_up_to(300),
        )
            .prop_map(|(subject, reply, headers, payload)| ClientOp::Pub {
                subject,
                reply,
                headers,
                payload,
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Valid ops, encoded and fed in arbitrary pieces, decode to the same ops as fed whole.
    #[test]
    fn split_reads_yield_the_same_ops(
        ops in proptest::collection::vec(client_op(), 1..12),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..20),
    ) {
        let mut wire = BytesMut::new();
        for op in &ops {
            op.encode(&mut wire);
        }
        let wire = wire.freeze();
        let limits = Limits { max_payload: 1024 * 1024, max_control_line: 4096 };

        let mut whole = Decoder::new(limits);
        whole.set_headers(true);
        let mut buf = BytesMut::from(&wire[..]);
        let got: Vec<_> = whole.decode_all(&mut buf);
        prop_assert_eq!(got, ops.iter().cloned().map(Ok).collect::<Vec<_>>());
        prop_assert!(buf.is_empty());

        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        points.push(wire.len());
        points.sort_unstable();
        let mut split = Decoder::new(limits);
        split.set_headers(true);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut at = 0;
        for p in points {
            buf.extend_from_slice(&wire[at..p]);
            at = p;
            got.extend(split.decode_all(&mut buf));
        }
        prop_assert_eq!(got, ops.into_iter().map(Ok).collect::<Vec<_>>());
    }

    /// Arbitrary bytes never panic the decoder, and cutting them differently changes nothing.
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        prop_assert_eq!(check_split_consistency(&data), Ok(()));
    }

    /// Protocol-looking garbage: real verbs with random arguments.
    #[test]
    fn garbage_with_verbs_never_panics(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("PUB ".to_string()), Just("HPUB ".to_string()), Just("SUB ".to_string()),
                Just("UNSUB ".to_string()), Just("PING".to_string()), Just("CONNECT ".to_string()),
                Just("\r\n".to_string()), Just(" ".to_string()), "[0-9]{1,3}", "[a-z.*>]{1,6}",
            ],
            0..30,
        )
    ) {
        let data = parts.concat();
        prop_assert_eq!(check_split_consistency(data.as_bytes()), Ok(()));
    }
}
