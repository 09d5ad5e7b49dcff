//! Destination lists: Kamailio's `dispatcher.list` format, a builder, and serde types.
//!
//! The file format, line by line: `setid destination [flags [priority [attrs]]]`, `#`
//! comments, blank lines. `attrs` is `key=value;key=value` (`weight`, `rweight`, `maxload`,
//! `duid`, `socket`, `ping_from`, `obproxy`, `cc`; other keys are kept). Flags are the
//! Kamailio bits: 1 inactive, 2 trying, 4 disabled, 8 probing, 16 skip DNS, 32 never probe.
//!
//! ```
//! use sip_dispatch::DestinationList;
//! let list = DestinationList::parse_kamailio(
//!     "# set 1: two PBXs\n1 sip:10.0.0.1:5060 0 10 weight=50;duid=pbx1\n1 sip:10.0.0.2 8\n",
//! ).unwrap();
//! assert_eq!(list.entries().len(), 2);
//! assert_eq!(list.entries()[0].attrs.weight, Some(50));
//! let err = DestinationList::parse_kamailio("1 sip:a\nx sip:b\n").unwrap_err();
//! assert_eq!((err.line, err.field), (2, "setid"));
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Destination flags (Kamailio bit values).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Flags(pub u32);

impl Flags {
    /// Starts inactive.
    pub const INACTIVE: u32 = 1;
    /// Starts in "trying" state.
    pub const TRYING: u32 = 2;
    /// Administratively disabled.
    pub const DISABLED: u32 = 4;
    /// Probed (Kamailio `ds_probing_mode` 0 probes only these).
    pub const PROBING: u32 = 8;
    /// Do not resolve the host by DNS.
    pub const SKIP_DNS: u32 = 16;
    /// Never probe.
    pub const NO_PROBE: u32 = 32;

    /// True when `bit` is set.
    pub fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }
}

/// Destination attributes (`attrs` of the list line).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attrs {
    /// Weight for algorithm 9 and weighted hashing (1-100 in Kamailio; any positive value here).
    pub weight: Option<u32>,
    /// Relative weight for algorithm 11.
    pub rweight: Option<u32>,
    /// Most active calls for algorithm 10 and the autonomous queue.
    pub maxload: Option<u32>,
    /// Destination unique id: destinations sharing it share their call load.
    pub duid: Option<String>,
    /// Local socket to send from (kept for the runtime).
    pub socket: Option<String>,
    /// From URI of probes to this destination.
    pub ping_from: Option<String>,
    /// Outbound proxy (kept for the runtime).
    pub obproxy: Option<String>,
    /// Congestion control for algorithm 11 (`cc=1`).
    pub cc: Option<u32>,
    /// Any other key, as written.
    #[serde(default)]
    pub other: BTreeMap<String, String>,
}

impl Attrs {
    /// Parses `key=value;key=value` as Kamailio does: keys are case-insensitive, a value
    /// may be double-quoted (and then hold `;`), a trailing `;` is allowed, unknown keys
    /// are kept in [`Attrs::other`]. `Err((key, why))` names the key that is wrong.
    pub fn parse(s: &str) -> Result<Attrs, (String, &'static str)> {
        let mut a = Attrs::default();
        for part in split_params(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (k, v) = match part.split_once('=') {
                Some((k, v)) => (k.trim(), unquote(v.trim())),
                None => (part, ""),
            };
            let num = |v: &str| {
                v.parse::<u32>()
                    .map_err(|_| (k.to_string(), "not a non-negative number"))
            };
            match k.to_ascii_lowercase().as_str() {
                "weight" => a.weight = Some(num(v)?),
                "rweight" => a.rweight = Some(num(v)?),
                "maxload" => a.maxload = Some(num(v)?),
                "cc" => a.cc = Some(num(v)?),
                "duid" => a.duid = Some(v.to_string()),
                "socket" => a.socket = Some(v.to_string()),
                "ping_from" => a.ping_from = Some(v.to_string()),
                "obproxy" => a.obproxy = Some(v.to_string()),
                "" => return Err((part.to_string(), "empty attribute name")),
                _ => {
                    a.other.insert(k.to_string(), v.to_string());
                }
            }
        }
        Ok(a)
    }
}

