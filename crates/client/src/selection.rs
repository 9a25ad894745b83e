//! Counts given as `N` or `P%` (`--batch`, `--limit`), and choosing a random subset of the
//! expected set (`--limit`, `--one`).

use std::collections::BTreeSet;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// `N` nodes, or `P%` of them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Count {
    /// A number of nodes.
    Nodes(usize),
    /// A share of the nodes, 0 to 100.
    Percent(f64),
}

/// A count that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{}give a number of nodes (10) or a percentage (25%) above 0",
    if option.is_empty() { String::new() } else { format!("invalid {option} {value:?}: ") }
)]
pub struct CountError {
    /// The option.
    pub option: &'static str,
    /// What was given.
    pub value: String,
}

/// `N` or `P%`, for flags parsed into a [`Count`] (the error names no option: the flag
/// parser names it).
impl std::str::FromStr for Count {
    type Err = CountError;

    fn from_str(text: &str) -> Result<Count, CountError> {
        Count::parse("", text)
    }
}

impl Count {
    /// Parses `N` or `P%`.
    pub fn parse(option: &'static str, text: &str) -> Result<Count, CountError> {
        let fail = || CountError {
            option,
            value: text.to_string(),
        };
        let text = text.trim();
        match text.strip_suffix('%') {
            Some(p) => {
                let p: f64 = p.trim().parse().map_err(|_| fail())?;
                if p > 0.0 && p <= 100.0 {
                    Ok(Count::Percent(p))
                } else {
                    Err(fail())
                }
            }
            None => match text.parse::<usize>() {
                Ok(n) if n > 0 => Ok(Count::Nodes(n)),
                _ => Err(fail()),
            },
        }
    }

    /// How many of `total` nodes: a percentage rounds up, so it is never 0 of a non-empty set.
    pub fn of(self, total: usize) -> usize {
        match self {
            Count::Nodes(n) => n.min(total),
            Count::Percent(p) => ((total as f64 * p / 100.0).ceil() as usize).min(total),
        }
    }
}

/// `count` nodes of `nodes` chosen at random; the same `seed` gives the same choice.
pub fn choose(nodes: &BTreeSet<String>, count: Count, seed: Option<u64>) -> BTreeSet<String> {
    let n = count.of(nodes.len());
    let mut rng = match seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => StdRng::from_rng(&mut rand::rng()),
    };
    let mut all: Vec<&String> = nodes.iter().collect();
    // A partial Fisher-Yates shuffle: the first n are the choice.
    for i in 0..n {
        let j = rng.random_range(i..all.len());
        all.swap(i, j);
    }
    all.into_iter().take(n).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        assert_eq!(Count::parse("--limit", "10").unwrap(), Count::Nodes(10));
        assert_eq!(
            Count::parse("--limit", "25%").unwrap(),
            Count::Percent(25.0)
        );
        for bad in ["0", "0%", "-1", "x", "101%", ""] {
            assert!(Count::parse("--limit", bad).is_err(), "{bad}");
        }
        assert_eq!(Count::Nodes(10).of(3), 3);
        assert_eq!(Count::Percent(10.0).of(15), 2);
        assert_eq!(Count::Percent(1.0).of(5), 1);
        assert_eq!(Count::Percent(100.0).of(7), 7);
    }

    #[test]
    fn choices_are_random_but_repeatable() {
        let nodes: BTreeSet<String> = (0..100).map(|i| format!("n{i:03}")).collect();
        let a = choose(&nodes, Count::Nodes(10), Some(7));
        assert_eq!(a.len(), 10);
        assert!(a.is_subset(&nodes));
        assert_eq!(a, choose(&nodes, Count::Nodes(10), Some(7)));
        assert_ne!(a, choose(&nodes, Count::Nodes(10), Some(8)));
        assert_eq!(choose(&nodes, Count::Percent(100.0), None), nodes);
    }
}
