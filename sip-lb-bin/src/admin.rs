//! The admin HTTP interface (bound to loopback by default, optional bearer token):
//!
//! - `GET /api/destinations`: sets and destinations with state, flags, weight, active
//!   calls, outstanding transactions, latency and last probe (JSON);
//! - `POST /api/destinations/{set}/{index or URI}/state` with `{"state":"inactive"}`: set
//!   a destination's state (like `kamcmd dispatcher.set_state`); the URI percent-encoded
//!   (`sip%3A10.0.0.1%3A5060`);
//! - `POST /api/reload`: reload the configuration and destination list;
//! - `GET /metrics`: Prometheus text exposition;
//! - `GET /`: a status page that refreshes itself (open; it passes the `?token=` it was
//!   opened with to the API).
//!
//! With a token configured, everything but `/` needs `Authorization: Bearer TOKEN` or
//! `?token=TOKEN`, else 401.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use sip_dispatch::{ReloadReport, State};

use crate::metrics;
use crate::runtime::Shared;

/// The reload action the admin API triggers.
pub type ReloadFn = Arc<dyn Fn() -> Result<ReloadReport, crate::config::ConfigError> + Send + Sync>;

struct Admin {
    shared: Arc<Shared>,
    token: Option<String>,
    reload: ReloadFn,
}

