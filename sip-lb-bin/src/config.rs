//! Configuration: the TOML file model (serde), validation with errors that name the file,
//! line and field, and the conversion into what the runtime and the proxy need.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sip_core::Transport;
use sip_dispatch::{Algorithm, DestinationList, DestinationSpec, HealthConfig, ProbeMode};
use toml::de::{DeTable, DeValue};

/// A listener: transport and socket address (`udp:127.0.0.1:5060`, `tls:[::1]:5061`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listen {
    /// Transport.
    pub transport: Transport,
    /// Address.
    pub addr: SocketAddr,
}

/// A `--listen` / `proxy.listen` value that is not `transport:address:port`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ListenError {
    /// No `transport:` prefix.
    #[error("`{0}` is not transport:address (e.g. udp:127.0.0.1:5060)")]
    Shape(String),
    /// A transport other than udp, tcp, tls, ws, wss.
    #[error("unknown transport `{0}` (udp, tcp, tls, ws, wss)")]
    Transport(String),
    /// Not an IP address and port.
    #[error("`{0}` is not an address:port (IPv6 as [::1]:5060)")]
    Address(String),
}

impl FromStr for Listen {
    type Err = ListenError;
    fn from_str(s: &str) -> Result<Listen, ListenError> {
        let (t, a) = s
            .split_once(':')
            .ok_or_else(|| ListenError::Shape(s.to_string()))?;
        let transport = match t.to_ascii_lowercase().as_str() {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            "tls" => Transport::Tls,
            "ws" => Transport::Ws,
            "wss" => Transport::Wss,
            _ => return Err(ListenError::Transport(t.to_string())),
        };
        let addr = a
            .parse::<SocketAddr>()
            .map_err(|_| ListenError::Address(a.to_string()))?;
        Ok(Listen { transport, addr })
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport.uri_param(), self.addr)
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Listen {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An algorithm as written in the configuration (number or name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlgorithmSetting(pub Algorithm);

impl<'de> Deserialize<'de> for AlgorithmSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum NumOrName {
            Num(u32),
            Name(String),
        }
        let s = match NumOrName::deserialize(d)? {
            NumOrName::Num(n) => n.to_string(),
            NumOrName::Name(s) => s,
        };
        s.parse::<Algorithm>()
            .map(AlgorithmSetting)
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for AlgorithmSetting {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.name())
    }
}

/// Forwarding mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModeSetting {
    /// Transaction-stateful.
    #[default]
    Stateful,
    /// Stateless.
    Stateless,
}

/// `[proxy]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxySection {
    /// Listeners.
    pub listen: Vec<Listen>,
    /// Stateful or stateless.
    pub mode: ModeSetting,
    /// Worker threads (0 = one per core).
    pub workers: usize,
    /// Host to write in Via and Record-Route instead of the listen address.
    pub advertise: Option<String>,
    /// Other names of this proxy (in Route and Request-URI).
    pub aliases: Vec<String>,
    /// Secret of the Record-Route cookie (shared by every instance): `hex:` followed by hex
    /// digits, `base64:` followed by standard base64, or any other text taken as its UTF-8
    /// bytes. Random at each start when absent (see [`Config::cookie_key`]).
    pub cookie_key: Option<String>,
    /// Option tags accepted in Proxy-Require.
    pub supported: Vec<String>,
    /// Receive coalescing in microseconds (0 = off).
    pub linger_us: u64,
    /// Seconds open transactions may take to finish at shutdown.
    pub drain_s: u64,
}

impl Default for ProxySection {
    fn default() -> Self {
        ProxySection {
            listen: vec!["udp:127.0.0.1:5060".parse().expect("valid default")],
            mode: ModeSetting::Stateful,
            workers: 0,
            advertise: None,
            aliases: Vec::new(),
            cookie_key: None,
            supported: Vec::new(),
            linger_us: 0,
            drain_s: 5,
        }
    }
}

/// `[tls]`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// PEM certificate chain for TLS/WSS listeners.
    pub cert: Option<PathBuf>,
    /// PEM private key.
    pub key: Option<PathBuf>,
    /// PEM CA certificates trusted for outbound TLS.
    pub ca: Option<PathBuf>,
}

/// `[dispatcher]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DispatcherSection {
    /// A Kamailio `dispatcher.list` file (relative to the configuration file).
    pub list: Option<PathBuf>,
    /// Destinations written inline.
    pub destinations: Vec<DestinationSpec>,
    /// The set balanced over.
    pub set: u32,
    /// The algorithm.
    pub algorithm: AlgorithmSetting,
}

