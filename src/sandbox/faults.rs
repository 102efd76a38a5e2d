//! Fault injection: rules that make matching requests slow, fail with a status (429 with
//! `Retry-After`, 5xx) or lose their connection, with a probability and an optional count.
//! Set with `--faults` at start or `PUT /faults` on the admin API.
//!
//! Rule JSON: `{"emulator": "gitlab"|"kube"|"registry"|"*", "method": "POST"|"*", "path": "/api/v4/projects/*",
//! "probability": 0.5, "times": 3, "fault": "status", "status": 429, "retry_after": 1}`;
//! `"fault": "latency", "latency_ms": 200`; `"fault": "reset"`; `"fault": "hang"` (no answer
//! until the sandbox stops: a test sees the request arrive in `/stats` and kills the client
//! there, a kill at a chosen step). `*` in `path` matches any run of characters, `/`
//! included. `"when": "after"` on a status, reset or hang rule carries the request out
//! first and then loses, replaces or withholds its answer: the case where a client cannot
//! tell whether its create happened, which retries must survive.

use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum Fault {
    Status {
        status: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<u64>,
    },
    Latency {
        latency_ms: u64,
    },
    Reset,
    Hang,
}

/// Whether a fault replaces the request (`before`, the default) or its answer (`after`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    #[default]
    Before,
    After,
}

