//! Property tests of the parser and the editor through the public API:
//!
//! - generated valid messages (random methods, URIs, Vias with parameters, headers with
//!   odd white space and compact forms, bodies) parse back to the parts they were built
//!   from;
//! - arbitrary bytes, and valid messages with random mutations, never panic — neither the
//!   parse nor any typed view or the editor on whatever parses;
//! - edit-then-parse shows the edits and leaves every other byte identical.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::Bytes;
use proptest::prelude::*;
use sip_core::editor::Editor;
use sip_core::uri::{Host, Uri};
use sip_core::values::{CSeq, Contact, Credentials, RetryAfter, option_tags, parse_expires};
use sip_core::{Framing, HeaderName, Message, Method, ParseOptions, Transport};

// ---- generating valid messages ---------------------------------------------------------

#[derive(Clone, Debug)]
enum GenHost {
    Domain(String),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl GenHost {
    fn render(&self) -> String {
        match self {
            GenHost::Domain(d) => d.clone(),
            GenHost::V4(a) => a.to_string(),
            GenHost::V6(a) => format!("[{a}]"),
        }
    }

    fn check(&self, h: Host<'_>) {
        match (self, h) {
            (GenHost::Domain(d), Host::Domain(x)) => assert_eq!(d.as_bytes(), x),
            (GenHost::V4(a), Host::V4(x)) => assert_eq!(*a, x),
            (GenHost::V6(a), Host::V6(x)) => assert_eq!(*a, x),
            (g, h) => panic!("host {g:?} parsed as {h:?}"),
        }
    }
}

fn host() -> impl Strategy<Value = GenHost> {
    prop_oneof![
        "[a-z]([a-z0-9-]{0,7}[a-z0-9])?(\\.[a-z][a-z0-9]{0,6}){0,3}".prop_map(GenHost::Domain),
        any::<[u8; 4]>().prop_map(|o| GenHost::V4(Ipv4Addr::from(o))),
        any::<[u16; 8]>().prop_map(|s| GenHost::V6(Ipv6Addr::from(s))),
    ]
}

#[derive(Clone, Debug)]
struct GenUri {
    sips: bool,
    user: Option<String>,
    host: GenHost,
    port: Option<u16>,
    params: Vec<(String, Option<String>)>,
}

impl GenUri {
    fn render(&self) -> String {
        let mut s = String::from(if self.sips { "sips:" } else { "sip:" });
        if let Some(u) = &self.user {
            s += u;
            s += "@";
        }
        s += &self.host.render();
        if let Some(p) = self.port {
            s += &format!(":{p}");
        }
        for (n, v) in &self.params {
            s += ";";
            s += n;
            if let Some(v) = v {
                s += "=";
                s += v;
            }
        }
        s
    }

    fn check(&self, u: &Uri<'_>) {
        assert_eq!(u.user(), self.user.as_deref().map(str::as_bytes));
        self.host.check(u.host().expect("host"));
        assert_eq!(u.port(), self.port);
        for (n, v) in &self.params {
            // The first parameter of a name wins.
            let first = self.params.iter().find(|(m, _)| m.eq_ignore_ascii_case(n));
            if first.map(|(_, fv)| fv) == Some(v) {
                assert_eq!(u.param(n), Some(v.as_deref().map(str::as_bytes)), "{n}");
            }
        }
    }
}

fn uri() -> impl Strategy<Value = GenUri> {
    (
        any::<bool>(),
        proptest::option::of("[a-zA-Z0-9_.!~*'()&=+$,;?/-]{1,10}(%[0-9A-F]{2})?"),
        host(),
        proptest::option::of(any::<u16>()),
        proptest::collection::vec(
            (
                "[a-z][a-z0-9-]{0,6}",
                proptest::option::of("[a-zA-Z0-9.]{1,8}"),
            ),
            0..3,
        ),
    )
        .prop_map(|(sips, user, host, port, params)| GenUri {
            sips,
            user,
            host,
            port,
            params,
        })
}

#[derive(Clone, Debug)]
struct GenVia {
    transport: Transport,
    host: GenHost,
    port: Option<u16>,
    branch: String,
    rport: Option<Option<u16>>,
    received: Option<Ipv4Addr>,
    ttl: Option<u8>,
}

/// White space around separators: none, spaces, or a fold.
fn lws() -> impl Strategy<Value = &'static str> {
    prop_oneof![4 => Just(""), 1 => Just(" "), 1 => Just("  \t"), 1 => Just("\r\n ")]
}

