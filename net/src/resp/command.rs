//! Commands: what a service declares ([`CommandSpec`]), one table per core
//! built from it plus the connection commands, and the parsed [`Command`]
//! handed to the service. `COMMAND`, `COMMAND INFO|DOCS|COUNT|LIST` and
//! the arity checks all read this one table.

use super::reply::Reply;
use bytes::Bytes;
use std::collections::HashMap;
use std::ops::BitOr;

/// Command flags. The Redis ones are reported by `COMMAND`; `AUTH` and
/// `CONCURRENT` are ours and steer the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(u32);

impl Flags {
    pub const NONE: Flags = Flags(0);
    /// Redis `write`: may change data.
    pub const WRITE: Flags = Flags(1 << 0);
    /// Redis `readonly`.
    pub const READONLY: Flags = Flags(1 << 1);
    /// Redis `fast`: O(1) or O(log N).
    pub const FAST: Flags = Flags(1 << 2);
    /// Redis `denyoom`.
    pub const DENYOOM: Flags = Flags(1 << 3);
    /// Redis `admin`.
    pub const ADMIN: Flags = Flags(1 << 4);
    /// Redis `no-auth`: allowed before authentication.
    pub const NO_AUTH: Flags = Flags(1 << 5);
    /// Redis `loading` / `stale`: allowed while loading / on a stale replica.
    pub const LOADING: Flags = Flags(1 << 6);
    pub const STALE: Flags = Flags(1 << 7);
    /// Ours: the connection must be authenticated (`AUTH`/`HELLO AUTH`),
    /// otherwise the server answers `-NOAUTH Authentication required.`
    /// without calling the service.
    pub const AUTH: Flags = Flags(1 << 16);
    /// Ours: pipelined neighbours with this flag on one connection may run
    /// at the same time (replies still go out in order). They are started
    /// in order, so a service that fixes their order before its first
    /// `.await` (e.g. by appending to a log) keeps it. Commands without the
    /// flag wait for everything before them and finish before anything
    /// after them starts.
    pub const CONCURRENT: Flags = Flags(1 << 17);

    const REDIS_NAMES: [(Flags, &'static str); 8] = [
        (Flags::WRITE, "write"),
        (Flags::READONLY, "readonly"),
        (Flags::DENYOOM, "denyoom"),
        (Flags::ADMIN, "admin"),
        (Flags::NO_AUTH, "no-auth"),
        (Flags::LOADING, "loading"),
        (Flags::STALE, "stale"),
        (Flags::FAST, "fast"),
    ];

    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn union(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    /// The Redis flag names, as `COMMAND INFO` lists them.
    pub fn redis_names(self) -> impl Iterator<Item = &'static str> {
        Flags::REDIS_NAMES.into_iter().filter(move |(f, _)| self.contains(*f)).map(|(_, n)| n)
    }
}

impl BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        self.union(rhs)
    }
}

/// One command a service offers.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    /// Lower-case name, e.g. `"like.toggle"`; matched case-insensitively.
    pub name: &'static str,
    /// Redis arity: `n > 0` exactly n words (name included), `n < 0` at least `-n`.
    pub arity: i32,
    pub flags: Flags,
    /// Position of the first / last key (0 = no key), step between keys,
    /// as in `COMMAND INFO`. Cluster clients route on this.
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    /// `COMMAND DOCS`: group (`"generic"`, `"connection"`, `"server"`, ...) and a one-line summary.
    pub group: &'static str,
    pub summary: &'static str,
    /// `COMMAND DOCS` argument hint shown by redis-cli, e.g. `"character [IDEMPOTENCY key]"`.
    pub args_hint: &'static str,
}

impl CommandSpec {
    /// A command without keys; set the rest with the builder methods.
    pub const fn new(name: &'static str, arity: i32) -> Self {
        CommandSpec { name, arity, flags: Flags::NONE, first_key: 0, last_key: 0, step: 0, group: "generic", summary: "", args_hint: "" }
    }

    pub const fn flags(mut self, flags: Flags) -> Self {
        self.flags = flags;
        self
    }

    /// One key at argument position `pos` (1 = first argument after the name).
    pub const fn key_at(mut self, pos: i32) -> Self {
        self.first_key = pos;
        self.last_key = pos;
        self.step = 1;
        self
    }

    pub const fn keys(mut self, first: i32, last: i32, step: i32) -> Self {
        self.first_key = first;
        self.last_key = last;
        self.step = step;
        self
    }