impl Attrs {
    /// The attributes as Kamailio writes them: `key=value;key=value` (values holding `;`
    /// are quoted).
    pub fn to_kamailio(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        let mut add = |k: &str, v: &str| {
            if v.contains(';') {
                parts.push(format!("{k}=\"{v}\""));
            } else {
                parts.push(format!("{k}={v}"));
            }
        };
        let nums = [
            ("weight", self.weight),
            ("rweight", self.rweight),
            ("maxload", self.maxload),
            ("cc", self.cc),
        ];
        for (k, v) in nums {
            if let Some(v) = v {
                add(k, &v.to_string());
            }
        }
        let strs = [
            ("duid", &self.duid),
            ("socket", &self.socket),
            ("ping_from", &self.ping_from),
            ("obproxy", &self.obproxy),
        ];
        for (k, v) in strs {
            if let Some(v) = v {
                add(k, v);
            }
        }
        for (k, v) in &self.other {
            add(k, v);
        }
        parts.join(";")
    }
}

/// Splits on `;` outside double quotes.
fn split_params(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let r = rest?;
        let mut quoted = false;
        for (i, c) in r.char_indices() {
            match c {
                '"' => quoted = !quoted,
                ';' if !quoted => {
                    rest = Some(&r[i + 1..]);
                    return Some(&r[..i]);
                }
                _ => {}
            }
        }
        rest = None;
        Some(r)
    })
}

fn unquote(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(v)
}

/// One destination as configured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationSpec {
    /// The set it belongs to.
    pub set: u32,
    /// Its SIP URI (`sip:host[:port][;transport=...]`).
    pub uri: String,
    /// Flags (Kamailio bits).
    #[serde(default)]
    pub flags: Flags,
    /// Priority (ordering for algorithms 8 and 15).
    #[serde(default)]
    pub priority: i32,
    /// Attributes.
    #[serde(default)]
    pub attrs: Attrs,
}

/// A parsed list of destinations (any number of sets), in file order. Every URI in it
/// has been checked (also when deserialised: `{"entries": [...]}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ListRepr")]
pub struct DestinationList {
    entries: Vec<DestinationSpec>,
}

/// The serde shape of [`DestinationList`], checked on the way in.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListRepr {
    #[serde(default)]
    entries: Vec<DestinationSpec>,
}

impl TryFrom<ListRepr> for DestinationList {
    type Error = BadSpec;
    fn try_from(r: ListRepr) -> Result<Self, BadSpec> {
        DestinationList::from_specs(r.entries)
    }
}

/// A destination URI the dispatcher cannot use.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadUri {
    /// It parses, but is not a `sip:` or `sips:` URI with a host.
    #[error("`{uri}` is not a sip: or sips: URI with a host")]
    NotSip {
        /// The URI as given.
        uri: String,
    },
    /// It does not parse.
    #[error("`{uri}` is not a valid URI ({reason})")]
    Invalid {
        /// The URI as given.
        uri: String,
        /// What the URI parser found wrong.
        #[source]
        reason: sip_core::ValueError,
    },
}

/// A destination of [`DestinationList::from_specs`] with an unusable URI: which one and
/// why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("destination {index}: {error}")]
pub struct BadSpec {
    /// Its position in the specs (0-based).
    pub index: usize,
    /// What is wrong with its URI.
    #[source]
    pub error: BadUri,
}