impl GenVia {
    fn render(&self, sp: &str) -> String {
        let mut s = format!(
            "SIP{sp}/{sp}2.0{sp}/{sp}{} {}",
            self.transport.via_token(),
            self.host.render()
        );
        if let Some(p) = self.port {
            s += &format!("{sp}:{sp}{p}");
        }
        s += &format!("{sp};{sp}branch{sp}={sp}{}", self.branch);
        match self.rport {
            Some(Some(p)) => s += &format!(";rport={p}"),
            Some(None) => s += ";rport",
            None => {}
        }
        if let Some(r) = self.received {
            s += &format!(";received={r}");
        }
        if let Some(t) = self.ttl {
            s += &format!(";ttl={t}");
        }
        s
    }

    fn check(&self, v: &sip_core::via::Via<'_>) {
        assert_eq!(v.transport(), Some(self.transport));
        self.host.check(v.host());
        assert_eq!(v.port(), self.port);
        assert_eq!(v.branch(), Some(self.branch.as_bytes()));
        assert!(v.has_rfc3261_branch());
        assert_eq!(v.rport(), self.rport);
        assert_eq!(v.received_ip(), self.received.map(IpAddr::V4));
        assert_eq!(v.ttl(), self.ttl);
    }
}

fn via() -> impl Strategy<Value = GenVia> {
    (
        prop_oneof![
            Just(Transport::Udp),
            Just(Transport::Tcp),
            Just(Transport::Tls),
            Just(Transport::Sctp),
            Just(Transport::Ws),
            Just(Transport::Wss),
        ],
        host(),
        proptest::option::of(1u16..),
        "z9hG4bK[a-zA-Z0-9.!%*_+`'~-]{1,16}",
        proptest::option::of(proptest::option::of(any::<u16>())),
        proptest::option::of(any::<[u8; 4]>().prop_map(Ipv4Addr::from)),
        proptest::option::of(any::<u8>()),
    )
        .prop_map(
            |(transport, host, port, branch, rport, received, ttl)| GenVia {
                transport,
                host,
                port,
                branch,
                rport,
                received,
                ttl,
            },
        )
}

#[derive(Clone, Debug)]
struct GenAddr {
    display: Option<(bool, String)>,
    uri: GenUri,
    tag: Option<String>,
}

impl GenAddr {
    fn render(&self, sp: &str) -> String {
        let mut s = String::new();
        match &self.display {
            Some((true, d)) => s += &format!("\"{d}\"{sp}"),
            Some((false, d)) => s += &format!("{d} "),
            None => {}
        }
        s += &format!("<{}>", self.uri.render());
        if let Some(t) = &self.tag {
            s += &format!("{sp};{sp}tag{sp}={sp}{t}");
        }
        s
    }
}

fn addr() -> impl Strategy<Value = GenAddr> {
    (
        proptest::option::of((
            any::<bool>(),
            "[A-Za-z][A-Za-z0-9]{0,5}( [A-Za-z0-9]{1,5}){0,2}",
        )),
        uri(),
        proptest::option::of("[a-zA-Z0-9.!%*_+`'~-]{1,12}"),
    )
        .prop_map(|(display, uri, tag)| GenAddr { display, uri, tag })
}