/// Binds `addr` and serves the admin interface on the current tokio runtime. Returns the
/// bound address.
pub async fn serve(
    addr: SocketAddr,
    token: Option<String>,
    shared: Arc<Shared>,
    reload: ReloadFn,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let admin = Arc::new(Admin {
        shared,
        token,
        reload,
    });
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let admin = admin.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let admin = admin.clone();
                    async move { Ok::<_, Infallible>(admin.handle(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(local)
}

fn reply(code: StatusCode, ctype: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(code)
        .header("content-type", ctype)
        .header("cache-control", "no-store")
        .body(Full::new(body.into()))
        .expect("static response parts")
}

fn json_reply(code: StatusCode, v: serde_json::Value) -> Response<Full<Bytes>> {
    reply(code, "application/json", v.to_string())
}

impl Admin {
    fn authorised(&self, req: &Request<Incoming>) -> bool {
        let Some(t) = &self.token else { return true };
        let bearer = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|v| v.trim().as_bytes().to_vec());
        let query = req.uri().query().and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix("token="))
                .and_then(percent_decode)
        });
        [bearer, query]
            .into_iter()
            .flatten()
            .any(|given| constant_time_eq(&given, t.as_bytes()))
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_string();
        let method = req.method().clone();
        if path == "/" && method == Method::GET {
            return reply(StatusCode::OK, "text/html; charset=utf-8", STATUS_PAGE);
        }
        if !self.authorised(&req) {
            let mut r = json_reply(
                StatusCode::UNAUTHORIZED,
                json!({"error": "bearer token required"}),
            );
            r.headers_mut().insert(
                "www-authenticate",
                hyper::header::HeaderValue::from_static("Bearer realm=\"sip-lb\""),
            );
            return r;
        }
        match (method, path.as_str()) {
            (Method::GET, "/api/destinations") => json_reply(StatusCode::OK, self.destinations()),
            (Method::GET, "/metrics") => {
                reply(StatusCode::OK, metrics::CONTENT_TYPE, self.metrics())
            }
            (Method::POST, "/api/reload") => match (self.reload)() {
                Ok(r) => json_reply(StatusCode::OK, json!({"reloaded": true, "report": r})),
                Err(e) => json_reply(
                    StatusCode::BAD_REQUEST,
                    json!({"reloaded": false, "error": e.to_string()}),
                ),
            },
            (Method::POST, p) if p.starts_with("/api/destinations/") && p.ends_with("/state") => {
                let parts: Vec<&str> = p.trim_matches('/').split('/').collect();
                let body = match req.into_body().collect().await {
                    Ok(b) => b.to_bytes(),
                    Err(_) => {
                        return json_reply(
                            StatusCode::BAD_REQUEST,
                            json!({"error": "unreadable body"}),
                        );
                    }
                };
                self.set_state(&parts, &body)
            }
            _ => json_reply(StatusCode::NOT_FOUND, json!({"error": "not found"})),
        }
    }

    fn set_state(&self, parts: &[&str], body: &[u8]) -> Response<Full<Bytes>> {
        // api / destinations / {set} / {index or URI} / state
        let set = parts.get(2).and_then(|s| s.parse::<u32>().ok());
        let which = parts
            .get(3)
            .and_then(|w| percent_decode(w))
            .and_then(|w| String::from_utf8(w).ok());
        let (Some(set), Some(which), 5) = (set, which, parts.len()) else {
            return json_reply(
                StatusCode::BAD_REQUEST,
                json!({"error": "use /api/destinations/{set}/{index or percent-encoded URI}/state"}),
            );
        };
        let state = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("state").and_then(|s| s.as_str()).map(str::to_string))
            .ok_or("body must be {\"state\": \"active|inactive|disabled|trying\"}")
            .and_then(|s| s.parse::<State>().map_err(|_| "unknown state"));
        let state = match state {
            Ok(s) => s,
            Err(e) => return json_reply(StatusCode::BAD_REQUEST, json!({"error": e})),
        };
        let snap = self.shared.dispatcher.snapshot();
        let found = snap.set(set).and_then(|s| match which.parse::<usize>() {
            Ok(index) => s.destinations().get(index),
            Err(_) => s.destinations().iter().find(|d| d.uri() == which),
        });
        let Some(d) = found else {
            return json_reply(
                StatusCode::NOT_FOUND,
                json!({"error": "no such destination"}),
            );
        };
        let change = d.set_state(state);
        tracing::info!(
            destination = d.uri(),
            state = state.as_str(),
            "state set by admin"
        );
        json_reply(
            StatusCode::OK,
            json!({"uri": d.uri(), "state": d.state(), "changed": change.is_some()}),
        )
    }

    fn destinations(&self) -> serde_json::Value {
        let snap = self.shared.dispatcher.snapshot();
        let sets: Vec<_> = snap
            .sets()
            .iter()
            .map(|s| {
                let ds: Vec<_> = s
                    .destinations()
                    .iter()
                    .enumerate()
                    .map(|(i, d)| {
                        let st = d.stats();
                        json!({
                            "index": i,
                            "uri": d.uri(),
                            "state": st.state,
                            "probing": st.probing,
                            "flags": st.flags,
                            "priority": st.priority,
                            "weight": st.weight,
                            "active_calls": st.active_calls,
                            "outstanding": st.outstanding,
                            "requests": st.requests,
                            "latency_ms": st.latency_us as f64 / 1000.0,
                            "probe_rtt_ms": st.probe_rtt_us as f64 / 1000.0,
                            "last_probe_ok": st.last_probe_ok,
                            "failures": st.failures,
                        })
                    })
                    .collect();
                json!({"set": s.id(), "destinations": ds})
            })
            .collect();
        let t = self.shared.total_stats();
        json!({
            "sets": sets,
            "transactions": {"server": t.server_transactions, "client": t.client_transactions},
            "calls": self.shared.calls.len(),
            "queue": t.queue_len,
        })
    }

    fn metrics(&self) -> String {
        let totals = self.shared.total_stats();
        let e = &self.shared.events;
        metrics::render(&metrics::Input {
            totals: &totals,
            event_totals: metrics::EventTotals {
                state_changes: e.state_changes.load(Relaxed),
                calls_started: e.calls_started.load(Relaxed),
                calls_ended: e.calls_ended.load(Relaxed),
                calls_timed_out: e.calls_timed_out.load(Relaxed),
            },
            events: &metrics::EVENTS,
            active_calls: self.shared.calls.len() as u64,
            dispatcher: &self.shared.dispatcher,
        })
    }
}

