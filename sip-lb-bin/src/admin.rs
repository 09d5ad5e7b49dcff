//! The admin HTTP interface (bound to loopback by default, optional bearer token):
//!
//! - `GET /api/destinations`: sets and destinations with state, flags, weight, active
//!   calls, outstanding transactions, latency and last probe (JSON);
//! - `POST /api/destinations/{set}/{index}/state` with `{"state":"inactive"}`: set a
//!   destination's state (like `kamcmd dispatcher.set_state`);
//! - `POST /api/reload`: reload the configuration and destination list;
//! - `GET /metrics`: Prometheus text exposition;
//! - `GET /`: a status page that refreshes itself.

use std::convert::Infallible;
use std::fmt::Write as _;
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
use sip_proxy::output::METHOD_NAMES;

use crate::runtime::Shared;

/// The reload action the admin API triggers.
pub type ReloadFn = Arc<dyn Fn() -> Result<ReloadReport, String> + Send + Sync>;

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
            .and_then(|v| v.strip_prefix("Bearer "));
        let query = req
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")));
        bearer == Some(t.as_str()) || query == Some(t.as_str())
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_string();
        let method = req.method().clone();
        if path == "/" && method == Method::GET {
            return reply(StatusCode::OK, "text/html; charset=utf-8", STATUS_PAGE);
        }
        if !self.authorised(&req) {
            return json_reply(
                StatusCode::UNAUTHORIZED,
                json!({"error": "bearer token required"}),
            );
        }
        match (method, path.as_str()) {
            (Method::GET, "/api/destinations") => json_reply(StatusCode::OK, self.destinations()),
            (Method::GET, "/metrics") => {
                reply(StatusCode::OK, "text/plain; version=0.0.4", self.metrics())
            }
            (Method::POST, "/api/reload") => match (self.reload)() {
                Ok(r) => json_reply(StatusCode::OK, json!({"reloaded": true, "report": r})),
                Err(e) => json_reply(
                    StatusCode::BAD_REQUEST,
                    json!({"reloaded": false, "error": e}),
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
        // api / destinations / {set} / {index} / state
        let (Some(set), Some(index)) = (
            parts.get(2).and_then(|s| s.parse::<u32>().ok()),
            parts.get(3).and_then(|s| s.parse::<usize>().ok()),
        ) else {
            return json_reply(
                StatusCode::BAD_REQUEST,
                json!({"error": "use /api/destinations/{set}/{index}/state"}),
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
        let Some(d) = snap.set(set).and_then(|s| s.destinations().get(index)) else {
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
        let t = self.shared.total_stats();
        let mut o = String::with_capacity(4096);
        let counter = |o: &mut String, name: &str, help: &str, kind: &str| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        counter(
            &mut o,
            "siplb_requests_received_total",
            "SIP requests received, by method.",
            "counter",
        );
        for (i, m) in METHOD_NAMES.iter().enumerate() {
            let _ = writeln!(
                o,
                "siplb_requests_received_total{{method=\"{m}\"}} {}",
                t.requests_by_method[i]
            );
        }
        counter(
            &mut o,
            "siplb_responses_received_total",
            "SIP responses received from destinations, by class.",
            "counter",
        );
        for c in 1..=6 {
            let _ = writeln!(
                o,
                "siplb_responses_received_total{{class=\"{c}xx\"}} {}",
                t.responses_by_class[c]
            );
        }
        counter(
            &mut o,
            "siplb_local_replies_total",
            "Responses sip-lb generated itself, by class.",
            "counter",
        );
        for c in 1..=6 {
            let _ = writeln!(
                o,
                "siplb_local_replies_total{{class=\"{c}xx\"}} {}",
                t.local_replies_by_class[c]
            );
        }
        for (name, help, v) in [
            (
                "siplb_requests_forwarded_total",
                "Requests forwarded (every attempt).",
                t.requests_forwarded,
            ),
            (
                "siplb_responses_forwarded_total",
                "Responses forwarded upstream.",
                t.responses_forwarded,
            ),
            (
                "siplb_rejected_total",
                "Requests rejected by sip-lb (4xx/5xx it sent).",
                t.rejected,
            ),
            (
                "siplb_dropped_total",
                "Messages dropped (malformed responses, stray ACKs, ...).",
                t.dropped,
            ),
            (
                "siplb_failovers_total",
                "Requests moved to another destination.",
                t.failovers,
            ),
            (
                "siplb_timeouts_total",
                "Client transactions that timed out.",
                t.timeouts,
            ),
            (
                "siplb_retransmissions_absorbed_total",
                "Retransmissions absorbed.",
                t.retransmissions_absorbed,
            ),
            (
                "siplb_retransmissions_sent_total",
                "Retransmissions sent by sip-lb's timers.",
                t.retransmissions_sent,
            ),
            (
                "siplb_probes_sent_total",
                "OPTIONS probes sent.",
                t.probes_sent,
            ),
            (
                "siplb_probes_alive_total",
                "Probes answered alive.",
                t.probes_alive,
            ),
            (
                "siplb_probes_failed_total",
                "Probes failed.",
                t.probes_failed,
            ),
            (
                "siplb_queued_total",
                "INVITEs queued by the autonomous queue.",
                t.queued,
            ),
            (
                "siplb_queue_timeouts_total",
                "Queued INVITEs answered 503 at their deadline.",
                t.queue_timeouts,
            ),
            (
                "siplb_destination_state_changes_total",
                "Destination state changes.",
                self.shared.events.state_changes.load(Relaxed),
            ),
            (
                "siplb_calls_started_total",
                "Calls answered.",
                self.shared.events.calls_started.load(Relaxed),
            ),
            (
                "siplb_calls_ended_total",
                "Calls ended by BYE.",
                self.shared.events.calls_ended.load(Relaxed),
            ),
            (
                "siplb_calls_timed_out_total",
                "Calls ended by the dialog timeout.",
                self.shared.events.calls_timed_out.load(Relaxed),
            ),
        ] {
            counter(&mut o, name, help, "counter");
            let _ = writeln!(o, "{name} {v}");
        }
        for (name, help, v) in [
            (
                "siplb_server_transactions",
                "Server transactions open.",
                t.server_transactions,
            ),
            (
                "siplb_client_transactions",
                "Client transactions open.",
                t.client_transactions,
            ),
            (
                "siplb_queue_length",
                "INVITEs waiting in the queue.",
                t.queue_len,
            ),
            (
                "siplb_active_calls",
                "Calls answered and not ended.",
                self.shared.calls.len() as u64,
            ),
        ] {
            counter(&mut o, name, help, "gauge");
            let _ = writeln!(o, "{name} {v}");
        }
        let snap = self.shared.dispatcher.snapshot();
        counter(
            &mut o,
            "siplb_destination_active_calls",
            "Active calls per destination.",
            "gauge",
        );
        for s in snap.sets() {
            for d in s.destinations() {
                let _ = writeln!(
                    o,
                    "siplb_destination_active_calls{{set=\"{}\",uri=\"{}\"}} {}",
                    s.id(),
                    d.uri(),
                    d.stats().active_calls
                );
            }
        }
        counter(
            &mut o,
            "siplb_destination_outstanding",
            "Outstanding transactions per destination.",
            "gauge",
        );
        for s in snap.sets() {
            for d in s.destinations() {
                let _ = writeln!(
                    o,
                    "siplb_destination_outstanding{{set=\"{}\",uri=\"{}\"}} {}",
                    s.id(),
                    d.uri(),
                    d.stats().outstanding
                );
            }
        }
        counter(
            &mut o,
            "siplb_destination_requests_total",
            "Requests sent per destination.",
            "counter",
        );
        for s in snap.sets() {
            for d in s.destinations() {
                let _ = writeln!(
                    o,
                    "siplb_destination_requests_total{{set=\"{}\",uri=\"{}\"}} {}",
                    s.id(),
                    d.uri(),
                    d.stats().requests
                );
            }
        }
        counter(
            &mut o,
            "siplb_destination_up",
            "1 when the destination is usable (active or trying).",
            "gauge",
        );
        for s in snap.sets() {
            for d in s.destinations() {
                let up = matches!(d.state(), State::Active | State::Trying) as u8;
                let _ = writeln!(
                    o,
                    "siplb_destination_up{{set=\"{}\",uri=\"{}\"}} {up}",
                    s.id(),
                    d.uri()
                );
            }
        }
        o
    }
}

const STATUS_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sip-lb status</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin-bottom:1.5em}th,td{padding:.35em .8em;border-bottom:1px solid #ddd;text-align:left}
th{background:#f4f4f4}.active{color:#0a0;font-weight:bold}.trying{color:#c80;font-weight:bold}
.inactive{color:#c00;font-weight:bold}.disabled{color:#888;font-weight:bold}#err{color:#c00}
</style></head><body>
<h1>sip-lb</h1><p id="summary">loading…</p><p id="err"></p><div id="sets"></div>
<script>
const token = new URLSearchParams(location.search).get('token');
async function refresh() {
  try {
    const r = await fetch('/api/destinations' + (token ? '?token=' + encodeURIComponent(token) : ''));
    if (!r.ok) throw new Error('HTTP ' + r.status);
    const d = await r.json();
    document.getElementById('err').textContent = '';
    document.getElementById('summary').textContent =
      `${d.calls} active calls, ${d.transactions.server} server / ${d.transactions.client} client transactions, ${d.queue} queued`;
    let html = '';
    for (const s of d.sets) {
      html += `<h2>Set ${s.set}</h2><table><tr><th>#</th><th>destination</th><th>state</th><th>weight</th><th>active calls</th><th>outstanding</th><th>requests</th><th>latency ms</th><th>last probe</th></tr>`;
      for (const x of s.destinations) {
        html += `<tr class="dest"><td>${x.index}</td><td>${x.uri}</td><td class="${x.state}">${x.state}</td><td>${x.weight}</td><td>${x.active_calls}</td><td>${x.outstanding}</td><td>${x.requests}</td><td>${x.latency_ms.toFixed(1)}</td><td>${x.last_probe_ok === null ? '–' : (x.last_probe_ok ? 'ok' : 'failed')}</td></tr>`;
      }
      html += '</table>';
    }
    document.getElementById('sets').innerHTML = html;
  } catch (e) { document.getElementById('err').textContent = 'cannot reach the API: ' + e; }
}
refresh(); setInterval(refresh, 1000);
</script></body></html>
"#;
