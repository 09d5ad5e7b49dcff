//! Kamailio `dispatcher.list` compatibility: files in the shapes of Kamailio's
//! documentation (written for these tests), comment rules, bad lines, serde and the
//! builder.

use proptest::prelude::*;
use sip_dispatch::*;

/// The shape of the `dispatcher.list` shipped with Kamailio's module documentation:
/// header comments, blank lines, URI parameters, hex and decimal flags, priorities,
/// attributes with unknown keys.
const DOC_SHAPE: &str = "\
#
# dispatcher destination sets (groups)
#

# line format
# setid(int) destination(sip uri) flags(int,opt) priority(int,opt) attributes(str,opt)

# proxies
2 sip:192.0.2.10:5080;transport=tcp 0 10 class=4;prefix=448;strip=2
2 sip:192.0.2.10:5082;px=vx 0 5 duid=abc;socket=udp:192.0.2.1:5060;pipe=p10

# gateways
1 sip:192.0.2.20:7070 0 0 duid=xyz;maxload=20
1 sip:192.0.2.20:7072 0 5
1 sip:192.0.2.20:7074
";

#[test]
fn the_documentation_list_loads_unchanged() {
    let l = DestinationList::parse_kamailio(DOC_SHAPE).unwrap();
    let e = l.entries();
    assert_eq!(e.len(), 5);
    assert_eq!(
        (e[0].set, e[0].uri.as_str(), e[0].flags, e[0].priority),
        (2, "sip:192.0.2.10:5080;transport=tcp", Flags(0), 10)
    );
    assert_eq!(e[0].attrs.other["class"], "4");
    assert_eq!(e[0].attrs.other["prefix"], "448");
    assert_eq!(e[1].attrs.duid.as_deref(), Some("abc"));
    assert_eq!(e[1].attrs.socket.as_deref(), Some("udp:192.0.2.1:5060"));
    assert_eq!(e[1].attrs.other["pipe"], "p10");
    assert_eq!(e[2].attrs.maxload, Some(20));
    assert_eq!((e[3].priority, e[3].attrs.clone()), (5, Attrs::default()));
    assert_eq!((e[4].flags, e[4].priority), (Flags(0), 0));
    // Every line becomes a destination with its target.
    let d = Dispatcher::new(l);
    let x = d.find(2, "sip:192.0.2.10:5080;transport=tcp").unwrap();
    assert_eq!(x.target().transport, sip_core::Transport::Tcp);
    assert_eq!(x.target().port, 5080);
    assert_eq!(
        x.target().socket_addr,
        Some("192.0.2.10:5080".parse().unwrap())
    );
    assert_eq!(
        d.find(1, "sip:192.0.2.20:7074").unwrap().target().port,
        7074
    );
    assert_eq!(
        d.find(2, "sip:192.0.2.10:5082;px=vx")
            .unwrap()
            .target()
            .transport,
        sip_core::Transport::Udp
    );
}

#[test]
fn full_line_examples_of_the_documentation() {
    // "Full line examples" shapes: ping_from in attrs, hex flags 0x8 (probing).
    let text = "1 sip:127.0.0.1:5080 0 0 duid=abc;socket=udp:127.0.0.1:5060;my=xyz;ping_from=sip:myproxy.com\n\
                1 sip:127.0.0.1:5090 0x8 0 socket=udp:127.0.0.1:5060;prefix=49\n";
    let l = DestinationList::parse_kamailio(text).unwrap();
    let e = l.entries();
    assert_eq!(e[0].attrs.ping_from.as_deref(), Some("sip:myproxy.com"));
    assert_eq!(e[0].attrs.other["my"], "xyz");
    assert_eq!(e[1].flags, Flags(8));
    let d = Dispatcher::new(l);
    assert!(d.find(1, "sip:127.0.0.1:5090").unwrap().is_probing());
    assert!(!d.find(1, "sip:127.0.0.1:5080").unwrap().is_probing());
}

