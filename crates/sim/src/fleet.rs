//! Generating a fleet: identities, realistic varied facts and classes, and who gets which
//! fault, all from one seed.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

use crate::fault::{Fault, Share};

/// One virtual node as generated.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpec {
    /// Its identity.
    pub identity: String,
    /// Its facts.
    pub facts: Value,
    /// Its classes.
    pub classes: Vec<String>,
    /// How it misbehaves.
    pub fault: Fault,
}

/// How to generate a fleet.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    /// How many nodes.
    pub nodes: usize,
    /// The seed: the same seed gives the same fleet.
    pub seed: u64,
    /// Identity prefix: nodes are `<prefix>-00001` and so on.
    pub prefix: String,
    /// Share that never answers.
    pub silent: Share,
    /// Share that answers with failures.
    pub fail: Share,
    /// Share that answers late, and how late.
    pub slow: Option<(Share, std::time::Duration)>,
    /// Share whose connection drops and comes back.
    pub flap: Share,
    /// Share of nodes that ignore filters.
    pub stray: Share,
}

impl FleetSpec {
    /// `nodes` nodes named `<prefix>-00001` …, generated from `seed`, without faults: every
    /// node answers, on time, as filtered.
    pub fn healthy(nodes: usize, seed: u64, prefix: &str) -> Self {
        FleetSpec {
            nodes,
            seed,
            prefix: prefix.to_string(),
            silent: Share(0.0),
            fail: Share(0.0),
            slow: None,
            flap: Share(0.0),
            stray: Share(0.0),
        }
    }
}

const ROLES: &[(&str, u32)] = &[
    ("web", 40),
    ("app", 25),
    ("db", 10),
    ("cache", 10),
    ("queue", 5),
    ("lb", 10),
];
const DCS: &[&str] = &["ams1", "fra1", "nyc2", "sfo3"];
const OS: &[(&str, &str, &str, &str)] = &[
    ("Debian", "debian", "Debian GNU/Linux", "12"),
    ("Debian", "debian", "Debian GNU/Linux", "11"),
    ("Debian", "ubuntu", "Ubuntu", "24.04"),
    ("Debian", "ubuntu", "Ubuntu", "22.04"),
    ("RedHat", "rocky", "Rocky Linux", "9.4"),
    ("RedHat", "almalinux", "AlmaLinux", "8.10"),
];
const KERNELS: &[&str] = &[
    "6.1.0-25-amd64",
    "6.1.0-18-amd64",
    "5.10.0-32-amd64",
    "6.8.0-45-generic",
    "5.15.0-119-generic",
    "5.14.0-427.el9.x86_64",
];
const OPENSSL: &[&str] = &["3.0.15", "3.0.11", "3.0.2", "1.1.1w", "3.2.2"];
const NGINX: &[&str] = &["1.22.1", "1.24.0", "1.26.2"];
const POSTGRES: &[&str] = &["15.8", "16.4"];

fn weighted<'a>(rng: &mut StdRng, items: &[(&'a str, u32)]) -> &'a str {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut pick = rng.random_range(0..total);
    for (item, weight) in items {
        if pick < *weight {
            return item;
        }
        pick -= weight;
    }
    items[0].0
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// Generates the fleet. Faults are assigned to exact counts (rounded) of randomly chosen nodes,
/// at most one fault per node.
pub fn generate(spec: &FleetSpec) -> Vec<NodeSpec> {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let width = spec.nodes.to_string().len().max(5);
    let mut nodes: Vec<NodeSpec> = (1..=spec.nodes)
        .map(|i| {
            let identity = format!("{}-{i:0width$}", spec.prefix);
            let role = weighted(&mut rng, ROLES);
            let dc = *pick(&mut rng, DCS);
            let (family, id, name, release) = *pick(&mut rng, OS);
            let mut packages = json!({ "openssl": pick(&mut rng, OPENSSL) });
            if matches!(role, "web" | "lb") {
                packages["nginx"] = json!(pick(&mut rng, NGINX));
            }
            if role == "db" {
                packages["postgresql"] = json!(pick(&mut rng, POSTGRES));
            }
            let cpus = *pick(&mut rng, &[2, 4, 8, 16, 32]);
            let facts = json!({
                "hostname": identity,
                "role": role,
                "dc": dc,
                "os": { "family": family, "id": id, "name": name, "release": release },
                "kernel": pick(&mut rng, KERNELS),
                "arch": "x86_64",
                "cpus": cpus,
                "memory": cpus * 4 * 1024 * 1024 * 1024u64,
                "packages": packages,
                "simulated": true,
            });
            let mut classes = vec!["base".to_string(), role.to_string(), format!("dc_{dc}")];
            if rng.random_bool(0.05) {
                classes.push("canary".to_string());
            }
            NodeSpec {
                identity,
                facts,
                classes,
                fault: Fault::None,
            }
        })
        .collect();

    let mut order: Vec<usize> = (0..nodes.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    let mut next = order.into_iter();
    let count = |share: Share| (share.0 * spec.nodes as f64).round() as usize;
    let mut assign = |n: usize, fault: Fault| {
        for index in next.by_ref().take(n) {
            nodes[index].fault = fault;
        }
    };
    assign(count(spec.silent), Fault::Silent);
    assign(count(spec.fail), Fault::Fail);
    if let Some((share, delay)) = spec.slow {
        assign(count(share), Fault::Slow(delay));
    }
    assign(count(spec.flap), Fault::Flap);
    assign(count(spec.stray), Fault::Stray);
    nodes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(nodes: usize, seed: u64) -> FleetSpec {
        FleetSpec {
            nodes,
            seed,
            prefix: "sim".into(),
            silent: Share(0.02),
            fail: Share(0.03),
            slow: Some((Share(0.01), std::time::Duration::from_secs(1))),
            flap: Share(0.0),
            stray: Share(0.0),
        }
    }

    #[test]
    fn deterministic_and_varied() {
        let a = generate(&spec(1000, 7));
        assert_eq!(a, generate(&spec(1000, 7)));
        assert_ne!(a, generate(&spec(1000, 8)));
        assert_eq!(a[0].identity, "sim-00001");
        assert_eq!(a[999].identity, "sim-01000");
        let count = |f: fn(&Fault) -> bool| a.iter().filter(|n| f(&n.fault)).count();
        assert_eq!(count(|f| *f == Fault::Silent), 20);
        assert_eq!(count(|f| *f == Fault::Fail), 30);
        assert_eq!(count(|f| matches!(f, Fault::Slow(_))), 10);
        let roles: std::collections::BTreeSet<_> = a
            .iter()
            .map(|n| n.facts["role"].as_str().unwrap())
            .collect();
        assert!(roles.len() >= 5, "{roles:?}");
        let versions: std::collections::BTreeSet<_> = a
            .iter()
            .map(|n| n.facts["packages"]["openssl"].as_str().unwrap())
            .collect();
        assert_eq!(versions.len(), OPENSSL.len());
    }
}
