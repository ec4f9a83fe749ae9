//! `INFO [section ...]`: Redis' sections with this node's real figures —
//! server, clients, stats, persistence (the write-ahead logs), replication
//! (the partitions' groups), keyspace (the partitions' sizes), cluster.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use net::resp::{Reply, RespSnapshot};

use super::RespShared;
use crate::http::NodeShared;

/// Sections in the order `INFO` / `INFO all` prints them.
pub const SECTIONS: [&str; 7] = ["server", "clients", "stats", "persistence", "replication", "keyspace", "cluster"];

/// `INFO`, `INFO all|default|everything`, or the named sections (any case;
/// unknown ones print nothing, as Redis does).
pub fn info(node: &NodeShared, resp: &RespShared, args: &[bytes::Bytes]) -> Reply {
    let all = args.is_empty() || args.iter().any(|a| [&b"all"[..], b"default", b"everything"].iter().any(|w| a.eq_ignore_ascii_case(w)));
    let wanted: Vec<&str> = SECTIONS.iter().copied().filter(|s| all || args.iter().any(|a| a.eq_ignore_ascii_case(s.as_bytes()))).collect();
    Reply::Verbatim { format: *b"txt", text: Bytes::from(render(node, resp, &wanted)) }
}

/// The text of the `wanted` sections.
pub fn render(node: &NodeShared, resp: &RespShared, wanted: &[&str]) -> String {
    let mut out = String::with_capacity(4096);
    let total = resp.stats.total();
    for (i, section) in wanted.iter().enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        let mut title = section.to_string();
        title[..1].make_ascii_uppercase();
        let _ = write!(out, "# {title}\r\n");
        let mut kv = |k: &str, v: &dyn std::fmt::Display| {
            let _ = write!(out, "{k}:{v}\r\n");
        };
        match *section {
            "server" => server(node, resp, &mut kv),
            "clients" => clients(node, &total, &mut kv),
            "stats" => stats(node, resp, &total, &mut kv),
            "persistence" => persistence(node, &mut kv),
            "replication" => replication(node, &mut kv),
            "keyspace" => keyspace(resp, &mut kv),
            "cluster" => {
                kv("cluster_enabled", &1);
                kv("cluster_mode", &resp.topology.mode());
            }
            _ => {}
        }
    }
    out
}

type Kv<'a> = dyn FnMut(&str, &dyn std::fmt::Display) + 'a;

fn server(node: &NodeShared, resp: &RespShared, kv: &mut Kv) {
    let up = resp.started.elapsed().as_secs();
    kv("redis_version", &"7.2.0");
    kv("maple_version", &env!("CARGO_PKG_VERSION"));
    kv("redis_mode", &resp.topology.mode());
    kv("os", &std::env::consts::OS);
    kv("arch_bits", &(usize::BITS));
    kv("process_id", &std::process::id());
    kv("tcp_port", &resp.addr.port());
    kv("resp_listen", &resp.addr);
    kv("http_listen", &node.cfg.listen);
    kv("uptime_in_seconds", &up);
    kv("uptime_in_days", &(up / 86_400));
    kv("cores", &node.cfg.cores);
    kv("partitions", &node.slots.partitions());
    kv("node_id", &node.cluster.me);
    kv("data_dir", &node.cfg.data_dir.display());
}

fn clients(node: &NodeShared, total: &RespSnapshot, kv: &mut Kv) {
    kv("connected_clients", &total.connections_active);
    kv("maxclients", &(node.cfg.max_connections * node.cfg.cores));
    kv("blocked_clients", &0);
    kv("commands_in_flight", &total.in_flight);
    let http = node.server_stats.as_ref().map(|s| s.total());
    kv("http_connected_clients", &http.map_or(0, |h| h.connections_active));
}

