//! The upstream simulator: the three Nexon Open API paths the node uses,
//! served from the real fixtures (and deterministic variants), with optional
//! injected latency and failures, and call counters (`GET /sim/stats`).
//! Name prefixes select bad answers: [`MISSING_PREFIX`] (no such character),
//! [`MALFORMED_PREFIX`] (200 with truncated JSON), [`HOLLOW_PREFIX`] (200 with
//! a JSON object lacking the needed fields).
//!
//! Used two ways: `maple upstream-sim` serves it over HTTP, and `maple serve`
//! without a Nexon key calls it in-process (same code, same counters).

pub mod fixtures;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
pub use fixtures::{name_for_ocid, ocid_for, Fixtures};

/// Names starting with this prefix do not exist upstream (Nexon answers 400
/// OPENAPI00004 for an unknown name): lets tests reach the 404 path.
pub const MISSING_PREFIX: &str = "missing";

/// Names starting with this prefix exist, but upstream answers 200 with
/// malformed JSON (a truncated document) for their basic info and equipment:
/// lets tests reach the `UPSTREAM_BAD_*` paths.
pub const MALFORMED_PREFIX: &str = "malformed";

/// Names starting with this prefix exist, but upstream answers 200 with a
/// well-formed JSON object that lacks what the node needs: equipment without
/// any equipment list, basic info without the character fields.
pub const HOLLOW_PREFIX: &str = "hollow";

/// Longest character name the simulator accepts (Nexon's own limit is lower).
const MAX_NAME_BYTES: usize = 128;

#[derive(Debug, Default)]
pub struct SimStats {
    pub id_calls: AtomicU64,
    pub basic_calls: AtomicU64,
    pub equipment_calls: AtomicU64,
    pub injected_failures: AtomicU64,
}

impl SimStats {
    pub fn to_json(&self) -> String {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "{{\"id\":{},\"basic\":{},\"equipment\":{},\"failures\":{},\"total\":{}}}",
            l(&self.id_calls),
            l(&self.basic_calls),
            l(&self.equipment_calls),
            l(&self.injected_failures),
            l(&self.id_calls) + l(&self.basic_calls) + l(&self.equipment_calls)
        )
    }
}

pub struct Simulator {
    fixtures: Fixtures,
    pub stats: SimStats,
    /// Both adjustable at run time (`/sim/config`), hence atomics.
    latency_ms: AtomicU64,
    failure_rate_bits: AtomicU64,
    calls: AtomicU64,
}

/// A simulator answer: status and JSON body.
pub struct SimReply {
    pub status: u16,
    pub body: Bytes,
}

impl SimReply {
    fn json(status: u16, body: impl Into<Bytes>) -> SimReply {
        SimReply { status, body: body.into() }
    }

    fn nexon_error(status: u16, code: &str, message: &str) -> SimReply {
        let body = serde_json::json!({ "error": { "name": code, "message": message } });
        SimReply::json(status, serde_json::to_vec(&body).expect("json value serialises"))
    }
}

impl Simulator {
    /// A simulator over `fixtures` (see [`Fixtures::open`]).
    pub fn new(fixtures: Fixtures, latency: Duration, failure_rate: f64) -> anyhow::Result<Arc<Simulator>> {
        anyhow::ensure!((0.0..=1.0).contains(&failure_rate), "failure rate must be in 0..=1, got {failure_rate}");
        Ok(Arc::new(Simulator {
            fixtures,
            stats: SimStats::default(),
            latency_ms: AtomicU64::new(latency.as_millis().min(60_000) as u64),
            failure_rate_bits: AtomicU64::new(failure_rate.to_bits()),
            calls: AtomicU64::new(0),
        }))
    }

    /// Serves one request (after the injected latency). `path` excludes the
    /// query; `query` is the raw query string.
    pub async fn call(&self, path: &str, query: &str) -> SimReply {
        if let Some(reply) = self.control(path, query) {
            return reply;
        }
        let latency = self.latency_ms.load(Ordering::Relaxed);
        if latency > 0 {
            monoio::time::sleep(Duration::from_millis(latency)).await;
        }
        self.respond(path, query)
    }

    fn failure_rate(&self) -> f64 {
        f64::from_bits(self.failure_rate_bits.load(Ordering::Relaxed))
    }