impl Default for DispatcherSection {
    fn default() -> Self {
        DispatcherSection {
            list: None,
            destinations: Vec::new(),
            set: 1,
            algorithm: AlgorithmSetting(Algorithm::RoundRobin),
        }
    }
}

/// `[probing]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbingSection {
    /// Probe at all.
    pub enabled: bool,
    /// Seconds between rounds.
    pub interval_s: f64,
    /// The request method of probes (Kamailio `ds_ping_method`).
    pub method: String,
    /// Which destinations.
    pub mode: ProbeMode,
    /// From URI of probes.
    pub from: String,
    /// Reply codes besides 2xx that mean alive.
    pub alive_codes: Vec<u16>,
    /// Seconds a probe may go unanswered.
    pub timeout_s: f64,
    /// Failures before inactive.
    pub inactive_threshold: u32,
    /// Successes before active again.
    pub active_threshold: u32,
}

impl Default for ProbingSection {
    fn default() -> Self {
        ProbingSection {
            enabled: true,
            interval_s: 5.0,
            method: "OPTIONS".into(),
            mode: ProbeMode::All,
            from: "sip:sip-lb@localhost".into(),
            alive_codes: Vec::new(),
            timeout_s: 2.0,
            inactive_threshold: 2,
            active_threshold: 1,
        }
    }
}

/// `[timers]` (milliseconds unless named otherwise).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimersSection {
    /// T1.
    pub t1_ms: u64,
    /// T2.
    pub t2_ms: u64,
    /// T4.
    pub t4_ms: u64,
    /// No response at all → failover (Kamailio fr_timer).
    pub no_response_ms: u64,
    /// No final response after a provisional (Kamailio fr_inv_timer).
    pub no_final_invite_ms: u64,
    /// Linger after the final response (Kamailio wait_timer).
    pub wait_ms: u64,
    /// Dialog timeout in seconds.
    pub dialog_s: u64,
}

impl Default for TimersSection {
    fn default() -> Self {
        let t = sip_proxy::Timers::default();
        TimersSection {
            t1_ms: t.t1.as_millis() as u64,
            t2_ms: t.t2.as_millis() as u64,
            t4_ms: t.t4.as_millis() as u64,
            no_response_ms: t.no_response.as_millis() as u64,
            no_final_invite_ms: t.no_final_invite.as_millis() as u64,
            wait_ms: t.wait.as_millis() as u64,
            dialog_s: t.dialog.as_secs(),
        }
    }
}

/// `[failover]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FailoverSection {
    /// Codes that fail over.
    pub codes: Vec<u16>,
    /// Classes that fail over (5 = every 5xx).
    pub classes: Vec<u8>,
    /// Destinations tried per request.
    pub max_attempts: usize,
    /// Retry-After of our own 503.
    pub retry_after_s: u32,
}

impl Default for FailoverSection {
    fn default() -> Self {
        let f = sip_proxy::Failover::default();
        FailoverSection {
            codes: f.codes,
            classes: f.classes,
            max_attempts: f.max_attempts,
            retry_after_s: f.retry_after,
        }
    }
}

/// `[queue]` (autonomous-queue algorithm).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueSection {
    /// INVITEs held per worker.
    pub capacity: usize,
    /// Milliseconds an INVITE may wait.
    pub deadline_ms: u64,
}

impl Default for QueueSection {
    fn default() -> Self {
        let q = sip_proxy::QueueConfig::default();
        QueueSection {
            capacity: q.capacity,
            deadline_ms: q.deadline.as_millis() as u64,
        }
    }
}

/// `[limits]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Largest message (bytes); larger → 513.
    pub max_message_size: u32,
    /// Header fields per message.
    pub max_headers: u32,
    /// Inbound stream connections.
    pub max_connections: usize,
    /// Inbound stream connections per IP.
    pub max_connections_per_ip: usize,
}

impl Default for LimitsSection {
    fn default() -> Self {
        let l = sip_core::Limits::default();
        LimitsSection {
            max_message_size: l.max_message_size,
            max_headers: l.max_headers,
            max_connections: 10_000,
            max_connections_per_ip: 64,
        }
    }
}