/// A bad line of a list file: which line, which field, why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {field}: {message}")]
pub struct ListError {
    /// Line number (1-based).
    pub line: usize,
    /// The field: `setid`, `destination`, `flags`, `priority`, `attrs` or an attribute name.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

fn err(line: usize, field: &'static str, message: impl Into<String>) -> ListError {
    ListError {
        line,
        field,
        message: message.into(),
    }
}

/// Checks a destination URI: `sip:` or `sips:` with a host.
pub fn check_uri(uri: &str) -> Result<(), BadUri> {
    match sip_core::uri::Uri::parse(uri.as_bytes()) {
        Ok(u) if u.scheme().is_sip() && u.host().is_some() => Ok(()),
        Ok(_) => Err(BadUri::NotSip {
            uri: uri.to_string(),
        }),
        Err(reason) => Err(BadUri::Invalid {
            uri: uri.to_string(),
            reason,
        }),
    }
}

impl DestinationList {
    /// An empty list (add destinations with [`DestinationList::push`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses Kamailio's `dispatcher.list` text, line by line as Kamailio's
    /// `ds_load_list` does: leading blanks are skipped; a line that is empty or starts
    /// with `#` is a comment; the fields are separated by blanks; the destination, flags
    /// and priority end at a blank or `#` (the rest of the line is then a comment); the
    /// attributes are one blank-free field; anything after them is ignored. Flags are
    /// decimal or `0x` hexadecimal. Unlike Kamailio, which logs and skips a bad line, a
    /// bad line is an error naming the line number and the field.
    pub fn parse_kamailio(text: &str) -> Result<DestinationList, ListError> {
        let mut list = DestinationList::new();
        for (i, raw) in text.lines().enumerate() {
            if let Some(spec) = parse_line(raw, i + 1)? {
                list.entries.push(spec);
            }
        }
        Ok(list)
    }

    /// Adds a destination (the builder API for embedding code).
    pub fn push(&mut self, spec: DestinationSpec) -> Result<&mut Self, BadUri> {
        check_uri(&spec.uri)?;
        self.entries.push(spec);
        Ok(self)
    }

    /// Adds `uri` to `set` with default flags, priority and attributes.
    pub fn with(mut self, set: u32, uri: &str) -> Result<Self, BadUri> {
        self.push(DestinationSpec {
            set,
            uri: uri.to_string(),
            flags: Flags(0),
            priority: 0,
            attrs: Attrs::default(),
        })?;
        Ok(self)
    }

    /// A list from specs (e.g. deserialised from TOML); checks every URI.
    pub fn from_specs(specs: Vec<DestinationSpec>) -> Result<Self, BadSpec> {
        for (index, s) in specs.iter().enumerate() {
            check_uri(&s.uri).map_err(|error| BadSpec { index, error })?;
        }
        Ok(DestinationList { entries: specs })
    }

    /// The list in Kamailio's `dispatcher.list` format, one line per destination
    /// (`setid destination flags priority attrs`); [`DestinationList::parse_kamailio`]
    /// reads it back unchanged, except attributes that hold blanks or quotes or begin
    /// with `#` (Kamailio's format cannot hold them).
    pub fn to_kamailio(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        for e in &self.entries {
            let _ = write!(s, "{} {} {} {}", e.set, e.uri, e.flags.0, e.priority);
            let a = e.attrs.to_kamailio();
            if !a.is_empty() {
                s.push(' ');
                s.push_str(&a);
            }
            s.push('\n');
        }
        s
    }

    /// The entries in file order.
    pub fn entries(&self) -> &[DestinationSpec] {
        &self.entries
    }
}

fn parse_flags(f: &str) -> Option<u32> {
    if let Some(h) = f.strip_prefix("0x").or_else(|| f.strip_prefix("0X")) {
        u32::from_str_radix(h, 16).ok()
    } else {
        f.parse().ok()
    }
}

fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Splits the next field off `rest`: up to a blank, or also up to `#` when `hash_ends`.
/// Returns `None` at the end of the line or at a comment.
fn next_field<'a>(rest: &mut &'a str, hash_ends: bool) -> Option<&'a str> {
    let r = rest.trim_start_matches(is_blank);
    if r.is_empty() || r.starts_with('#') {
        *rest = "";
        return None;
    }
    let end = r
        .find(|c: char| is_blank(c) || (hash_ends && c == '#'))
        .unwrap_or(r.len());
    *rest = &r[end..];
    Some(&r[..end])
}

