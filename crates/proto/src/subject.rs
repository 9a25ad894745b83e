//! The NATS subjects Muster uses (docs/design.md §2) and the rules for identities and collectives.

/// The default collective.
pub const DEFAULT_COLLECTIVE: &str = "muster";

/// Where broadcast requests for `agent` go; every node with that agent subscribes.
pub fn broadcast(collective: &str, agent: &str) -> String {
    format!("muster.{collective}.broadcast.{agent}")
}

/// Where requests addressed to one node go; only that node subscribes.
pub fn node(collective: &str, identity: &str) -> String {
    format!("muster.{collective}.node.{identity}")
}

/// Where nodes publish their registration.
pub fn registration(collective: &str) -> String {
    format!("muster.{collective}.registration")
}

/// Where registry services answer inventory queries.
pub fn registry_query(collective: &str) -> String {
    format!("muster.{collective}.registry.query")
}

/// Where the nodes reply to a collected request (`<id>.<part>` below it): every registry
/// subscribes to `muster.<collective>.replies.>`.
pub fn replies(collective: &str, id: &str) -> String {
    format!("{}.{id}", all_replies(collective))
}

/// Below this are the reply subjects of every collected request of the collective.
pub fn all_replies(collective: &str) -> String {
    format!("muster.{collective}.replies")
}

/// Where a registry asks every node to register now (a registry hello, on start and after
/// reconnecting); every node subscribes.
pub fn registry_hello(collective: &str) -> String {
    format!("muster.{collective}.registry.hello")
}

/// Where a client announces a collected request; every registry stores it and answers.
pub fn job_new(collective: &str) -> String {
    format!("muster.{collective}.registry.job.new")
}

/// Where one registry of the queue group answers for a collected request.
pub fn job_get(collective: &str) -> String {
    format!("muster.{collective}.registry.job.get")
}

/// One registry's own subject for the rest of a long answer about a collected request.
pub fn job_get_from(collective: &str, registry: &str) -> String {
    format!("{}.{registry}", job_get(collective))
}

/// An identity, collective or agent name that cannot be used in a subject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {reason}")]
pub struct NameError {
    /// What kind of name it was (`identity`, `collective`, `agent`).
    pub what: &'static str,
    /// The offending value.
    pub value: String,
    /// Why it is invalid.
    pub reason: &'static str,
}

/// Checks an identity: non-empty, no whitespace, `*` or `>`, no empty dot-separated part.
pub fn check_identity(identity: &str) -> Result<(), NameError> {
    check_name("identity", identity, true)
}

/// Checks a collective or agent name: like an identity, but without dots.
pub fn check_token(what: &'static str, name: &str) -> Result<(), NameError> {
    check_name(what, name, false)
}

fn check_name(what: &'static str, value: &str, dots: bool) -> Result<(), NameError> {
    let fail = |reason| {
        Err(NameError {
            what,
            value: value.to_string(),
            reason,
        })
    };
    if value.is_empty() {
        return fail("it is empty");
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return fail("it contains whitespace or control characters");
    }
    if value.contains(['*', '>']) {
        return fail("it contains '*' or '>'");
    }
    if !dots && value.contains('.') {
        return fail("it contains '.'");
    }
    if value.split('.').any(str::is_empty) {
        return fail("it has an empty part between dots");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects() {
        assert_eq!(
            broadcast("muster", "rpcutil"),
            "muster.muster.broadcast.rpcutil"
        );
        assert_eq!(
            node("dc1", "web1.example.com"),
            "muster.dc1.node.web1.example.com"
        );
        assert_eq!(registration("muster"), "muster.muster.registration");
        assert_eq!(registry_query("muster"), "muster.muster.registry.query");
        assert_eq!(replies("muster", "01ab"), "muster.muster.replies.01ab");
        assert_eq!(job_new("muster"), "muster.muster.registry.job.new");
        assert_eq!(job_get("muster"), "muster.muster.registry.job.get");
        assert_eq!(registry_hello("muster"), "muster.muster.registry.hello");
    }

    #[test]
    fn identities() {
        for ok in ["web1", "web1.example.com", "a-b_c"] {
            assert!(check_identity(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a*", "a>", "a..b", ".a", "a.", "a\tb"] {
            assert!(check_identity(bad).is_err(), "{bad:?}");
        }
        assert!(check_token("agent", "rpc.util").is_err());
        assert!(check_token("agent", "rpcutil").is_ok());
    }
}