#[test]
fn load_balancing_shapes_weight_rweight_cc_and_states() {
    // Shapes of the weight / relative-weight / congestion-control examples, plus every
    // state flag and the domain / IPv6 / sips forms.
    let text = "\
1 sip:gw1.example.com 0 0 weight=50
1 sip:gw2.example.com 0 0 weight=50
2 sip:10.0.0.1:5060 0 0 rweight=50;weight=20;cc=1
2 sip:10.0.0.2:5060 0 0 rweight=50;weight=20;cc=1
3 sip:[2001:db8::1]:5070 1 0
3 sips:secure.example.com 2 0
3 sip:10.0.0.9;transport=udp 4
3 sip:10.0.0.10 48
3 sip:10.0.0.11 0x0C 7 WEIGHT=3;MaxLoad=9;obproxy=sip:op.example.com
";
    let l = DestinationList::parse_kamailio(text).unwrap();
    let e = l.entries();
    assert_eq!(e[0].attrs.weight, Some(50));
    assert_eq!(
        (e[2].attrs.rweight, e[2].attrs.weight, e[2].attrs.cc),
        (Some(50), Some(20), Some(1))
    );
    assert_eq!(e[8].flags, Flags(12));
    assert_eq!(e[8].priority, 7);
    assert_eq!(
        (e[8].attrs.weight, e[8].attrs.maxload),
        (Some(3), Some(9)),
        "attribute names are case-insensitive, as in Kamailio"
    );
    assert_eq!(e[8].attrs.obproxy.as_deref(), Some("sip:op.example.com"));
    let d = Dispatcher::new(l);
    let st = |u: &str| d.find(3, u).unwrap().state();
    assert_eq!(st("sip:[2001:db8::1]:5070"), State::Inactive);
    assert_eq!(st("sips:secure.example.com"), State::Trying);
    assert_eq!(st("sip:10.0.0.9;transport=udp"), State::Disabled);
    assert_eq!(st("sip:10.0.0.10"), State::Active);
    assert_eq!(st("sip:10.0.0.11"), State::Disabled);
    let v6 = d.find(3, "sip:[2001:db8::1]:5070").unwrap();
    assert_eq!(
        v6.target().socket_addr,
        Some("[2001:db8::1]:5070".parse().unwrap())
    );
    let tls = d.find(3, "sips:secure.example.com").unwrap();
    assert_eq!(
        (tls.target().transport, tls.target().port),
        (sip_core::Transport::Tls, 5061)
    );
    assert_eq!(tls.target().socket_addr, None);
    // Flag 32 (never probe) and disabled destinations are never probe candidates.
    let mut p = Vec::new();
    d.probe_candidates(ProbeMode::All, std::time::Instant::now(), &mut p);
    assert!(
        p.iter()
            .all(|x| x.uri() != "sip:10.0.0.10" && x.uri() != "sip:10.0.0.11")
    );
    assert_eq!(p.len(), 6);
}

#[test]
fn comments_blanks_and_trailing_text_as_kamailio() {
    let text = "\
   # indented comment\n\
\t\n\
1 sip:10.0.0.1#comment right after the URI\n\
1 sip:10.0.0.2 8#comment after flags\n\
1 sip:10.0.0.3 0 3 # comment after priority\n\
1 sip:10.0.0.4 0 0 weight=2 trailing words are ignored, as Kamailio ignores them\r\n\
1 sip:10.0.0.5 0 0 duid=a#b\n\
  1\tsip:10.0.0.6\t0\t0\tweight=3;\n";
    let l = DestinationList::parse_kamailio(text).unwrap();
    let e = l.entries();
    assert_eq!(e.len(), 6);
    assert_eq!(e[0].uri, "sip:10.0.0.1");
    assert_eq!(e[1].flags, Flags(8));
    assert_eq!(e[2].priority, 3);
    assert_eq!(e[3].attrs.weight, Some(2));
    assert_eq!(
        e[4].attrs.duid.as_deref(),
        Some("a#b"),
        "the attribute field runs to a blank"
    );
    assert_eq!(e[5].attrs.weight, Some(3));
    assert!(
        DestinationList::parse_kamailio("")
            .unwrap()
            .entries()
            .is_empty()
    );
}

#[test]
fn quoted_attribute_values() {
    let l = DestinationList::parse_kamailio("1 sip:10.0.0.1 0 0 x=\"a;b\";weight=4\n").unwrap();
    assert_eq!(l.entries()[0].attrs.other["x"], "a;b");
    assert_eq!(l.entries()[0].attrs.weight, Some(4));
}

#[test]
fn bad_lines_name_line_and_field() {
    let cases: &[(&str, usize, &str)] = &[
        ("x sip:a", 1, "setid"),
        ("-1 sip:a", 1, "setid"),
        ("99999999999 sip:a", 1, "setid"),
        ("1", 1, "destination"),
        ("1 # only a comment", 1, "destination"),
        ("1 http://a", 1, "destination"),
        ("1 sip:", 1, "destination"),
        ("1 tel:+123", 1, "destination"),
        ("1 sip:a zz", 1, "flags"),
        ("1 sip:a 0xZZ", 1, "flags"),
        ("1 sip:a 0 high", 1, "priority"),
        ("\n\n1 sip:a 0 0 weight=heavy", 3, "attrs"),
        ("1 sip:a 0 0 =3", 1, "attrs"),
        ("1 sip:a 0 0 maxload=-1", 1, "attrs"),
        ("1 sip:a\n# fine\n2 sip:b\n3 sip:c 0 0 cc=x", 4, "attrs"),
    ];
    for &(text, line, field) in cases {
        let e = DestinationList::parse_kamailio(text).unwrap_err();
        assert_eq!((e.line, e.field), (line, field), "{text:?}: {e}");
        assert!(
            e.to_string()
                .starts_with(&format!("line {line}: {field}: "))
        );
    }
}