/// Decodes `%XX` escapes (and `+` as space, as forms send it); `None` when malformed.
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Compares without an early exit, so response timing does not reveal how much of a
/// guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The status page: static HTML and JavaScript, no external assets. It polls
/// `/api/destinations` every second (passing on the `?token=` it was opened with) and
/// renders one table per set; states are coloured, load is shown as a bar of active calls.
const STATUS_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sip-lb status</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin-bottom:1.5em}th,td{padding:.35em .8em;border-bottom:1px solid #ddd;text-align:left}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.state{font-weight:bold;border-radius:.3em;padding:.1em .5em;color:#fff}
.active{background:#2a2}.trying{background:#d90}.inactive{background:#c22}.disabled{background:#888}
.bar{display:inline-block;height:.7em;background:#58c;vertical-align:middle;margin-right:.4em}
#err{color:#c22}#updated{color:#888;font-size:.85em}
</style></head><body>
<h1>sip-lb</h1>
<p id="summary">loading…</p><p id="err"></p><div id="sets"></div><p id="updated"></p>
<script>
const token = new URLSearchParams(location.search).get('token');
const esc = v => String(v).replace(/[&<>"']/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]));
async function refresh() {
  try {
    const opts = token ? {headers: {'Authorization': 'Bearer ' + token}} : {};
    const r = await fetch('/api/destinations', opts);
    if (!r.ok) throw new Error('HTTP ' + r.status);
    const d = await r.json();
    document.getElementById('err').textContent = '';
    document.getElementById('summary').textContent =
      `${d.calls} active calls, ${d.transactions.server} server / ${d.transactions.client} client transactions, ${d.queue} queued`;
    let html = '';
    for (const s of d.sets) {
      const max = Math.max(1, ...s.destinations.map(x => x.active_calls));
      html += `<h2>Set ${esc(s.set)}</h2><table class="set" data-set="${esc(s.set)}"><tr><th>#</th><th>destination</th><th>state</th><th>flags</th><th>priority</th><th>weight</th><th>active calls</th><th>outstanding</th><th>requests</th><th>latency ms</th><th>last probe</th></tr>`;
      for (const x of s.destinations) {
        const w = Math.round(80 * Math.max(0, x.active_calls) / max);
        const probe = x.last_probe_ok === null ? '–' : (x.last_probe_ok ? 'ok' : 'failed') + (x.probe_rtt_ms ? ` (${x.probe_rtt_ms.toFixed(1)} ms)` : '');
        html += `<tr class="dest" data-uri="${esc(x.uri)}"><td class="num">${esc(x.index)}</td><td>${esc(x.uri)}</td>`
          + `<td><span class="state ${esc(x.state)}">${esc(x.state)}${x.probing ? ' (probing)' : ''}</span></td>`
          + `<td class="num">${esc(x.flags)}</td><td class="num">${esc(x.priority)}</td><td class="num">${esc(x.weight)}</td>`
          + `<td><span class="bar" style="width:${w}px"></span>${esc(x.active_calls)}</td><td class="num">${esc(x.outstanding)}</td>`
          + `<td class="num">${esc(x.requests)}</td><td class="num">${Number(x.latency_ms).toFixed(1)}</td><td>${esc(probe)}</td></tr>`;
      }
      html += '</table>';
    }
    document.getElementById('sets').innerHTML = html;
    document.getElementById('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
  } catch (e) { document.getElementById('err').textContent = 'cannot reach the API: ' + e; }
}
refresh(); setInterval(refresh, 1000);
</script></body></html>
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use sip_dispatch::{DestinationList, Dispatcher};
    use sip_proxy::{CallTable, ProxyStats};

    const LIST: &str =
        "1 sip:127.0.0.1:5081 0 0 weight=3\n1 sip:127.0.0.1:5082\n2 sip:[::1]:5083\n";

    struct Server {
        // Dropped last: stops the server's tasks.
        _rt: tokio::runtime::Runtime,
        addr: SocketAddr,
        shared: Arc<Shared>,
        list: Arc<Mutex<String>>,
    }

    fn start(token: Option<&str>) -> Server {
        let dispatcher = Arc::new(Dispatcher::new(
            DestinationList::parse_kamailio(LIST).unwrap(),
        ));
        let shared = Arc::new(Shared {
            dispatcher: dispatcher.clone(),
            calls: Arc::new(CallTable::new()),
            stats: vec![Mutex::new(ProxyStats::default())],
            events: Default::default(),
        });
        let list = Arc::new(Mutex::new(LIST.to_string()));
        let reload: ReloadFn = {
            let list = list.clone();
            Arc::new(move || {
                let text = list.lock().unwrap().clone();
                let l = DestinationList::parse_kamailio(&text).map_err(|e| {
                    crate::config::ConfigError::List {
                        file: "test.list".into(),
                        line: e.line,
                        field: e.field.to_string(),
                        message: e.message,
                    }
                })?;
                Ok(dispatcher.reload(l))
            })
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let addr = rt
            .block_on(serve(
                "127.0.0.1:0".parse().unwrap(),
                token.map(str::to_string),
                shared.clone(),
                reload,
            ))
            .unwrap();
        assert!(addr.ip().is_loopback());
        Server {
            _rt: rt,
            addr,
            shared,
            list,
        }
    }

    struct Reply {
        code: u16,
        head: String,
        body: String,
    }

    fn http(addr: SocketAddr, method: &str, path: &str, headers: &str, body: &str) -> Reply {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        Reply {
            code: head.split(' ').nth(1).unwrap().parse().unwrap(),
            head: head.to_ascii_lowercase(),
            body: body.to_string(),
        }
    }

    fn get_json(addr: SocketAddr, path: &str, headers: &str) -> serde_json::Value {
        let r = http(addr, "GET", path, headers, "");
        assert_eq!(r.code, 200, "{}", r.body);
        assert!(
            r.head.contains("content-type: application/json"),
            "{}",
            r.head
        );
        serde_json::from_str(&r.body).unwrap()
    }

    #[test]
    fn destinations_state_changes_and_reload() {
        let s = start(None);
        s.shared.dispatcher.snapshot().sets()[0].destinations()[0].call_started();
        let d = get_json(s.addr, "/api/destinations", "");
        let set1 = &d["sets"][0];
        assert_eq!(set1["set"], 1);
        assert_eq!(set1["destinations"][0]["uri"], "sip:127.0.0.1:5081");
        assert_eq!(set1["destinations"][0]["weight"], 3);
        assert_eq!(set1["destinations"][0]["active_calls"], 1);
        assert_eq!(set1["destinations"][0]["state"], "active");
        assert_eq!(d["sets"][1]["destinations"][0]["uri"], "sip:[::1]:5083");
        for key in [
            "flags",
            "priority",
            "outstanding",
            "requests",
            "latency_ms",
            "last_probe_ok",
        ] {
            assert!(set1["destinations"][1].get(key).is_some(), "{key}");
        }
        assert_eq!(d["calls"], 0);

        // By index, then by percent-encoded URI.
        let r = http(
            s.addr,
            "POST",
            "/api/destinations/1/1/state",
            "",
            r#"{"state":"inactive"}"#,
        );
        assert_eq!(r.code, 200, "{}", r.body);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(
            (v["changed"].as_bool(), v["state"].as_str()),
            (Some(true), Some("inactive"))
        );
        let r = http(
            s.addr,
            "POST",
            "/api/destinations/2/sip%3A%5B%3A%3A1%5D%3A5083/state",
            "",
            r#"{"state":"disabled"}"#,
        );
        assert_eq!(r.code, 200, "{}", r.body);
        let d = get_json(s.addr, "/api/destinations", "");
        assert_eq!(d["sets"][0]["destinations"][1]["state"], "inactive");
        assert_eq!(d["sets"][1]["destinations"][0]["state"], "disabled");

        // Mistakes.
        for (path, body, code) in [
            ("/api/destinations/1/9/state", r#"{"state":"active"}"#, 404),
            ("/api/destinations/7/0/state", r#"{"state":"active"}"#, 404),
            (
                "/api/destinations/1/sip%3Anobody/state",
                r#"{"state":"active"}"#,
                404,
            ),
            ("/api/destinations/1/0/state", r#"{"state":"asleep"}"#, 400),
            ("/api/destinations/1/0/state", "not json", 400),
            ("/api/destinations/x/0/state", r#"{"state":"active"}"#, 400),
            (
                "/api/destinations/1/%zz/state",
                r#"{"state":"active"}"#,
                400,
            ),
        ] {
            let r = http(s.addr, "POST", path, "", body);
            assert_eq!(r.code, code, "{path} {body}: {}", r.body);
            assert!(r.body.contains("error"), "{}", r.body);
        }
        assert_eq!(http(s.addr, "GET", "/nothing", "", "").code, 404);
        assert_eq!(
            http(s.addr, "DELETE", "/api/destinations", "", "").code,
            404
        );

        // Reload: a destination added, the state of kept ones kept.
        s.list.lock().unwrap().push_str("1 sip:127.0.0.1:5084\n");
        let r = http(s.addr, "POST", "/api/reload", "", "");
        assert_eq!(r.code, 200, "{}", r.body);
        assert!(r.body.contains("\"reloaded\":true"), "{}", r.body);
        let d = get_json(s.addr, "/api/destinations", "");
        let uris: Vec<&str> = d["sets"][0]["destinations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["uri"].as_str().unwrap())
            .collect();
        assert!(uris.contains(&"sip:127.0.0.1:5084"), "{uris:?}");
        assert_eq!(d["sets"][0]["destinations"][1]["state"], "inactive");
        *s.list.lock().unwrap() = "1 nonsense\n".into();
        let r = http(s.addr, "POST", "/api/reload", "", "");
        assert_eq!(r.code, 400, "{}", r.body);
        assert!(r.body.contains("\"reloaded\":false"), "{}", r.body);
    }

    #[test]
    fn metrics_are_served_in_the_exposition_format() {
        let s = start(None);
        s.shared.stats[0].lock().unwrap().requests_by_method[0] = 42;
        s.shared
            .events
            .calls_started
            .store(3, std::sync::atomic::Ordering::Relaxed);
        let r = http(s.addr, "GET", "/metrics", "", "");
        assert_eq!(r.code, 200);
        assert!(
            r.head.contains("content-type: text/plain; version=0.0.4"),
            "{}",
            r.head
        );
        assert!(
            r.body
                .contains("# TYPE siplb_requests_received_total counter\n")
        );
        assert!(
            r.body
                .contains("siplb_requests_received_total{method=\"INVITE\"} 42\n")
        );
        assert!(r.body.contains("siplb_calls_started_total 3\n"));
        assert!(
            r.body
                .contains("siplb_destination_up{set=\"2\",uri=\"sip:[::1]:5083\"} 1\n"),
            "{}",
            r.body
        );
    }

    #[test]
    fn a_token_guards_everything_but_the_page() {
        let s = start(Some("s3cret"));
        for (method, path) in [
            ("GET", "/api/destinations"),
            ("GET", "/metrics"),
            ("POST", "/api/reload"),
            ("POST", "/api/destinations/1/0/state"),
        ] {
            let r = http(s.addr, method, path, "", r#"{"state":"inactive"}"#);
            assert_eq!(r.code, 401, "{method} {path}");
            assert!(r.head.contains("www-authenticate: bearer"), "{}", r.head);
            let r = http(s.addr, method, path, "Authorization: Bearer wrong\r\n", "");
            assert_eq!(r.code, 401, "{method} {path}");
            let r = http(s.addr, method, &format!("{path}?token=s3cre"), "", "");
            assert_eq!(r.code, 401, "{method} {path}");
        }
        get_json(
            s.addr,
            "/api/destinations",
            "Authorization: Bearer s3cret\r\n",
        );
        get_json(s.addr, "/api/destinations?token=s3cret", "");
        get_json(s.addr, "/api/destinations?x=1&token=s3cre%74", "");
        assert_eq!(
            http(s.addr, "GET", "/metrics?token=s3cret", "", "").code,
            200
        );
        // State is unchanged by the refused POST.
        assert_eq!(
            s.shared.dispatcher.snapshot().sets()[0].destinations()[0].state(),
            State::Active
        );
        let page = http(s.addr, "GET", "/", "", "");
        assert_eq!(page.code, 200);
        assert!(page.head.contains("text/html"));
        assert!(page.body.contains("/api/destinations"));
        assert!(!page.body.contains("s3cret"));
    }

    #[test]
    fn helpers() {
        assert_eq!(percent_decode("sip%3Aa%40b+c").unwrap(), b"sip:a@b c");
        assert!(percent_decode("%4").is_none());
        assert!(percent_decode("%g0").is_none());
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    /// Loads the status page in headless Chromium and checks that it rendered the live
    /// destinations (rows filled in by the page's own script from the API), states
    /// included, passing the token it was opened with.
    #[test]
    fn the_status_page_renders_live_destinations_in_chromium() {
        let browser = ["chromium", "chromium-browser"].into_iter().find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok()
        });
        let Some(browser) = browser else {
            eprintln!(
                "SKIPPED the_status_page_renders_live_destinations_in_chromium: no chromium \
                 (apt-get install chromium)"
            );
            return;
        };
        let s = start(Some("pagetoken"));
        let snap = s.shared.dispatcher.snapshot();
        snap.sets()[0].destinations()[1].set_state(State::Inactive);
        for _ in 0..7 {
            snap.sets()[0].destinations()[0].call_started();
        }
        let profile = std::env::temp_dir().join(format!("sip-lb-chromium-{}", std::process::id()));
        let mut child = std::process::Command::new(browser)
            .args([
                "--headless",
                "--disable-gpu",
                "--no-sandbox",
                "--no-first-run",
                "--disable-dev-shm-usage",
                "--virtual-time-budget=5000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("http://{}/?token=pagetoken", s.addr))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut dom = String::new();
            let _ = stdout.read_to_string(&mut dom);
            dom
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if child.try_wait().unwrap().is_none() {
            // Our own child, by its handle (its PID).
            let _ = child.kill();
            let _ = child.wait();
        }
        let dom = reader.join().unwrap();
        assert!(
            dom.contains("<p id=\"err\"></p>"),
            "the page reports an error: {dom}"
        );
        let _ = std::fs::remove_dir_all(&profile);
        // Only what the script rendered, not the script's own text.
        let dom = dom
            .split_once("<div id=\"sets\">")
            .and_then(|(_, rest)| rest.split_once("</div>"))
            .map(|(sets, _)| sets.to_string())
            .unwrap_or_else(|| panic!("no rendered sets in {dom}"));
        assert_eq!(dom.matches("<tr class=\"dest\"").count(), 3, "{dom}");
        for uri in ["sip:127.0.0.1:5081", "sip:127.0.0.1:5082", "sip:[::1]:5083"] {
            assert!(
                dom.contains(&format!("data-uri=\"{uri}\"")),
                "{uri} in {dom}"
            );
        }
        assert!(
            dom.contains("<span class=\"state inactive\">inactive</span>"),
            "{dom}"
        );
        assert_eq!(
            dom.matches("<span class=\"state active\">active</span>")
                .count(),
            2,
            "{dom}"
        );
        assert!(dom.contains("</span>7</td>"), "active calls: {dom}");
        assert!(dom.contains("<h2>Set 2</h2>"), "{dom}");
    }
}
