//! Subjects: validation and wildcard matching, as `nats-server`'s sublist does them.
//!
//! A subject is a `.`-separated list of tokens. In a subscription, a token that is exactly `*`
//! matches any one token and a last token that is exactly `>` matches one or more tokens; a
//! token merely containing `*` or `>` (`foo*`) is literal. Published subjects are matched
//! token by token, literally.

/// Whether `subject` may be subscribed to: non-empty tokens, `>` only as the last token
/// (`nats-server` `sublist.go` `Insert`; an invalid one gets `-ERR 'Invalid Subject'`).
pub fn is_valid_subscription(subject: &[u8]) -> bool {
    let mut tokens = tokens(subject).peekable();
    while let Some(token) = tokens.next() {
        if token.is_empty() || (token == b">" && tokens.peek().is_some()) {
            return false;
        }
    }
    true
}

/// Whether `subject` is a valid literal subject: a valid subscription subject without
/// wildcard tokens (what a publish subject must be when `pedantic` is on).
pub fn is_valid_literal(subject: &[u8]) -> bool {
    is_valid_subscription(subject) && !has_wildcard(subject)
}

/// Whether any token of `subject` is the wildcard `*` or `>`.
pub fn has_wildcard(subject: &[u8]) -> bool {
    tokens(subject).any(|t| t == b"*" || t == b">")
}

/// The `.`-separated tokens of `subject`.
pub fn tokens(subject: &[u8]) -> impl Iterator<Item = &[u8]> {
    subject.split(|&b| b == b'.')
}

/// Whether the subscription subject `pattern` matches the published subject `subject`.
pub fn matches(pattern: &[u8], subject: &[u8]) -> bool {
    let mut pattern = tokens(pattern);
    let mut subject = tokens(subject);
    loop {
        match (pattern.next(), subject.next()) {
            (None, None) => return true,
            (Some(b">"), Some(_)) => return true,
            (Some(b"*"), Some(_)) => {}
            (Some(p), Some(s)) if p == s => {}
            _ => return false,
        }
    }
}

/// Splits off the first token of a non-empty `rest`: `(token, remainder)`, the remainder being
/// `None` after the last token.
pub(crate) fn split_first(rest: &[u8]) -> (&[u8], Option<&[u8]>) {
    match rest.iter().position(|&b| b == b'.') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity() {
        let cases: &[(&str, bool, bool)] = &[
            // subject, valid subscription, valid literal
            ("foo", true, true),
            ("foo.bar", true, true),
            ("foo.*", true, false),
            ("foo.>", true, false),
            (">", true, false),
            ("*", true, false),
            ("*.>", true, false),
            ("foo*.bar", true, true),
            ("foo.>bar", true, true),
            ("_INBOX.abc.>", true, false),
            ("", false, false),
            ("foo.", false, false),
            (".foo", false, false),
            ("foo..bar", false, false),
            ("foo.>.bar", false, false),
            (">.foo", false, false),
        ];
        for &(subject, sub, lit) in cases {
            assert_eq!(
                is_valid_subscription(subject.as_bytes()),
                sub,
                "subscription {subject:?}"
            );
            assert_eq!(
                is_valid_literal(subject.as_bytes()),
                lit,
                "literal {subject:?}"
            );
        }
    }

    #[test]
    fn matching() {
        let cases: &[(&str, &str, bool)] = &[
            ("foo", "foo", true),
            ("foo", "bar", false),
            ("foo", "foo.bar", false),
            ("foo.bar", "foo", false),
            ("foo.*", "foo.bar", true),
            ("foo.*", "foo", false),
            ("foo.*", "foo.bar.baz", false),
            ("foo.>", "foo.bar", true),
            ("foo.>", "foo.bar.baz", true),
            ("foo.>", "foo", false),
            (">", "foo", true),
            (">", "foo.bar", true),
            ("*", "foo", true),
            ("*", "foo.bar", false),
            ("*.bar", "foo.bar", true),
            ("*.*.baz", "foo.bar.baz", true),
            ("foo*.bar", "foox.bar", false),
            ("foo*.bar", "foo*.bar", true),
            ("_INBOX.a.>", "_INBOX.a.1", true),
            ("_INBOX.a.>", "_INBOX.b.1", false),
            ("foo.*", "foo.*", true),
        ];
        for &(pattern, subject, expected) in cases {
            assert_eq!(
                matches(pattern.as_bytes(), subject.as_bytes()),
                expected,
                "{pattern:?} ~ {subject:?}"
            );
        }
    }

    #[test]
    fn split_first_token() {
        assert_eq!(split_first(b"a.b.c"), (&b"a"[..], Some(&b"b.c"[..])));
        assert_eq!(split_first(b"a"), (&b"a"[..], None));
        assert_eq!(split_first(b"a."), (&b"a"[..], Some(&b""[..])));
    }
}