    pub const fn doc(mut self, group: &'static str, summary: &'static str, args_hint: &'static str) -> Self {
        self.group = group;
        self.summary = summary;
        self.args_hint = args_hint;
        self
    }

    /// Does `argc` (words including the name) satisfy the arity?
    pub fn arity_ok(&self, argc: usize) -> bool {
        let a = self.arity;
        if a >= 0 {
            argc == a as usize
        } else {
            argc >= a.unsigned_abs() as usize
        }
    }
}

/// A request resolved against the table: the canonical name, the index of
/// the spec in the service's own list, and the raw arguments.
#[derive(Debug, Clone)]
pub struct Command {
    name: &'static str,
    index: usize,
    args: Vec<Bytes>,
}

impl Command {
    pub(crate) fn new(name: &'static str, index: usize, args: Vec<Bytes>) -> Self {
        Command { name, index, args }
    }

    /// Build a command by hand (tests of a service).
    pub fn for_test(name: &'static str, index: usize, args: Vec<Bytes>) -> Self {
        Command { name, index, args }
    }

    /// Canonical lower-case name from the spec (the client may have sent any case).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Index of the spec in the list the service returned from `commands()`.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Arguments after the name.
    pub fn args(&self) -> &[Bytes] {
        &self.args[1..]
    }

    /// Argument `i` after the name (0-based).
    pub fn arg(&self, i: usize) -> Option<&Bytes> {
        self.args.get(i + 1)
    }

    /// Words including the name.
    pub fn argc(&self) -> usize {
        self.args.len()
    }

    /// All words, the name as the client sent it first.
    pub fn into_words(self) -> Vec<Bytes> {
        self.args
    }
}

/// Who handles a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    Connection(ConnCmd),
    Service(usize),
}

/// The commands net answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnCmd {
    Ping,
    Echo,
    Hello,
    Auth,
    Client,
    Select,
    Quit,
    Reset,
    Command,
    Config,
}

/// Connection commands (with their subcommands for `COMMAND`).
pub(crate) fn connection_specs() -> Vec<(ConnCmd, CommandSpec, Vec<CommandSpec>)> {
    let conn = Flags::FAST | Flags::LOADING | Flags::STALE;
    let c = |name, arity, flags, summary, hint| CommandSpec::new(name, arity).flags(flags).doc("connection", summary, hint);
    vec![
        (ConnCmd::Ping, c("ping", -1, conn, "Returns the server's liveliness response.", "[message]"), vec![]),
        (ConnCmd::Echo, c("echo", 2, conn, "Returns the given string.", "message"), vec![]),
        (
            ConnCmd::Hello,
            c(
                "hello",
                -1,
                conn | Flags::NO_AUTH,
                "Handshakes with the server: protocol version, authentication, client name.",
                "[protover [AUTH username token] [SETNAME clientname]]",
            ),
            vec![],
        ),
        (ConnCmd::Auth, c("auth", -2, conn | Flags::NO_AUTH, "Authenticates the connection with a token.", "[username] token"), vec![]),
        (
            ConnCmd::Client,
            c("client", -2, Flags::NONE, "A container for client connection commands.", "subcommand"),
            vec![
                c("client|setname", 3, conn, "Sets the connection name.", "connection-name"),
                c("client|getname", 2, conn, "Returns the name of the connection.", ""),
                c("client|id", 2, conn, "Returns the unique client ID of the connection.", ""),
                c("client|info", 2, conn, "Returns information about the connection.", ""),
                c("client|setinfo", 4, conn, "Sets information specific to the client (LIB-NAME, LIB-VER).", "attr value"),
                c("client|help", 2, conn, "Returns helpful text about the different subcommands.", ""),
            ],
        ),
        (ConnCmd::Select, c("select", 2, conn, "Changes the selected database (only 0 exists).", "index"), vec![]),
        (ConnCmd::Quit, c("quit", -1, conn | Flags::NO_AUTH, "Closes the connection.", ""), vec![]),
        (ConnCmd::Reset, c("reset", 1, conn | Flags::NO_AUTH, "Resets the connection.", ""), vec![]),
        (
            ConnCmd::Command,
            CommandSpec::new("command", -1).flags(Flags::LOADING | Flags::STALE).doc(
                "server",
                "Returns detailed information about all commands.",
                "",
            ),
            vec![
                c("command|count", 2, Flags::LOADING | Flags::STALE, "Returns a count of commands.", ""),
                c(
                    "command|info",
                    -2,
                    Flags::LOADING | Flags::STALE,
                    "Returns information about one, multiple or all commands.",
                    "[command-name ...]",
                ),
                c(
                    "command|docs",
                    -2,
                    Flags::LOADING | Flags::STALE,
                    "Returns documentary information about one, multiple or all commands.",
                    "[command-name ...]",
                ),
                c("command|list", -2, Flags::LOADING | Flags::STALE, "Returns a list of command names.", ""),
                c("command|help", 2, Flags::LOADING | Flags::STALE, "Returns helpful text about the different subcommands.", ""),
            ],
        ),
        (
            ConnCmd::Config,
            CommandSpec::new("config", -2).flags(Flags::LOADING | Flags::STALE).doc(
                "server",
                "A container for server configuration commands.",
                "subcommand",
            ),
            vec![CommandSpec::new("config|get", -3).flags(Flags::LOADING | Flags::STALE).doc(
                "server",
                "Returns the effective values of configuration parameters.",
                "parameter [parameter ...]",
            )],
        ),
    ]
}