fn stats(node: &NodeShared, resp: &RespShared, t: &RespSnapshot, kv: &mut Kv) {
    let errors = t.err_protocol
        + t.err_unknown_command
        + t.err_arity
        + t.err_noauth
        + t.err_auth_failed
        + t.err_syntax
        + t.err_overloaded
        + t.err_service;
    kv("total_connections_received", &t.connections_accepted);
    kv("total_commands_processed", &t.commands);
    kv("total_net_input_bytes", &t.bytes_read);
    kv("total_net_output_bytes", &t.bytes_written);
    kv("rejected_connections", &t.connections_rejected);
    kv("total_error_replies", &errors);
    kv("unknown_command_errors", &t.err_unknown_command);
    kv("arity_errors", &t.err_arity);
    kv("noauth_errors", &t.err_noauth);
    kv("auth_failures", &t.err_auth_failed);
    kv("protocol_errors", &t.err_protocol);
    kv("overloaded_errors", &t.err_overloaded);
    kv("command_errors", &t.err_service);
    kv("moved_redirects", &resp.moved.load(Ordering::Relaxed));
    kv("tryagain_replies", &resp.tryagain.load(Ordering::Relaxed));
    kv("clients_cut_off_output", &t.cut_off_output);
    kv("timeouts", &(t.timeout_idle + t.timeout_request + t.timeout_write));
    kv("http_requests", &node.server_stats.as_ref().map_or(0, |s| s.total().requests));
}

fn persistence(node: &NodeShared, kv: &mut Kv) {
    let storage = &node.storage;
    let logs: Vec<_> = storage.logs.iter().map(|l| (l, l.log.stats())).collect();
    let fsyncs: u64 = logs.iter().map(|(_, s)| s.fsyncs).sum();
    let appended: u64 = logs.iter().map(|(_, s)| s.appended_entries).sum();
    let ready = storage.groups.iter().filter(|g| g.is_ready()).count();
    kv("loading", &((ready < storage.groups.len()) as u8));
    kv("aof_enabled", &1);
    kv("wal_sync", &node.cfg.wal_sync);
    kv("wal_logs", &logs.len());
    kv("wal_fsyncs", &fsyncs);
    kv("wal_entries_appended", &appended);
    kv("wal_entries_per_fsync", &format!("{:.2}", if fsyncs == 0 { 0.0 } else { appended as f64 / fsyncs as f64 }));
    kv("wal_log_bytes", &logs.iter().map(|(_, s)| s.log_bytes).sum::<u64>());
    kv("wal_segments", &logs.iter().map(|(_, s)| s.segments).sum::<usize>());
    kv("wal_backpressure", &logs.iter().map(|(_, s)| s.backpressure_rejections).sum::<u64>());
    let ages: Vec<f64> = logs.iter().filter_map(|(l, _)| storage.store.checkpoint_stats(l.log_no).age.map(|a| a.as_secs_f64())).collect();
    kv("state_checkpoint_age_seconds", &format!("{:.1}", ages.iter().copied().fold(0.0, f64::max)));
    kv("recovery_replayed_entries", &logs.iter().map(|(l, _)| l.replayed).sum::<u64>());
    kv("recovery_ms", &format!("{:.1}", logs.iter().map(|(l, _)| l.recovered_in.as_secs_f64() * 1e3).fold(0.0, f64::max)));
    kv("recovery_dropped_tail_bytes", &logs.iter().map(|(l, _)| l.recovery.torn_tail.as_ref().map_or(0, |t| t.bytes)).sum::<u64>());
    kv("storage_down", &u8::from(node.storage.down().is_some()));
}

fn replication(node: &NodeShared, kv: &mut Kv) {
    let groups = &node.storage.groups;
    let ready = groups.iter().filter(|g| g.is_ready()).count();
    let leading = groups.iter().filter(|g| g.leader.load(Ordering::Relaxed) == 1).count();
    let offset: u64 = groups.iter().filter_map(|g| g.applied_index()).sum();
    kv("role", &"master");
    kv("connected_slaves", &0);
    kv("master_repl_offset", &offset);
    kv("partitions", &groups.len());
    kv("partitions_leading", &leading);
    kv("partitions_ready", &ready);
    kv("raft_term_max", &groups.iter().map(|g| g.term.load(Ordering::Relaxed)).max().unwrap_or(0));
}

fn keyspace(resp: &RespShared, kv: &mut Kv) {
    let sum = |f: &dyn Fn(&super::PartitionSizes) -> u64| resp.sizes.iter().map(f).sum::<u64>();
    let liked = sum(&|s| s.liked_characters.load(Ordering::Relaxed));
    let expectations = sum(&|s| s.expectations.load(Ordering::Relaxed));
    kv("db0", &format!("keys={},expires={expectations},avg_ttl=0", liked + expectations));
    kv("liked_characters", &liked);
    kv("like_relations", &sum(&|s| s.relations.load(Ordering::Relaxed)));
    kv("stored_expectations", &expectations);
    kv("idempotency_keys", &sum(&|s| s.idempotency_keys.load(Ordering::Relaxed)));
}