/// `[admin]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    /// Listen address (`none` or absent to disable is written as enabled = false).
    pub listen: SocketAddr,
    /// Serve the admin interface.
    pub enabled: bool,
    /// Bearer token required by the API (none: open, bind to loopback).
    pub token: Option<String>,
}

impl Default for AdminSection {
    fn default() -> Self {
        AdminSection {
            listen: "127.0.0.1:9060".parse().expect("valid default"),
            enabled: true,
            token: None,
        }
    }
}

/// Log format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// Format.
    pub format: LogFormat,
    /// Level or filter (`info`, `sip_lb=debug`).
    pub level: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// The whole configuration.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[proxy]`.
    pub proxy: ProxySection,
    /// `[tls]`.
    pub tls: TlsSection,
    /// `[dispatcher]`.
    pub dispatcher: DispatcherSection,
    /// `[probing]`.
    pub probing: ProbingSection,
    /// `[timers]`.
    pub timers: TimersSection,
    /// `[failover]`.
    pub failover: FailoverSection,
    /// `[queue]`.
    pub queue: QueueSection,
    /// `[limits]`.
    pub limits: LimitsSection,
    /// `[admin]`.
    pub admin: AdminSection,
    /// `[log]`.
    pub log: LogSection,
    /// Where the configuration came from (for relative paths and errors).
    #[serde(skip)]
    pub origin: Option<PathBuf>,
}