struct Entry {
    spec: CommandSpec,
    owner: Owner,
    subcommands: Vec<CommandSpec>,
}

/// Every command of one core: connection commands, then the service's.
pub(crate) struct CommandTable {
    entries: Vec<Entry>,
    by_name: HashMap<Vec<u8>, usize>,
}

/// Longest command name we look up (longer ones are unknown).
const MAX_NAME: usize = 64;

impl CommandTable {
    /// Service commands that collide with a connection command are dropped
    /// with a warning: the connection command wins.
    pub(crate) fn new(service: Vec<CommandSpec>) -> Self {
        let mut entries: Vec<Entry> =
            connection_specs().into_iter().map(|(c, spec, subcommands)| Entry { spec, owner: Owner::Connection(c), subcommands }).collect();
        let mut by_name: HashMap<Vec<u8>, usize> = entries.iter().enumerate().map(|(i, e)| (e.spec.name.as_bytes().to_vec(), i)).collect();
        for (i, spec) in service.into_iter().enumerate() {
            let key = spec.name.to_ascii_lowercase().into_bytes();
            if key.len() > MAX_NAME || by_name.contains_key(&key) {
                tracing::warn!(
                    command = spec.name,
                    "RESP service command ignored: name taken by a connection command, duplicated, or too long"
                );
                continue;
            }
            by_name.insert(key, entries.len());
            entries.push(Entry { spec, owner: Owner::Service(i), subcommands: Vec::new() });
        }
        CommandTable { entries, by_name }
    }