#[test]
fn builder_serde_and_validation() {
    let l = DestinationList::new()
        .with(1, "sip:10.0.0.1")
        .unwrap()
        .with(1, "sip:[::1]:5070")
        .unwrap();
    assert_eq!(l.entries().len(), 2);
    assert_eq!(
        DestinationList::new().with(1, "mailto:x@y").unwrap_err(),
        BadUri::NotSip {
            uri: "mailto:x@y".into()
        }
    );
    assert!(matches!(
        DestinationList::new().with(1, "sip:a b").unwrap_err(),
        BadUri::Invalid { .. }
    ));
    let specs = |uris: &[&str]| {
        uris.iter()
            .map(|u| DestinationSpec {
                set: 1,
                uri: u.to_string(),
                flags: Flags(0),
                priority: 0,
                attrs: Attrs::default(),
            })
            .collect::<Vec<_>>()
    };
    let e = DestinationList::from_specs(specs(&["sip:10.0.0.1", "tel:+1", "sip:10.0.0.2"]))
        .unwrap_err();
    assert_eq!(e.index, 1);
    assert_eq!(
        e.to_string(),
        "destination 1: `tel:+1` is not a sip: or sips: URI with a host"
    );
    let json = serde_json::to_string(&l).unwrap();
    let back: DestinationList = serde_json::from_str(&json).unwrap();
    assert_eq!(back, l);
    // Deserialising checks the URIs too, so a Dispatcher is never built from a bad one.
    let bad = r#"{"entries":[{"set":1,"uri":"http://x"}]}"#;
    assert!(serde_json::from_str::<DestinationList>(bad).is_err());
    let spec: DestinationSpec = serde_json::from_str(
        r#"{"set":3,"uri":"sip:10.1.1.1","priority":2,"attrs":{"weight":5,"duid":"x"}}"#,
    )
    .unwrap();
    assert_eq!(spec.attrs.weight, Some(5));
    assert_eq!(spec.flags, Flags(0));
    assert!(
        serde_json::from_str::<DestinationSpec>(r#"{"set":1,"uri":"sip:a","wieght":1}"#).is_err(),
        "unknown fields are errors"
    );
    let l = DestinationList::from_specs(vec![spec]).unwrap();
    assert_eq!(
        DestinationList::parse_kamailio(&l.to_kamailio()).unwrap(),
        l
    );
}

fn arb_spec() -> impl Strategy<Value = DestinationSpec> {
    (
        0u32..5,
        prop::sample::select(vec![
            "sip:10.0.0.1",
            "sip:10.0.0.2:5070;transport=tcp",
            "sips:gw.example.com",
            "sip:[2001:db8::2]:5080",
        ]),
        0u32..64,
        0i32..100,
        prop::option::of(1u32..100),
        prop::option::of("[a-z]{1,6}"),
        prop::option::of(0u32..50),
    )
        .prop_map(
            |(set, uri, flags, priority, weight, duid, maxload)| DestinationSpec {
                set,
                uri: uri.to_string(),
                flags: Flags(flags),
                priority,
                attrs: Attrs {
                    weight,
                    duid,
                    maxload,
                    ..Attrs::default()
                },
            },
        )
}

proptest! {
    /// Writing a list in Kamailio's format and reading it back gives the same list.
    #[test]
    fn kamailio_text_round_trips(specs in prop::collection::vec(arb_spec(), 0..12)) {
        let l = DestinationList::from_specs(specs).unwrap();
        let text = l.to_kamailio();
        prop_assert_eq!(DestinationList::parse_kamailio(&text).unwrap(), l);
    }

    /// Arbitrary text never panics the parser; errors name a line inside the text.
    #[test]
    fn arbitrary_text_never_panics(text in "[ -~\t\n#;=]{0,200}") {
        if let Err(e) = DestinationList::parse_kamailio(&text) {
            prop_assert!(e.line >= 1 && e.line <= text.lines().count().max(1));
        }
    }
}