fn parse_line(raw: &str, n: usize) -> Result<Option<DestinationSpec>, ListError> {
    let mut rest = raw;
    let Some(set) = next_field(&mut rest, true) else {
        return Ok(None);
    };
    let set = set
        .parse::<u32>()
        .map_err(|_| err(n, "setid", format!("`{set}` is not a set number")))?;
    let uri = next_field(&mut rest, true)
        .ok_or_else(|| err(n, "destination", "missing"))?
        .to_string();
    check_uri(&uri).map_err(|e| err(n, "destination", e.to_string()))?;
    let flags = match next_field(&mut rest, true) {
        Some(f) => {
            Flags(parse_flags(f).ok_or_else(|| err(n, "flags", format!("`{f}` is not a number")))?)
        }
        None => Flags(0),
    };
    let priority = match next_field(&mut rest, true) {
        Some(p) => p
            .parse::<i32>()
            .map_err(|_| err(n, "priority", format!("`{p}` is not a number")))?,
        None => 0,
    };
    let attrs = match next_field(&mut rest, false) {
        Some(a) => Attrs::parse(a).map_err(|(k, why)| err(n, "attrs", format!("{k}: {why}")))?,
        None => Attrs::default(),
    };
    Ok(Some(DestinationSpec {
        set,
        uri,
        flags,
        priority,
        attrs,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kamailio_documentation_shapes() {
        // The shapes of the examples in Kamailio's dispatcher documentation (own files).
        let text = "\
# $Id$
# dispatcher destination sets
#

# line format
# setit(int) destination(sip uri) flags(int,opt) priority(int,opt) attributes(str,opt)

# proxies
2 sip:127.0.0.1:5080
2 sip:127.0.0.1:5082

# gateways
1 sip:127.0.0.1:7070 0 0 duid=abc;socket=udp:192.168.0.125:5060;my=xyz
1 sip:127.0.0.1:7072 0 5 duid=xyz;weight=50;maxload=20
1 sip:127.0.0.1:7074 8 10 duid=pqr;rweight=30;ping_from=sip:lb@example.com
3 sip:gw.example.com;transport=tcp 2
";
        let l = DestinationList::parse_kamailio(text).unwrap();
        assert_eq!(l.entries().len(), 6);
        let e = &l.entries()[2];
        assert_eq!(
            (e.set, e.uri.as_str(), e.priority),
            (1, "sip:127.0.0.1:7070", 0)
        );
        assert_eq!(e.attrs.duid.as_deref(), Some("abc"));
        assert_eq!(e.attrs.socket.as_deref(), Some("udp:192.168.0.125:5060"));
        assert_eq!(e.attrs.other.get("my").map(String::as_str), Some("xyz"));
        assert_eq!(l.entries()[3].attrs.maxload, Some(20));
        assert_eq!(l.entries()[4].flags, Flags(8));
        assert_eq!(l.entries()[4].attrs.rweight, Some(30));
        assert_eq!(l.entries()[5].flags, Flags(2));
    }

    #[test]
    fn bad_lines_name_line_and_field() {
        let cases = [
            ("x sip:a", 1, "setid"),
            ("1", 1, "destination"),
            ("1 http://a", 1, "destination"),
            ("1 sip:a zz", 1, "flags"),
            ("1 sip:a 0 high", 1, "priority"),
            ("\n\n1 sip:a 0 0 weight=heavy", 3, "attrs"),
            ("1 sip:a 0 0 =3", 1, "attrs"),
        ];
        for (text, line, field) in cases {
            let e = DestinationList::parse_kamailio(text).unwrap_err();
            assert_eq!((e.line, e.field), (line, field), "{text}: {e}");
        }
    }

    #[test]
    fn builder_and_serde() {
        let l = DestinationList::new()
            .with(1, "sip:10.0.0.1")
            .unwrap()
            .with(1, "sip:[::1]:5070")
            .unwrap();
        assert_eq!(l.entries().len(), 2);
        assert!(DestinationList::new().with(1, "mailto:x").is_err());
        let json = serde_json::to_string(&l).unwrap();
        let back: DestinationList = serde_json::from_str(&json).unwrap();
        assert_eq!(back, l);
    }
}