impl When {
    fn is_before(&self) -> bool {
        *self == When::Before
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    #[serde(default = "any")]
    pub emulator: String,
    #[serde(default = "any")]
    pub method: String,
    pub path: String,
    #[serde(default = "always")]
    pub probability: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    #[serde(default, skip_serializing_if = "When::is_before")]
    pub when: When,
    #[serde(flatten)]
    pub fault: Fault,
}

fn any() -> String {
    "*".into()
}

fn always() -> f64 {
    1.0
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultSpec {
    pub rules: Vec<FaultRule>,
}

#[derive(Debug, thiserror::Error)]
pub enum FaultSpecError {
    #[error("fault spec is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot read fault spec file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("rule {index}: {reason}")]
    Rule { index: usize, reason: String },
}

impl FaultSpec {
    /// Parses inline JSON, or `@path` to a JSON file.
    pub fn parse(text: &str) -> Result<Self, FaultSpecError> {
        let json = match text.strip_prefix('@') {
            Some(path) => std::fs::read_to_string(path).map_err(|source| FaultSpecError::File {
                path: path.to_string(),
                source,
            })?,
            None => text.to_string(),
        };
        let spec: FaultSpec = serde_json::from_str(&json)?;
        spec.check()?;
        Ok(spec)
    }

    pub fn check(&self) -> Result<(), FaultSpecError> {
        for (index, rule) in self.rules.iter().enumerate() {
            let bad = |reason: &str| FaultSpecError::Rule {
                index,
                reason: reason.to_string(),
            };
            if !(0.0..=1.0).contains(&rule.probability) {
                return Err(bad("probability must be between 0 and 1"));
            }
            if !["gitlab", "kube", "registry", "*"].contains(&rule.emulator.as_str()) {
                return Err(bad(
                    "emulator must be \"gitlab\", \"kube\", \"registry\" or \"*\"",
                ));
            }
            if let Fault::Status { status, .. } = rule.fault
                && !(400..=599).contains(&status)
            {
                return Err(bad("status must be an HTTP error status (400-599)"));
            }
            if rule.when == When::After && matches!(rule.fault, Fault::Latency { .. }) {
                return Err(bad(
                    "\"when\": \"after\" applies to status, reset and hang faults only",
                ));
            }
        }
        Ok(())
    }
}

/// What to do with one request.
#[derive(Debug, Default, PartialEq)]
pub struct Decision {
    pub delay: Duration,
    /// A terminal fault (status, reset or hang) replacing the emulator's answer.
    pub fault: Option<Fault>,
    /// When the fault strikes: before the request is carried out, or after.
    pub when: When,
}

struct ActiveRule {
    rule: FaultRule,
    injected: AtomicU64,
}

#[derive(Default)]
pub struct Faults {
    rules: RwLock<Vec<ActiveRule>>,
    rng: AtomicU64,
}

impl Faults {
    pub fn new(spec: FaultSpec) -> Self {
        let faults = Self::default();
        faults.replace(spec);
        faults
    }

    pub fn replace(&self, spec: FaultSpec) {
        let active = spec
            .rules
            .into_iter()
            .map(|rule| ActiveRule {
                rule,
                injected: AtomicU64::new(0),
            })
            .collect();
        *self
            .rules
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = active;
    }

    pub fn spec(&self) -> FaultSpec {
        let rules = self
            .rules
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        FaultSpec {
            rules: rules.iter().map(|r| r.rule.clone()).collect(),
        }
    }

    /// Latency rules add up; the first matching status or reset rule wins.
    pub fn decide(&self, emulator: &str, method: &str, path: &str) -> Decision {
        let rules = self
            .rules
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut decision = Decision::default();
        for active in rules.iter() {
            let rule = &active.rule;
            let matches = (rule.emulator == "*" || rule.emulator == emulator)
                && (rule.method == "*" || rule.method.eq_ignore_ascii_case(method))
                && glob_match(&rule.path, path);
            if !matches || !self.roll(rule.probability) || !claim(active) {
                continue;
            }
            match &rule.fault {
                Fault::Latency { latency_ms } => {
                    decision.delay += Duration::from_millis(*latency_ms)
                }
                terminal => {
                    decision.fault = Some(terminal.clone());
                    decision.when = rule.when;
                    break;
                }
            }
        }
        decision
    }

    /// splitmix64: good enough to spread faults, and lock-free.
    fn roll(&self, probability: f64) -> bool {
        if probability >= 1.0 {
            return true;
        }
        let seed = self.rng.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64 <= probability
    }
}

/// Counts an injection against the rule's `times` budget; false when it is used up.
fn claim(active: &ActiveRule) -> bool {
    let n = active.injected.fetch_add(1, Ordering::Relaxed);
    active.rule.times.is_none_or(|max| n < max)
}

/// `*` matches any run of characters (including `/`); everything else literally.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = match parts.split_first() {
        Some(split) => split,
        None => return text.is_empty(),
    };
    let Some(mut remaining) = text.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return remaining.is_empty();
    };
    for part in middle {
        match remaining.find(part) {
            Some(i) => remaining = &remaining[i + part.len()..],
            None => return false,
        }
    }
    remaining.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match(
            "/api/v4/projects/*/cluster_agents",
            "/api/v4/projects/fleet%2Fagents/cluster_agents"
        ));
        assert!(glob_match("*", "/anything"));
        assert!(glob_match(
            "/api/*/tokens*",
            "/api/v4/projects/1/cluster_agents/2/tokens/3"
        ));
        assert!(!glob_match(
            "/api/v4/projects/*/cluster_agents",
            "/api/v4/projects/1/cluster_agents/2"
        ));
        assert!(glob_match("/exact", "/exact"));
        assert!(!glob_match("/exact", "/exactly"));
    }

    #[test]
    fn spec_parses_and_rejects_nonsense() {
        let spec = FaultSpec::parse(
            r#"{"rules": [
              {"emulator": "gitlab", "method": "POST", "path": "/api/v4/*", "fault": "status", "status": 429, "retry_after": 2, "times": 1},
              {"path": "*", "fault": "latency", "latency_ms": 5},
              {"emulator": "kube", "path": "/api/*", "probability": 0.5, "fault": "reset"}
            ]}"#,
        )
        .expect("valid");
        assert_eq!(spec.rules.len(), 3);
        assert_eq!(spec.rules[1].emulator, "*");
        assert!(
            FaultSpec::parse(r#"{"rules":[{"path":"*","fault":"status","status":200}]}"#).is_err()
        );
        assert!(
            FaultSpec::parse(r#"{"rules":[{"path":"*","probability":2,"fault":"reset"}]}"#)
                .is_err()
        );
        assert!(FaultSpec::parse("@/nonexistent/spec.json").is_err());
    }

    #[test]
    fn decisions_respect_match_times_and_latency() {
        let faults = Faults::new(
            FaultSpec::parse(
                r#"{"rules": [
                  {"path": "*", "fault": "latency", "latency_ms": 7},
                  {"emulator": "gitlab", "method": "POST", "path": "/api/v4/*", "fault": "status", "status": 503, "times": 2}
                ]}"#,
            )
            .expect("valid"),
        );
        let d = faults.decide("gitlab", "POST", "/api/v4/x");
        assert_eq!(d.delay, Duration::from_millis(7));
        assert_eq!(
            d.fault,
            Some(Fault::Status {
                status: 503,
                retry_after: None
            })
        );
        assert!(faults.decide("gitlab", "GET", "/api/v4/x").fault.is_none());
        assert!(faults.decide("kube", "POST", "/api/v4/x").fault.is_none());
        assert!(faults.decide("gitlab", "POST", "/api/v4/x").fault.is_some());
        assert!(
            faults.decide("gitlab", "POST", "/api/v4/x").fault.is_none(),
            "times exhausted"
        );
    }

    #[test]
    fn probability_is_roughly_honoured() {
        let faults = Faults::new(
            FaultSpec::parse(r#"{"rules":[{"path":"*","probability":0.3,"fault":"reset"}]}"#)
                .expect("valid"),
        );
        let hits = (0..10_000)
            .filter(|_| faults.decide("kube", "GET", "/x").fault.is_some())
            .count();
        assert!((2_500..3_500).contains(&hits), "{hits}");
    }
}