const METHODS: [(&str, Method); 8] = [
    ("INVITE", Method::Invite),
    ("ACK", Method::Ack),
    ("BYE", Method::Bye),
    ("CANCEL", Method::Cancel),
    ("OPTIONS", Method::Options),
    ("REGISTER", Method::Register),
    ("SUBSCRIBE", Method::Subscribe),
    ("MESSAGE", Method::Message),
];

#[derive(Clone, Debug)]
enum Start {
    Request { method: String, uri: GenUri },
    Response { code: u16, reason: String },
}

#[derive(Clone, Debug)]
struct GenMsg {
    start: Start,
    /// Via values, and how many go on each line.
    vias: Vec<GenVia>,
    via_split: Vec<usize>,
    routes: Vec<GenUri>,
    from: GenAddr,
    to: GenAddr,
    call_id: String,
    cseq: u32,
    max_forwards: Option<u8>,
    extra: Vec<(String, String)>,
    body: Vec<u8>,
    content_length: bool,
    compact: bool,
    lower: bool,
    sp: &'static str,
    colon_sp: &'static str,
}

impl GenMsg {
    fn method(&self) -> (&str, Method) {
        match &self.start {
            Start::Request { method, .. } => {
                let m = METHODS
                    .iter()
                    .find(|(n, _)| n == method)
                    .map_or(Method::Extension, |(_, m)| *m);
                (method, m)
            }
            Start::Response { .. } => ("INVITE", Method::Invite),
        }
    }

    fn name<'a>(&self, full: &'a str, compact: &'a str) -> String {
        let n = if self.compact && !compact.is_empty() {
            compact
        } else {
            full
        };
        if self.lower {
            n.to_ascii_lowercase()
        } else {
            n.to_string()
        }
    }

    fn render(&self) -> Vec<u8> {
        let (sp, c) = (self.sp, self.colon_sp);
        let mut s = match &self.start {
            Start::Request { method, uri } => format!("{method} {} SIP/2.0\r\n", uri.render()),
            Start::Response { code, reason } => format!("SIP/2.0 {code} {reason}\r\n"),
        };
        let mut i = 0;
        for &n in &self.via_split {
            let vals: Vec<String> = self.vias[i..i + n].iter().map(|v| v.render(sp)).collect();
            s += &format!(
                "{}{c}:{c}{}\r\n",
                self.name("Via", "v"),
                vals.join(&format!("{sp},{sp}"))
            );
            i += n;
        }
        for r in &self.routes {
            s += &format!("{}{c}: <{}>\r\n", self.name("Route", ""), r.render());
        }
        if let Some(mf) = self.max_forwards {
            s += &format!("{}{c}: {mf}\r\n", self.name("Max-Forwards", ""));
        }
        s += &format!(
            "{}{c}:{c}{}\r\n",
            self.name("From", "f"),
            self.from.render(sp)
        );
        s += &format!("{}{c}:{c}{}\r\n", self.name("To", "t"), self.to.render(sp));
        s += &format!("{}{c}: {}\r\n", self.name("Call-ID", "i"), self.call_id);
        s += &format!(
            "{}{c}: {}{sp} {}\r\n",
            self.name("CSeq", ""),
            self.cseq,
            self.method().0
        );
        for (n, v) in &self.extra {
            s += &format!("{n}{c}: {v}\r\n");
        }
        if self.content_length {
            s += &format!(
                "{}{c}: {}\r\n",
                self.name("Content-Length", "l"),
                self.body.len()
            );
        }
        s += "\r\n";
        let mut b = s.into_bytes();
        b.extend_from_slice(&self.body);
        b
    }
}