    /// `/sim/stats` (call counters) and `/sim/config[?failure_rate=&latency_ms=]`
    /// (read or change the injected failures and latency at run time).
    pub fn control(&self, path: &str, query: &str) -> Option<SimReply> {
        match path {
            "/sim/stats" => Some(SimReply::json(200, self.stats.to_json())),
            "/sim/config" => {
                if let Some(r) = query_param(query, "failure_rate") {
                    match r.parse::<f64>() {
                        Ok(r) if (0.0..=1.0).contains(&r) => self.failure_rate_bits.store(r.to_bits(), Ordering::Relaxed),
                        _ => return Some(SimReply::nexon_error(400, "OPENAPI00004", "failure_rate must be in 0..=1")),
                    }
                }
                if let Some(l) = query_param(query, "latency_ms") {
                    match l.parse::<u64>() {
                        Ok(l) if l <= 60_000 => self.latency_ms.store(l, Ordering::Relaxed),
                        _ => return Some(SimReply::nexon_error(400, "OPENAPI00004", "latency_ms must be in 0..=60000")),
                    }
                }
                let body =
                    format!("{{\"failure_rate\":{},\"latency_ms\":{}}}", self.failure_rate(), self.latency_ms.load(Ordering::Relaxed));
                Some(SimReply::json(200, body))
            }
            _ => None,
        }
    }

    /// Exact share of failures: call k fails iff ⌊(k+1)·r⌋ > ⌊k·r⌋, so a
    /// rate of 0.25 fails every 4th call and 1.0 fails every call.
    fn inject_failure(&self) -> bool {
        let rate = self.failure_rate();
        if rate <= 0.0 {
            return false;
        }
        let k = self.calls.fetch_add(1, Ordering::Relaxed) as f64;
        ((k + 1.0) * rate).floor() > (k * rate).floor()
    }

    /// The request logic without latency (sync, for tests and the in-process path).
    pub fn respond(&self, path: &str, query: &str) -> SimReply {
        let counter = match path {
            "/maplestory/v1/id" => &self.stats.id_calls,
            "/maplestory/v1/character/basic" => &self.stats.basic_calls,
            "/maplestory/v1/character/item-equipment" => &self.stats.equipment_calls,
            _ => return SimReply::nexon_error(404, "OPENAPI00003", "Please input valid id"),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if self.inject_failure() {
            self.stats.injected_failures.fetch_add(1, Ordering::Relaxed);
            return SimReply::nexon_error(503, "OPENAPI00001", "Server error (injected by maple upstream-sim)");
        }
        if path == "/maplestory/v1/id" {
            let Some(raw) = query_param(query, "character_name") else {
                return SimReply::nexon_error(400, "OPENAPI00004", "Please input valid parameter");
            };
            let name = match replication::normalize_name(&raw) {
                Ok(n) if n.len() <= MAX_NAME_BYTES && !n.starts_with(MISSING_PREFIX) => n,
                _ => return SimReply::nexon_error(400, "OPENAPI00004", "Please input valid parameter"),
            };
            return SimReply::json(200, format!("{{\"ocid\":\"{}\"}}", ocid_for(&name)));
        }
        let Some(name) = query_param(query, "ocid").and_then(|o| name_for_ocid(&o)) else {
            return SimReply::nexon_error(400, "OPENAPI00004", "Please input valid parameter");
        };
        let basic = path == "/maplestory/v1/character/basic";
        let body = if name.starts_with(HOLLOW_PREFIX) {
            let doc =
                if basic { serde_json::json!({ "date": null }) } else { serde_json::json!({ "date": null, "character_class": "아델" }) };
            serde_json::to_vec(&doc).expect("json value serialises")
        } else if basic {
            serde_json::to_vec(&self.fixtures.basic(&name, &name)).expect("json value serialises")
        } else {
            self.fixtures.equipment_json(&name)
        };
        if name.starts_with(MALFORMED_PREFIX) {
            // Cut mid-document: not JSON at all.
            return SimReply::json(200, body[..body.len() / 2].to_vec());
        }
        SimReply::json(200, body)
    }
}

/// The fixture directory of the tests: the repository's `fixtures/maple`,
/// or `$MAPLE_SHARED_DATA` (same layout) when set.
#[cfg(test)]
pub fn test_dir() -> std::path::PathBuf {
    match std::env::var_os("MAPLE_SHARED_DATA") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/maple"),
    }
}

