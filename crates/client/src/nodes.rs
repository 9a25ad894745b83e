//! Node lists (`--nodes FILE|-`): one identity per line, or the JSON printed by
//! `muster find --json` (an array of identities), so commands compose.

use std::collections::BTreeSet;

use muster_proto::subject;

use crate::connection::ClientError;

/// Parses a node list. Blank lines and `#` comments are skipped.
pub fn parse(text: &str, source: &str) -> Result<BTreeSet<String>, ClientError> {
    let fail = |message: String| ClientError::NodeList {
        path: source.to_string(),
        message,
    };
    let trimmed = text.trim_start();
    let names: Vec<String> = if trimmed.starts_with('[') {
        serde_json::from_str(trimmed).map_err(|e| {
            fail(format!(
                "looks like JSON but is not an array of identities: {e}"
            ))
        })?
    } else {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect()
    };
    let mut set = BTreeSet::new();
    for (i, name) in names.into_iter().enumerate() {
        subject::check_identity(&name).map_err(|e| fail(format!("entry {}: {e}", i + 1)))?;
        set.insert(name);
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_json() {
        let set = parse("web1\n\n# c\n web2 \nweb1\n", "f").unwrap();
        assert_eq!(set.into_iter().collect::<Vec<_>>(), ["web1", "web2"]);
        let set = parse("[\"a\", \"b.example\"]", "f").unwrap();
        assert_eq!(set.len(), 2);
        assert!(parse("", "f").unwrap().is_empty());
        let err = parse("ok\nbad name\n", "list.txt").unwrap_err().to_string();
        assert!(err.contains("list.txt") && err.contains("entry 2"), "{err}");
        assert!(parse("[1,2]", "f").is_err());
    }
}