fn msg() -> impl Strategy<Value = GenMsg> {
    let start = prop_oneof![
        (
            prop_oneof![
                (0..METHODS.len()).prop_map(|i| METHODS[i].0.to_string()),
                "X[A-Za-z0-9.!%*_+`'~-]{0,10}",
            ],
            uri()
        )
            .prop_map(|(method, uri)| Start::Request { method, uri }),
        (100u16..700, "[A-Za-z]([A-Za-z0-9 ]{0,19}[A-Za-z0-9])?")
            .prop_map(|(code, reason)| Start::Response { code, reason }),
    ];
    let head = (
        start,
        proptest::collection::vec(via(), 1..6),
        any::<u64>(),
        proptest::collection::vec(uri(), 0..4),
        addr(),
        addr(),
        "[a-zA-Z0-9.!%*_+`'~()<>:\\\\\"/\\[\\]?{}-]{1,20}(@[a-z0-9.]{1,12})?",
        // RFC 3261 §8.1.1.5: the sequence number is below 2**31.
        0u32..(1 << 31),
        proptest::option::of(any::<u8>()),
    );
    let tail = (
        proptest::collection::vec(("X-[A-Za-z0-9-]{1,10}", "[ -~]{0,30}[!-~]"), 0..4),
        proptest::collection::vec(any::<u8>(), 0..200),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        lws(),
        prop_oneof![Just(""), Just(" "), Just("\t ")],
    );
    (head, tail).prop_map(
        |(
            (start, vias, split_seed, routes, from, to, call_id, cseq, max_forwards),
            (extra, body, content_length, compact, lower, sp, colon_sp),
        )| {
            // Split the Via values over lines: each bit of the seed says "new line here".
            let mut via_split = vec![1];
            for i in 1..vias.len() {
                if split_seed >> i & 1 == 1 {
                    via_split.push(1);
                } else {
                    *via_split.last_mut().unwrap() += 1;
                }
            }
            // Without Content-Length the body runs to the end of the datagram.
            let content_length = content_length || body.is_empty();
            GenMsg {
                start,
                vias,
                via_split,
                routes,
                from,
                to,
                call_id,
                cseq,
                max_forwards,
                extra,
                body,
                content_length,
                compact,
                lower,
                sp,
                colon_sp,
            }
        },
    )
}

// ---- exercising whatever parses ------------------------------------------------------

/// Calls every accessor and typed view, and the editor; must not panic.
fn exercise(m: &Message) {
    let _ = (m.method(), m.method_bytes(), m.status_code(), m.reason());
    let _ = (
        m.call_id(),
        m.cseq(),
        m.from_tag(),
        m.to_tag(),
        m.max_forwards(),
    );
    let _ = (m.content_length(), m.body(), m.via_count(), m.route_count());
    if let Some(u) = m.request_uri_parsed() {
        let _ = (
            u.user(),
            u.password(),
            u.host(),
            u.port(),
            u.params().count(),
        );
        let _ = (
            u.headers().count(),
            u.effective_transport(),
            u.port_or_default(),
        );
    }
    for v in m.vias().flatten() {
        let _ = (v.host(), v.port(), v.branch(), v.rport(), v.received_ip());
        let _ = (v.maddr(), v.ttl(), v.response_target(), v.params().count());
    }
    for r in m.routes().chain(m.record_routes()).flatten() {
        let _ = (r.display_name_text(), r.uri(), r.tag());
    }
    let _ = (m.from().map(|f| f.uri()), m.to().map(|t| t.uri()));
    let _ = (m.top_via(), m.top_route());
    for h in m.headers() {
        let v = h.value;
        match h.name {
            HeaderName::Contact => {
                if let Ok(Contact::List(l)) = Contact::parse(v) {
                    for c in l {
                        let _ = (c.expires(), c.q(), c.addr.uri());
                    }
                }
            }
            HeaderName::CSeq => drop(CSeq::parse(v)),
            HeaderName::Expires => drop(parse_expires(v)),
            HeaderName::RetryAfter => drop(RetryAfter::parse(v)),
            HeaderName::Authorization | HeaderName::ProxyAuthorization => {
                let _ = Credentials::parse(v).map(|c| c.username());
            }
            _ => drop(option_tags(v).count()),
        }
    }
    assert_eq!(
        &Editor::new(m).finish().expect("no edits")[..],
        m.as_bytes()
    );
    let mut ed = Editor::new(m);
    ed.prepend_via(b"SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx");
    let _ = ed.remove_top_route();
    let _ = ed.set_max_forwards(m.max_forwards().unwrap_or(70).saturating_sub(1));
    let _ = ed.set_request_uri(b"sip:x@10.0.0.2");
    if let Ok(out) = ed.finish() {
        let _ = Message::parse(out).map(|m| exercise_light(&m));
    }
}