/// First value of `key` in a query string, percent- and '+'-decoded.
pub fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k != key {
            return None;
        }
        let v = v.replace('+', " ");
        percent_encoding::percent_decode_str(&v).decode_utf8().ok().map(|c| c.into_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim(rate: f64) -> Arc<Simulator> {
        Simulator::new(Fixtures::load(&test_dir()).unwrap(), Duration::ZERO, rate).unwrap()
    }

    #[test]
    fn the_three_paths_answer_like_nexon() {
        let s = sim(0.0);
        let r = s.respond("/maplestory/v1/id", "character_name=%EC%95%84%EB%8D%B8");
        assert_eq!(r.status, 200);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let ocid = v["ocid"].as_str().unwrap().to_owned();
        let basic = s.respond("/maplestory/v1/character/basic", &format!("ocid={ocid}"));
        let basic: serde_json::Value = serde_json::from_slice(&basic.body).unwrap();
        assert_eq!(basic["character_name"], "아델");
        let eq = s.respond("/maplestory/v1/character/item-equipment", &format!("ocid={ocid}"));
        assert_eq!(eq.status, 200);
        assert!(eq.body.len() > 100_000, "a whole equipment document");
        let stats: serde_json::Value = serde_json::from_str(&s.stats.to_json()).unwrap();
        assert_eq!(stats["total"], 3);
    }

    #[test]
    fn unknown_names_and_bad_ocids_are_nexon_400s() {
        let s = sim(0.0);
        assert_eq!(s.respond("/maplestory/v1/id", "character_name=missing-one").status, 400);
        assert_eq!(s.respond("/maplestory/v1/id", "").status, 400);
        assert_eq!(s.respond("/maplestory/v1/character/item-equipment", "ocid=zzz").status, 400);
        assert_eq!(s.respond("/nope", "").status, 404);
    }

    #[test]
    fn malformed_and_hollow_names_get_unusable_200s() {
        let s = sim(0.0);
        for (name, json_ok) in [("malformed-1", false), ("hollow-1", true)] {
            let id = s.respond("/maplestory/v1/id", &format!("character_name={name}"));
            assert_eq!(id.status, 200, "{name} exists");
            let ocid = serde_json::from_slice::<serde_json::Value>(&id.body).unwrap()["ocid"].as_str().unwrap().to_owned();
            for path in ["/maplestory/v1/character/basic", "/maplestory/v1/character/item-equipment"] {
                let r = s.respond(path, &format!("ocid={ocid}"));
                assert_eq!(r.status, 200, "{name} {path}");
                let parsed = serde_json::from_slice::<serde_json::Value>(&r.body);
                assert_eq!(parsed.is_ok(), json_ok, "{name} {path}");
                if let Ok(v) = parsed {
                    assert!(v.get("character_name").is_none() && v.get("item_equipment_preset_1").is_none(), "{name} {path}");
                }
            }
        }
    }

    #[test]
    fn failure_rate_is_exact() {
        let s = sim(0.25);
        let failed = (0..100).filter(|_| s.respond("/maplestory/v1/id", "character_name=a").status == 503).count();
        assert_eq!(failed, 25);
        let all = sim(1.0);
        assert!((0..10).all(|_| all.respond("/maplestory/v1/id", "character_name=a").status == 503));
    }

    #[test]
    fn config_changes_failure_rate_at_run_time() {
        let s = sim(0.0);
        assert_eq!(s.respond("/maplestory/v1/id", "character_name=a").status, 200);
        assert_eq!(s.control("/sim/config", "failure_rate=1").unwrap().status, 200);
        assert_eq!(s.respond("/maplestory/v1/id", "character_name=a").status, 503);
        assert_eq!(s.control("/sim/config", "failure_rate=2").unwrap().status, 400);
        assert!(s.control("/maplestory/v1/id", "").is_none());
    }

    #[test]
    fn query_params_are_decoded() {
        assert_eq!(query_param("a=1&character_name=%EA%B0%95+x", "character_name").as_deref(), Some("강 x"));
        assert_eq!(query_param("a=1", "b"), None);
        assert_eq!(query_param("b=%FF", "b"), None);
    }
}