    /// Case-insensitive lookup.
    pub(crate) fn lookup(&self, name: &[u8]) -> Option<(&CommandSpec, Owner)> {
        if name.len() > MAX_NAME {
            return None;
        }
        let mut lower = [0u8; MAX_NAME];
        for (d, s) in lower.iter_mut().zip(name) {
            *d = s.to_ascii_lowercase();
        }
        let i = *self.by_name.get(&lower[..name.len()])?;
        let e = &self.entries[i];
        Some((&e.spec, e.owner))
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn find(&self, name: &[u8]) -> Option<&Entry> {
        if name.len() > MAX_NAME {
            return None;
        }
        self.by_name.get(&name.to_ascii_lowercase()).map(|&i| &self.entries[i])
    }

    /// `COMMAND` / `COMMAND INFO` (no names): every command.
    pub(crate) fn info_all(&self) -> Reply {
        Reply::Array(self.entries.iter().map(entry_info).collect())
    }

    /// `COMMAND INFO name...`: null for unknown names.
    pub(crate) fn info(&self, names: &[Bytes]) -> Reply {
        Reply::Array(names.iter().map(|n| self.find(n).map(entry_info).unwrap_or(Reply::NullArray)).collect())
    }

    /// `COMMAND DOCS [name...]`: a map name → docs; unknown names are left out.
    pub(crate) fn docs(&self, names: &[Bytes]) -> Reply {
        let picked: Vec<&Entry> =
            if names.is_empty() { self.entries.iter().collect() } else { names.iter().filter_map(|n| self.find(n)).collect() };
        Reply::Map(picked.into_iter().map(|e| (Reply::bulk_str(e.spec.name), entry_docs(e))).collect())
    }

    /// `COMMAND LIST`
    pub(crate) fn names(&self) -> Reply {
        Reply::Array(self.entries.iter().map(|e| Reply::bulk_str(e.spec.name)).collect())
    }
}

fn spec_info(spec: &CommandSpec, subcommands: &[CommandSpec]) -> Reply {
    let category = match spec.group {
        "connection" => "@connection",
        "server" => "@admin",
        _ if spec.flags.contains(Flags::WRITE) => "@write",
        _ => "@read",
    };
    let mut cats = vec![Reply::simple(category)];
    if spec.flags.contains(Flags::FAST) {
        cats.push(Reply::simple("@fast"));
    }
    Reply::Array(vec![
        Reply::bulk_str(spec.name),
        Reply::Int(spec.arity as i64),
        Reply::Set(spec.flags.redis_names().map(Reply::simple).collect()),
        Reply::Int(spec.first_key as i64),
        Reply::Int(spec.last_key as i64),
        Reply::Int(spec.step as i64),
        Reply::Set(cats),
        Reply::Set(vec![]),
        Reply::Array(vec![]),
        Reply::Array(subcommands.iter().map(|s| spec_info(s, &[])).collect()),
    ])
}

fn entry_info(e: &Entry) -> Reply {
    spec_info(&e.spec, &e.subcommands)
}

fn spec_docs(spec: &CommandSpec) -> Vec<(Reply, Reply)> {
    let mut doc = vec![
        (Reply::bulk_str("summary"), Reply::bulk_str(spec.summary)),
        (Reply::bulk_str("since"), Reply::bulk_str("1.0.0")),
        (Reply::bulk_str("group"), Reply::bulk_str(spec.group)),
    ];
    if !spec.args_hint.is_empty() {
        // One pure-token argument carrying the whole hint: redis-cli shows it as typed.
        doc.push((
            Reply::bulk_str("arguments"),
            Reply::Array(vec![Reply::map([
                ("name", Reply::bulk_str("args")),
                ("type", Reply::bulk_str("pure-token")),
                ("token", Reply::bulk_str(spec.args_hint)),
            ])]),
        ));
    }
    doc
}

fn entry_docs(e: &Entry) -> Reply {
    let mut doc = spec_docs(&e.spec);
    if !e.subcommands.is_empty() {
        doc.push((
            Reply::bulk_str("subcommands"),
            Reply::Map(e.subcommands.iter().map(|s| (Reply::bulk_str(s.name), Reply::Map(spec_docs(s)))).collect()),
        ));
    }
    Reply::Map(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_case_insensitive_and_service_cannot_shadow() {
        let t = CommandTable::new(vec![
            CommandSpec::new("like.toggle", -2).key_at(1).flags(Flags::WRITE | Flags::AUTH),
            CommandSpec::new("ping", 1),
        ]);
        assert!(matches!(t.lookup(b"LIKE.Toggle"), Some((_, Owner::Service(0)))));
        assert!(matches!(t.lookup(b"PING"), Some((_, Owner::Connection(ConnCmd::Ping)))));
        assert!(t.lookup(b"nope").is_none());
        assert!(t.lookup(&[b'a'; 200]).is_none());
        assert_eq!(t.len(), connection_specs().len() + 1);
    }

    #[test]
    fn arity() {
        assert!(CommandSpec::new("x", 2).arity_ok(2));
        assert!(!CommandSpec::new("x", 2).arity_ok(3));
        assert!(CommandSpec::new("x", -2).arity_ok(5));
        assert!(!CommandSpec::new("x", -2).arity_ok(1));
    }

    #[test]
    fn info_shape() {
        let t = CommandTable::new(vec![CommandSpec::new("like.toggle", -2).key_at(1).flags(Flags::WRITE | Flags::AUTH | Flags::FAST)]);
        let Reply::Array(v) = t.info(&[Bytes::from_static(b"LIKE.TOGGLE"), Bytes::from_static(b"zzz")]) else { panic!() };
        assert_eq!(v[1], Reply::NullArray);
        let Reply::Array(info) = &v[0] else { panic!() };
        assert_eq!(info.len(), 10);
        assert_eq!(info[1], Reply::Int(-2));
        assert_eq!(info[2], Reply::Set(vec![Reply::simple("write"), Reply::simple("fast")]));
        assert_eq!(&info[3..6], &[Reply::Int(1), Reply::Int(1), Reply::Int(1)]);
    }
}