fn exercise_light(m: &Message) {
    let _ = (
        m.top_via(),
        m.call_id(),
        m.cseq(),
        m.max_forwards(),
        m.top_route(),
    );
}

/// The parser's fast path and its reference parser agree: whenever the fast path takes
/// a message, the reference parser gives exactly the same message (both framings).
fn fast_path_agrees(b: &[u8]) {
    for framing in [Framing::Datagram, Framing::Stream] {
        let o = ParseOptions {
            framing,
            ..ParseOptions::default()
        };
        if let Some(f) = Message::parse_fast_path(Bytes::copy_from_slice(b), &o) {
            let r = Message::parse_reference(Bytes::copy_from_slice(b), &o);
            assert_eq!(
                r.as_ref(),
                Ok(&f),
                "fast path and reference differ on\n{}",
                String::from_utf8_lossy(b)
            );
        }
    }
}

fn mutate(mut b: Vec<u8>, ops: &[(u16, u8, u8)]) -> Vec<u8> {
    for &(pos, kind, byte) in ops {
        if b.is_empty() {
            b.push(byte);
            continue;
        }
        let p = pos as usize % b.len();
        match kind % 4 {
            0 => b[p] = byte,
            1 => b.insert(p, byte),
            2 => {
                b.remove(p);
            }
            _ => {
                // Interesting bytes for a SIP parser.
                const I: &[u8] = b" \t\r\n:;,<>\"\\%@[]=/0";
                b[p] = I[byte as usize % I.len()];
            }
        }
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn generated_messages_parse_back_to_their_parts(g in msg()) {
        let bytes = g.render();
        fast_path_agrees(&bytes);
        let m = Message::parse(Bytes::from(bytes.clone()))
            .unwrap_or_else(|e| panic!("{e:?} in\n{}", String::from_utf8_lossy(&bytes)));
        let (mname, method) = g.method();
        match &g.start {
            Start::Request { uri, .. } => {
                prop_assert_eq!(m.method(), Some(method));
                prop_assert_eq!(m.method_bytes(), Some(mname.as_bytes()));
                let want = uri.render();
                prop_assert_eq!(m.request_uri(), Some(want.as_bytes()));
                uri.check(&m.request_uri_parsed().unwrap());
            }
            Start::Response { code, reason } => {
                prop_assert_eq!(m.status_code(), Some(*code));
                prop_assert_eq!(m.reason(), Some(reason.as_bytes()));
            }
        }
        prop_assert_eq!(m.via_count(), g.vias.len());
        let vias: Vec<_> = m.vias().map(Result::unwrap).collect();
        prop_assert_eq!(vias.len(), g.vias.len());
        for (v, gv) in vias.iter().zip(&g.vias) {
            gv.check(v);
        }
        prop_assert_eq!(m.top_via_branch(), Some(g.vias[0].branch.as_bytes()));
        prop_assert_eq!(m.route_count(), g.routes.len());
        for (r, gr) in m.routes().map(Result::unwrap).zip(&g.routes) {
            gr.check(&r.uri().unwrap());
        }
        if let Some(first) = g.routes.first() {
            let want = first.render();
            prop_assert_eq!(m.top_route().unwrap().uri_raw(), want.as_bytes());
        }
        prop_assert_eq!(m.call_id(), Some(g.call_id.as_bytes()));
        prop_assert_eq!(m.cseq(), Some((g.cseq, method)));
        prop_assert_eq!(m.cseq_method_bytes(), Some(mname.as_bytes()));
        prop_assert_eq!(m.from_tag(), g.from.tag.as_deref().map(str::as_bytes));
        prop_assert_eq!(m.to_tag(), g.to.tag.as_deref().map(str::as_bytes));
        for (view, gen_) in [(m.from().unwrap(), &g.from), (m.to().unwrap(), &g.to)] {
            gen_.uri.check(&view.uri().unwrap());
            let text = view.display_name_text();
            prop_assert_eq!(text.as_deref(), gen_.display.as_ref().map(|(_, d)| d.as_bytes()));
        }
        prop_assert_eq!(m.max_forwards(), g.max_forwards);
        for (n, v) in &g.extra {
            // Unknown headers are kept verbatim (first of a name).
            let first = g.extra.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).unwrap();
            prop_assert_eq!(m.header_by_name(n), Some(first.1.trim().as_bytes()));
            let _ = v;
        }
        prop_assert_eq!(
            m.content_length(),
            g.content_length.then_some(g.body.len() as u32)
        );
        prop_assert_eq!(m.body(), &g.body[..]);
        prop_assert_eq!(m.message_len(), bytes.len());
        let lines = g.via_split.len() + g.routes.len() + usize::from(g.max_forwards.is_some())
            + 4 + g.extra.len() + usize::from(g.content_length);
        prop_assert_eq!(m.header_count(), lines);
        exercise(&m);
    }

    #[test]
    fn via_and_uri_fast_paths_agree_with_the_reference(
        gv in via(),
        gu in uri(),
        sp in lws(),
        ops in proptest::collection::vec((any::<u16>(), any::<u8>(), any::<u8>()), 0..4),
    ) {
        for text in [gv.render(""), gv.render(sp), gu.render()] {
            for b in [text.clone().into_bytes(), mutate(text.into_bytes(), &ops)] {
                if let Some(f) = Uri::parse_fast(&b) {
                    prop_assert_eq!(Uri::parse_reference(&b), Ok(f));
                }
                if let Some(f) = sip_core::via::Via::parse_fast(&b) {
                    prop_assert_eq!(sip_core::via::Via::parse_reference(&b), Ok(f));
                }
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..600)) {
        fast_path_agrees(&b);
        if let Ok(m) = Message::parse(Bytes::from(b)) {
            exercise(&m);
        }
    }

    #[test]
    fn sip_like_text_never_panics(s in "[A-Za-z0-9 :;,<>\"\\\\%@\\[\\]=/.\\r\\n\\t-]{0,300}") {
        let b = format!("INVITE sip:a@b SIP/2.0\r\n{s}");
        fast_path_agrees(b.as_bytes());
        if let Ok(m) = Message::parse(Bytes::from(b)) {
            exercise(&m);
        }
        {
            let v = s.as_bytes();
            if let Some(f) = Uri::parse_fast(v) {
                prop_assert_eq!(Uri::parse_reference(v), Ok(f));
            }
            if let Some(f) = sip_core::via::Via::parse_fast(v) {
                prop_assert_eq!(sip_core::via::Via::parse_reference(v), Ok(f));
            }
            let _ = Uri::parse(v).map(|u| (u.host(), u.params().count()));
            let _ = sip_core::via::Via::parse(v).map(|x| x.response_target());
            let _ = sip_core::name_addr::NameAddr::parse(v).map(|n| n.display_name_text());
            let _ = Contact::parse(v);
        }
    }

    #[test]
    fn mutated_valid_messages_never_panic(
        g in msg(),
        ops in proptest::collection::vec((any::<u16>(), any::<u8>(), any::<u8>()), 1..8),
    ) {
        let b = mutate(g.render(), &ops);
        fast_path_agrees(&b);
        if let Ok(m) = Message::parse(Bytes::from(b)) {
            exercise(&m);
        }
    }

    #[test]
    fn edits_show_and_leave_every_other_byte_identical(
        g in msg(),
        our_via in via(),
        rr in uri(),
        mf in any::<u8>(),
        new_ruri in uri(),
        drop_route in any::<bool>(),
        extra_value in "[a-z0-9]{1,12}",
    ) {
        let orig = Message::parse(Bytes::from(g.render())).unwrap();
        let src = orig.as_bytes();
        let via_value = our_via.render("");
        let rr_value = format!("<{};lr>", rr.render());
        let mut ed = Editor::new(&orig);
        // (span replaced, bytes inserted), to build the expected output independently.
        let mut expect: Vec<(usize, usize, Vec<u8>)> = Vec::new();
        let hs = orig.headers_start();
        ed.prepend_via(via_value.as_bytes());
        ed.prepend_record_route(&[rr_value.as_bytes()]);
        expect.push((hs, hs, format!("Via: {via_value}\r\nRecord-Route: {rr_value}\r\n").into_bytes()));
        ed.set_max_forwards(mf).unwrap();
        match orig.max_forwards_index() {
            Some(i) => {
                let s = orig.header_at(i).unwrap().value_span;
                expect.push((s.start as usize, s.end as usize, mf.to_string().into_bytes()));
            }
            // Inserted at the top, after the Via and Record-Route.
            None => expect[0].2.extend_from_slice(format!("Max-Forwards: {mf}\r\n").as_bytes()),
        }
        let ruri = new_ruri.render();
        if let Some(s) = orig.request_uri_span() {
            ed.set_request_uri(ruri.as_bytes()).unwrap();
            expect.push((s.start as usize, s.end as usize, ruri.clone().into_bytes()));
        }
        // Each generated Route line holds one value: removing it removes the line.
        let dropped = drop_route && orig.route_count() > 0;
        if dropped {
            ed.remove_top_route().unwrap();
            let line = orig.header_at(orig.top_route_span().unwrap().0).unwrap().line;
            expect.push((line.start as usize, line.end as usize, Vec::new()));
        }
        ed.append_header(b"X-Edited", &[extra_value.as_bytes()]);
        let he = orig.headers_end();
        expect.push((he, he, format!("X-Edited: {extra_value}\r\n").into_bytes()));

        let out = ed.finish().unwrap();
        expect.sort_by_key(|e| (e.0, e.1));
        let mut want = Vec::new();
        let mut pos = 0;
        for (a, b, ins) in &expect {
            want.extend_from_slice(&src[pos..*a]);
            want.extend_from_slice(ins);
            pos = *b;
        }
        want.extend_from_slice(&src[pos..]);
        prop_assert_eq!(&out[..], &want[..]);

        let m = Message::parse(out).unwrap();
        prop_assert_eq!(m.via_count(), orig.via_count() + 1);
        our_via.check(&m.top_via().unwrap());
        prop_assert_eq!(m.top_via_branch(), Some(our_via.branch.as_bytes()));
        let first_rr = m.record_routes().next().unwrap().unwrap();
        rr.check(&first_rr.uri().unwrap());
        prop_assert_eq!(m.max_forwards(), Some(mf));
        if orig.is_request() {
            prop_assert_eq!(m.request_uri(), Some(ruri.as_bytes()));
        }
        prop_assert_eq!(m.route_count(), orig.route_count() - usize::from(dropped));
        if dropped && orig.route_count() > 1 {
            let want = g.routes[1].render();
            prop_assert_eq!(m.top_route().unwrap().uri_raw(), want.as_bytes());
        }
        prop_assert_eq!(m.header_by_name("x-edited"), Some(extra_value.as_bytes()));
        prop_assert_eq!((m.call_id(), m.cseq()), (orig.call_id(), orig.cseq()));
        prop_assert_eq!((m.from_tag(), m.to_tag()), (orig.from_tag(), orig.to_tag()));
        prop_assert_eq!(m.body(), orig.body());
    }
}
