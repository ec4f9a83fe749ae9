//! Periodic jobs of a core, on the partitions it leads (a follower's
//! partitions are its leader's job: one run per partition per period):
//! - eviction of stored expectations older than `--cache-stale-secs` and
//!   beyond the partition's share of `--store-expectations-max`
//!   (`ExpectationEvicted` records);
//! - expiry of idempotency bindings older than `--idempotency-ttl-secs`, or
//!   the oldest when the table is near its bound (`IdempotencyExpired`).
//!
//! Both append records through the group, so every replica forgets the
//! same rows at the same entry.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::groups::{Groups, PartitionId};
use super::likes::now_ms;
use super::sink::Sink;
use crate::partition::{ExpectationEvicted, Record};

/// Evictions one partition proposes per run (the rest wait for the next run).
pub const MAX_EVICTIONS_PER_RUN: usize = 4096;
/// Bindings one expiry record forgets at most.
pub const MAX_EXPIRED_PER_RECORD: usize = 1 << 16;

#[derive(Debug, Clone)]
pub struct JobConfig {
    /// How often each job runs on each partition.
    pub every: Duration,
    pub expectation_stale: Duration,
    /// Stored expectations one partition keeps.
    pub expectations_max: usize,
    pub idempotency_ttl: Duration,
}

/// Start the jobs of this core (inside its runtime); they stop once `stop`
/// is set. Each due run on a partition led here is reported to `sink`, so
/// "once per partition per period across the cluster" can be checked.
pub fn spawn_jobs(groups: Rc<dyn Groups>, partitions: Vec<PartitionId>, cfg: JobConfig, sink: Rc<dyn Sink>, stop: Rc<Cell<bool>>) {
    monoio::spawn(async move {
        let tick = cfg.every.min(Duration::from_secs(1));
        let mut last_run = Instant::now();
        while !stop.get() {
            monoio::time::sleep(tick).await;
            if stop.get() {
                return;
            }
            let due = last_run.elapsed() >= cfg.every;
            if due {
                last_run = Instant::now();
            }
            for &p in &partitions {
                if groups.ready(p).is_err() {
                    continue;
                }
                if due {
                    sink.job_run(p);
                }
                run_partition(&*groups, p, &cfg, due).await;
            }
        }
    });
}

/// One partition's jobs: expiry when due or under pressure, evictions when due.
pub async fn run_partition(groups: &dyn Groups, p: PartitionId, cfg: &JobConfig, due: bool) {
    let Some(machine) = groups.machine(p) else { return };
    let now = now_ms();
    let (expiry, evictions) = {
        let m = machine.borrow();
        let expiry = (due || m.idempotency_pressure())
            .then(|| m.idempotency_expiry(now, cfg.idempotency_ttl.as_millis() as u64, MAX_EXPIRED_PER_RECORD))
            .flatten();
        let evictions = if due {
            m.eviction_candidates(now, cfg.expectation_stale.as_millis() as u64, cfg.expectations_max, MAX_EVICTIONS_PER_RUN)
        } else {
            Vec::new()
        };
        (expiry, evictions)
    };
    let records = expiry
        .into_iter()
        .chain(evictions.into_iter().map(|e| Record::ExpectationEvicted(ExpectationEvicted { key: e.key, written_by: e.written_by })));
    for record in records {
        let bytes = match record.encode() {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(partition = p, error = %e, "periodic job: record not encoded");
                continue;
            }
        };
        if let Err(e) = groups.write(p, bytes).await {
            // The next run asks again.
            tracing::debug!(partition = p, error = %e, "periodic job: write not taken");
            return;
        }
    }
}