/// A configuration error, naming the file, line and field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{file}: {source}")]
    Read {
        /// File.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// A syntax or value error at a place in the file.
    #[error("{file}:{line}: {field}: {message}")]
    At {
        /// File.
        file: String,
        /// Line (1-based).
        line: usize,
        /// The key path (`proxy.listen`).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The destination list is wrong.
    #[error("{file}:{line}: {field}: {message}")]
    List {
        /// The list file.
        file: String,
        /// Line.
        line: usize,
        /// Field.
        field: String,
        /// Why.
        message: String,
    },
    /// A whole-configuration problem.
    #[error("{file}: {field}: {message}")]
    Invalid {
        /// File (or `command line`).
        file: String,
        /// Field.
        field: String,
        /// Why.
        message: String,
    },
}

/// Decodes a Record-Route cookie secret: `hex:…`, `base64:…` or plain text (its bytes).
pub fn decode_cookie_key(k: &str) -> Result<Vec<u8>, String> {
    let bytes = if let Some(h) = k.strip_prefix("hex:") {
        if h.len() % 2 != 0 {
            return Err("hex: needs an even number of hex digits".into());
        }
        (0..h.len())
            .step_by(2)
            .map(|i| {
                h.get(i..i + 2)
                    .and_then(|d| u8::from_str_radix(d, 16).ok())
                    .ok_or_else(|| format!("`{h}` is not hex"))
            })
            .collect::<Result<Vec<u8>, String>>()?
    } else if let Some(b) = k.strip_prefix("base64:") {
        decode_base64(b).ok_or_else(|| format!("`{b}` is not standard base64"))?
    } else {
        k.as_bytes().to_vec()
    };
    if bytes.is_empty() {
        return Err("the secret is empty".into());
    }
    Ok(bytes)
}

/// Standard (RFC 4648 §4) base64 with optional `=` padding; `None` when malformed.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // A lone trailing sextet cannot encode a byte; leftover bits must be zero.
    (bits < 6 && acc == 0).then_some(out)
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The dotted key path (`failover.codes[1]`, `proxy.moed`) of the deepest key or value of
/// the document whose span contains `offset`, for naming the field of a deserialisation
/// error (toml reports the span, not the path).
fn path_at(text: &str, offset: usize) -> Option<String> {
    // Table spans of `[section]` headers cover the header only, so every branch is
    // searched, not just those whose span contains the offset.
    fn walk(v: &DeValue<'_>, offset: usize, path: &mut String) -> bool {
        let len = path.len();
        match v {
            DeValue::Table(t) => {
                for (k, v) in t.iter() {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(k.get_ref());
                    if walk(v.get_ref(), offset, path)
                        || k.span().contains(&offset)
                        || v.span().contains(&offset)
                    {
                        return true;
                    }
                    path.truncate(len);
                }
            }
            DeValue::Array(a) => {
                for (i, e) in a.iter().enumerate() {
                    path.push_str(&format!("[{i}]"));
                    if walk(e.get_ref(), offset, path) || e.span().contains(&offset) {
                        return true;
                    }
                    path.truncate(len);
                }
            }
            _ => {}
        }
        false
    }
    let doc = DeTable::parse(text).ok()?;
    let mut path = String::new();
    walk(&DeValue::Table(doc.into_inner()), offset, &mut path).then_some(path)
}

/// The line where the field at the dotted path `path` (`failover.codes[1]`,
/// `dispatcher.destinations[0].uri`) is written, for validation errors found after
/// deserialisation. Falls back to the closest written parent (a default value has no line
/// of its own), then to line 1.
fn line_of_path(text: &str, path: &str) -> usize {
    let Ok(doc) = DeTable::parse(text) else {
        return 1;
    };
    let mut segments = Vec::new();
    for part in path.split('.') {
        let (name, rest) = part.split_once('[').unwrap_or((part, ""));
        segments.push(Err(name.to_string()));
        for idx in rest.split('[') {
            if let Ok(i) = idx.trim_end_matches(']').parse::<usize>() {
                segments.push(Ok(i));
            }
        }
    }
    let mut best = None;
    let root = DeValue::Table(doc.into_inner());
    let mut cur = &root;
    for seg in &segments {
        let next = match (seg, cur) {
            (Err(name), DeValue::Table(t)) => t
                .iter()
                .find(|(k, _)| k.get_ref().as_ref() == name.as_str())
                .map(|(k, v)| (k.span(), v)),
            (Ok(i), DeValue::Array(a)) => a.get(*i).map(|v| (v.span(), v)),
            _ => None,
        };
        let Some((span, v)) = next else { break };
        best = Some(span.start);
        cur = v.get_ref();
    }
    best.map_or(1, |o| line_of(text, o))
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        let mut cfg = Config::parse(&text, &file)?;
        cfg.origin = Some(path.to_path_buf());
        cfg.validate().map_err(|(field, message)| ConfigError::At {
            line: line_of_path(&text, &field),
            file: file.clone(),
            field,
            message,
        })?;
        cfg.destination_list().map_err(|e| match e {
            ConfigError::Invalid {
                file,
                field,
                message,
            } => ConfigError::At {
                line: line_of_path(&text, &field),
                file,
                field,
                message,
            },
            e => e,
        })?;
        Ok(cfg)
    }

    /// Parses TOML text (no validation beyond types). Errors name `file`, the line and the
    /// dotted field path.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        toml::from_str::<Config>(text).map_err(|e| {
            let offset = e.span().map(|s| s.start);
            ConfigError::At {
                file: file.to_string(),
                line: offset.map_or(1, |o| line_of(text, o)),
                field: offset.and_then(|o| path_at(text, o)).unwrap_or_else(|| {
                    if DeTable::parse(text).is_err() {
                        "(syntax)".into()
                    } else {
                        "(document)".into()
                    }
                }),
                message: e.message().trim_end().to_string(),
            }
        })
    }

    /// Checks values that types alone do not.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |f: &str, m: String| Err((f.to_string(), m));
        if self.proxy.listen.is_empty() {
            return bad("proxy.listen", "at least one listener is needed".into());
        }
        if !self
            .proxy
            .listen
            .iter()
            .any(|l| l.transport == Transport::Udp)
        {
            return bad(
                "proxy.listen",
                "at least one udp: listener is needed (destinations are reached over UDP)".into(),
            );
        }
        let needs_tls = self
            .proxy
            .listen
            .iter()
            .any(|l| matches!(l.transport, Transport::Tls | Transport::Wss));
        if needs_tls && (self.tls.cert.is_none() || self.tls.key.is_none()) {
            return bad(
                "tls.cert",
                "tls: and wss: listeners need tls.cert and tls.key".into(),
            );
        }
        if self.dispatcher.list.is_some() && !self.dispatcher.destinations.is_empty() {
            return bad(
                "dispatcher.list",
                "give either a list file or inline destinations, not both".into(),
            );
        }
        if self.probing.interval_s <= 0.0 || self.probing.timeout_s <= 0.0 {
            return bad("probing.interval_s", "must be positive".into());
        }
        if self.timers.t1_ms == 0 || self.timers.t2_ms < self.timers.t1_ms {
            return bad("timers.t1_ms", "T1 must be positive and at most T2".into());
        }
        if self.failover.max_attempts == 0 {
            return bad("failover.max_attempts", "must be at least 1".into());
        }
        if self.limits.max_message_size < 1024 {
            return bad("limits.max_message_size", "must be at least 1024".into());
        }
        if let Some(k) = &self.proxy.cookie_key {
            decode_cookie_key(k).map_err(|m| ("proxy.cookie_key".to_string(), m))?;
        }
        let m = &self.probing.method;
        if m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()) || m == "ACK" || m == "CANCEL"
        {
            return bad(
                "probing.method",
                format!("`{m}` is not a method a probe can use (OPTIONS, INFO, ...)"),
            );
        }
        for (i, c) in self.probing.alive_codes.iter().enumerate() {
            if !(100..700).contains(c) {
                return bad(
                    &format!("probing.alive_codes[{i}]"),
                    format!("{c} is not a SIP status code"),
                );
            }
        }
        for (i, c) in self.failover.codes.iter().enumerate() {
            if !(300..700).contains(c) {
                return bad(
                    &format!("failover.codes[{i}]"),
                    format!("{c} is not a final error code"),
                );
            }
        }
        Ok(())
    }

    fn relative(&self, p: &Path) -> PathBuf {
        match (&self.origin, p.is_relative()) {
            (Some(o), true) => o.parent().unwrap_or(Path::new(".")).join(p),
            _ => p.to_path_buf(),
        }
    }

    /// The path of the list file, when one is used.
    pub fn list_path(&self) -> Option<PathBuf> {
        self.dispatcher.list.as_ref().map(|p| self.relative(p))
    }

    /// The destinations: from the list file or inline.
    pub fn destination_list(&self) -> Result<DestinationList, ConfigError> {
        match self.list_path() {
            Some(p) => {
                let file = p.display().to_string();
                let text = std::fs::read_to_string(&p).map_err(|source| ConfigError::Read {
                    file: file.clone(),
                    source,
                })?;
                DestinationList::parse_kamailio(&text).map_err(|e| ConfigError::List {
                    file,
                    line: e.line,
                    field: e.field.to_string(),
                    message: e.message,
                })
            }
            None => {
                DestinationList::from_specs(self.dispatcher.destinations.clone()).map_err(|e| {
                    ConfigError::Invalid {
                        file: self.origin_name(),
                        field: format!("dispatcher.destinations[{}]", e.index),
                        message: e.error.to_string(),
                    }
                })
            }
        }
    }

    /// The file name for messages.
    pub fn origin_name(&self) -> String {
        self.origin
            .as_ref()
            .map_or("command line".into(), |p| p.display().to_string())
    }

    /// The effective configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot print: {e}\n"))
    }

    /// Worker threads to run.
    pub fn worker_count(&self) -> usize {
        if self.proxy.workers > 0 {
            self.proxy.workers
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }

    /// The cookie key bytes: the configured secret decoded (see
    /// [`ProxySection::cookie_key`]), or 32 random bytes when none is configured (then
    /// dialogs do not survive a restart; the caller warns). Each call without a configured
    /// key draws a new one, so call it once per start.
    pub fn cookie_key(&self) -> Vec<u8> {
        match &self.proxy.cookie_key {
            // `validate` has rejected keys that do not decode.
            Some(k) => decode_cookie_key(k).unwrap_or_else(|_| k.as_bytes().to_vec()),
            None => rand::random::<[u8; 32]>().to_vec(),
        }
    }

    /// The proxy configuration.
    pub fn proxy_config(&self) -> sip_proxy::ProxyConfig {
        let t = &self.timers;
        let ms = Duration::from_millis;
        sip_proxy::ProxyConfig {
            mode: match self.proxy.mode {
                ModeSetting::Stateful => sip_proxy::Mode::Stateful,
                ModeSetting::Stateless => sip_proxy::Mode::Stateless,
            },
            listeners: self
                .proxy
                .listen
                .iter()
                .map(|l| {
                    let mut e = sip_proxy::LocalEndpoint::new(l.transport, l.addr);
                    e.advertise = self.proxy.advertise.clone();
                    e
                })
                .collect(),
            outbound: Vec::new(),
            aliases: self.proxy.aliases.clone(),
            set: self.dispatcher.set,
            algorithm: self.dispatcher.algorithm.0,
            timers: sip_proxy::Timers {
                t1: ms(t.t1_ms),
                t2: ms(t.t2_ms),
                t4: ms(t.t4_ms),
                no_response: ms(t.no_response_ms),
                no_final_invite: ms(t.no_final_invite_ms),
                wait: ms(t.wait_ms),
                dialog: Duration::from_secs(t.dialog_s),
            },
            failover: sip_proxy::Failover {
                codes: self.failover.codes.clone(),
                classes: self.failover.classes.clone(),
                max_attempts: self.failover.max_attempts,
                retry_after: self.failover.retry_after_s,
            },
            cookie_key: self.cookie_key(),
            probing: self.probing.enabled.then(|| sip_proxy::ProbeConfig {
                interval: Duration::from_secs_f64(self.probing.interval_s),
                mode: self.probing.mode,
                from: self.probing.from.clone(),
                method: self.probing.method.clone(),
                alive_codes: self.probing.alive_codes.clone(),
                timeout: Duration::from_secs_f64(self.probing.timeout_s),
                health: HealthConfig {
                    inactive_threshold: self.probing.inactive_threshold,
                    active_threshold: self.probing.active_threshold,
                },
            }),
            queue: sip_proxy::QueueConfig {
                capacity: self.queue.capacity,
                deadline: ms(self.queue.deadline_ms),
                ..Default::default()
            },
            limits: sip_core::Limits {
                max_message_size: self.limits.max_message_size,
                max_headers: self.limits.max_headers,
                ..Default::default()
            },
            supported: self.proxy.supported.clone(),
            worker: 0,
            instance: 0,
            user_agent: concat!("sip-lb/", env!("CARGO_PKG_VERSION")).into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c = Config::parse("", "x.toml").unwrap();
        c.validate().unwrap();
        assert_eq!(c.proxy.listen[0].to_string(), "udp:127.0.0.1:5060");
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let text =
            "[proxy]\nmode = \"stateful\"\nlisten = [\"udp:127.0.0.1:5060\", \"foo:1.2.3.4:5\"]\n";
        let e = Config::parse(text, "lb.toml").unwrap_err().to_string();
        assert!(e.starts_with("lb.toml:3: proxy.listen"), "{e}");
        assert!(e.contains("unknown transport"), "{e}");
        let e = Config::parse("[proxy]\nmoed = 1\n", "lb.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("lb.toml:2: proxy.moed: unknown field `moed`"),
            "{e}"
        );
        let e = Config::parse("[dispatcher]\nalgorithm = \"fastest\"\n", "lb.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("lb.toml:2: dispatcher.algorithm:"), "{e}");
        let text = "[[dispatcher.destinations]]\nset = 1\nuri = \"sip:a\"\n\
                    [[dispatcher.destinations]]\nset = \"x\"\nuri = \"sip:b\"\n";
        let e = Config::parse(text, "lb.toml").unwrap_err().to_string();
        assert!(
            e.starts_with("lb.toml:5: dispatcher.destinations[1].set: invalid type"),
            "{e}"
        );
        let e = Config::parse("[log]\nlevel = \n", "lb.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("lb.toml:2: (syntax):"), "{e}");
        let c = Config::parse("[failover]\nmax_attempts = 0\n", "lb.toml").unwrap();
        let (field, _) = c.validate().unwrap_err();
        assert_eq!(field, "failover.max_attempts");
        assert_eq!(line_of_path("[failover]\nmax_attempts = 0\n", &field), 2);
    }

    fn load_text(name: &str, text: &str) -> Result<Config, ConfigError> {
        let dir = std::env::temp_dir().join(format!("sip-lb-config-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("lb.toml");
        std::fs::write(&p, text).unwrap();
        let r = Config::load(&p);
        let _ = std::fs::remove_dir_all(&dir);
        r
    }

    fn load_error(name: &str, text: &str) -> String {
        let e = load_text(name, text).unwrap_err().to_string();
        // Drop the temporary directory from the message.
        e.rsplit_once("lb.toml")
            .map_or(e.clone(), |(_, r)| r.to_string())
    }

    #[test]
    fn validation_errors_point_at_the_field_line() {
        let inline = "[[dispatcher.destinations]]\nset = 1\nuri = \"sip:127.0.0.1:5080\"\n";
        assert_eq!(
            load_error(
                "codes",
                &format!("{inline}[failover]\ncodes = [408,\n  200]\n")
            ),
            ":6: failover.codes[1]: 200 is not a final error code"
        );
        assert_eq!(
            load_error(
                "udp",
                &format!("{inline}\n[proxy]\nlisten = [\"tcp:127.0.0.1:5060\"]\n")
            ),
            ":6: proxy.listen: at least one udp: listener is needed (destinations are reached over UDP)"
        );
        assert_eq!(
            load_error("method", &format!("{inline}[probing]\nmethod = \"ACK\"\n")),
            ":5: probing.method: `ACK` is not a method a probe can use (OPTIONS, INFO, ...)"
        );
        let two = "[[dispatcher.destinations]]\nset = 1\nuri = \"sip:127.0.0.1:5080\"\n\n\
                   [[dispatcher.destinations]]\nset = 1\nuri = \"mailto:x\"\n";
        let e = load_error("dest", two);
        assert!(e.starts_with(":5: dispatcher.destinations[1]: "), "{e}");
        let e = load_error("list", "[dispatcher]\nlist = \"missing.list\"\n");
        assert!(e.contains("missing.list"), "{e}");
    }

    #[test]
    fn cookie_key_forms() {
        assert_eq!(decode_cookie_key("hex:00ff10").unwrap(), vec![0, 255, 16]);
        assert_eq!(decode_cookie_key("base64:AP8Q").unwrap(), vec![0, 255, 16]);
        assert_eq!(decode_cookie_key("plain").unwrap(), b"plain".to_vec());
        assert!(decode_cookie_key("hex:0").is_err());
        assert!(decode_cookie_key("hex:zz").is_err());
        assert!(decode_cookie_key("base64:***").is_err());
        assert!(decode_cookie_key("base64:A").is_err());
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVsbG8").unwrap(), b"hello");
        assert_eq!(decode_base64("aGk=").unwrap(), b"hi");
        assert_eq!(decode_base64("/+8=").unwrap(), vec![0xff, 0xef]);
        assert!(decode_cookie_key("").is_err());
        let c = Config::parse("[proxy]\ncookie_key = \"hex:0102\"\n", "x").unwrap();
        c.validate().unwrap();
        assert_eq!(c.cookie_key(), vec![1, 2]);
        assert_eq!(c.proxy_config().cookie_key, vec![1, 2]);
        // Absent: 32 random bytes, different each start.
        let c = Config::default();
        let (a, b) = (c.cookie_key(), c.cookie_key());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        let e = Config::parse("[proxy]\ncookie_key = \"base64:!\"\n", "x")
            .unwrap()
            .validate()
            .unwrap_err();
        assert_eq!(e.0, "proxy.cookie_key");
    }

    #[test]
    fn the_example_configuration_is_accepted_and_round_trips() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sip-lb.toml");
        let c = Config::load(&p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.destination_list().unwrap().entries().len(), 4);
        // The printed effective configuration is itself a valid configuration.
        let again = Config::parse(&c.to_toml(), "printed").unwrap();
        again.validate().unwrap();
        assert_eq!(again.to_toml(), c.to_toml());
        let pc = c.proxy_config();
        assert_eq!(
            pc.probing.as_ref().map(|p| p.method.as_str()),
            Some("OPTIONS")
        );
    }

    #[test]
    fn listen_forms() {
        for s in [
            "udp:127.0.0.1:5060",
            "tcp:[::1]:5060",
            "tls:0.0.0.0:5061",
            "ws:127.0.0.1:8080",
            "wss:[::1]:8443",
        ] {
            let l: Listen = s.parse().unwrap();
            assert_eq!(l.to_string(), s);
        }
        assert_eq!(
            "udp:localhost:5060".parse::<Listen>(),
            Err(ListenError::Address("localhost:5060".into()))
        );
        assert_eq!(
            "127.0.0.1:5060".parse::<Listen>(),
            Err(ListenError::Transport("127.0.0.1".into()))
        );
        assert_eq!(
            "udp".parse::<Listen>(),
            Err(ListenError::Shape("udp".into()))
        );
    }

    #[test]
    fn inline_destinations_and_round_trip() {
        let text = "[dispatcher]\nalgorithm = 9\n[[dispatcher.destinations]]\nset = 1\nuri = \"sip:127.0.0.1:5080\"\n[dispatcher.destinations.attrs]\nweight = 3\n";
        let c = Config::parse(text, "x").unwrap();
        assert_eq!(c.dispatcher.algorithm.0, Algorithm::Weight);
        let l = c.destination_list().unwrap();
        assert_eq!(l.entries()[0].attrs.weight, Some(3));
        let again = Config::parse(&c.to_toml(), "y").unwrap();
        assert_eq!(again.dispatcher.destinations.len(), 1);
    }
}
