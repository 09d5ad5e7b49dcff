//! `sip-lb`: the SIP load balancer. See README.md for the configuration and the admin API.
//!
//! ```text
//! sip-lb --listen udp:127.0.0.1:5060 --dispatcher-list FILE --set 1 --algorithm 4 [--stateless] [--admin 127.0.0.1:9060]
//! sip-lb --config sip-lb.toml
//! sip-lb check-config sip-lb.toml
//! sip-lb demo [--duration S] [--rate R] [--algorithm A]
//! ```

mod admin;
mod cli;
mod config;
mod demo;
mod metrics;
mod runtime;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use cli::{Cli, Command};
use config::{Config, LogFormat};
use sip_dispatch::Dispatcher;

fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match cfg.log.format {
        LogFormat::Json => b.json().init(),
        LogFormat::Text => b.init(),
    }
}

/// glibc's thread arenas grow and shrink their heaps with `mprotect` as buffers come and go
/// (about one system call every three calls at 300 calls/s); a 16 MiB pad on every growth
/// keeps them grown. Untouched pad costs address space, not memory.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt(3) only changes a tunable of glibc's allocator; it is called once,
    // before any other thread exists, with a valid parameter and value.
    unsafe {
        libc::mallopt(libc::M_TOP_PAD, 16 << 20);
    }
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::CheckConfig { file }) => match Config::load(file) {
            Ok(cfg) => {
                print!("{}", cfg.to_toml());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(1)
            }
        },
        Some(Command::Demo {
            duration,
            rate,
            algorithm,
        }) => match demo::run(*duration, *rate, algorithm) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sip-lb demo: {e}");
                ExitCode::from(1)
            }
        },
        None => {
            let cfg = match cli.build_config() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("sip-lb: {e}");
                    return ExitCode::from(1);
                }
            };
            init_logging(&cfg);
            match serve(cfg, None) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    eprintln!("sip-lb: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// A handle that stops a running balancer (used by the demo).
#[derive(Clone, Default)]
pub struct StopHandle(Arc<tokio::sync::Notify>);

impl StopHandle {
    /// Asks the balancer to stop.
    pub fn stop(&self) {
        self.0.notify_one();
    }
}

/// What a started balancer reports back (used by the demo).
pub struct Started {
    /// The admin address, when serving.
    pub admin: Option<SocketAddr>,
    /// Shared runtime state.
    pub shared: Arc<runtime::Shared>,
}

/// Why the balancer could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration or the destination list it names is wrong.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// A file the configuration names cannot be read.
    #[error("{field} {}: {source}", path.display())]
    Read {
        /// The configuration field naming it (`tls.cert`).
        field: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// TLS certificates or keys that do not load.
    #[error("{field}: {source}")]
    Tls {
        /// The configuration fields (`tls.cert/tls.key`).
        field: &'static str,
        /// Why.
        #[source]
        source: sip_transport::Error,
    },
    /// A socket, thread or the admin listener could not be set up.
    #[error("{what}: {source}")]
    Start {
        /// What (`cannot start the workers and listeners`, `admin 127.0.0.1:9090`).
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn read_file(field: &'static str, path: &std::path::Path) -> Result<Vec<u8>, ServeError> {
    std::fs::read(path).map_err(|source| ServeError::Read {
        field,
        path: path.to_path_buf(),
        source,
    })
}

/// Runs the balancer until SIGTERM/SIGINT (or `control`'s stop): workers, admin HTTP,
/// SIGHUP reload.
pub fn serve(
    cfg: Config,
    control: Option<(StopHandle, std::sync::mpsc::Sender<Started>)>,
) -> Result<(), ServeError> {
    let list = cfg.destination_list()?;
    // The slot table of the hash algorithms costs up to 512 KiB and 0.2 s per set to
    // build (64 weighted destinations): only for an algorithm that hashes.
    let algorithm = cfg.dispatcher.algorithm.0;
    let options = sip_dispatch::DispatcherOptions {
        hash_slots: algorithm.is_hash() || algorithm == sip_dispatch::Algorithm::Sticky,
        ..sip_dispatch::DispatcherOptions::default()
    };
    let dispatcher = Arc::new(Dispatcher::with_options(list, options));
    if cfg.proxy.cookie_key.is_none() {
        tracing::warn!(
            "no proxy.cookie_key configured: using a random one; dialogs will not survive a restart or move between instances"
        );
    }
    let mut stream = sip_transport::StreamConfig::default();
    stream.limits.max_message_size = cfg.limits.max_message_size;
    stream.limits.max_connections = cfg.limits.max_connections;
    stream.limits.max_connections_per_ip = cfg.limits.max_connections_per_ip;
    if let (Some(c), Some(k)) = (&cfg.tls.cert, &cfg.tls.key) {
        let (cert, key) = (read_file("tls.cert", c)?, read_file("tls.key", k)?);
        stream.tls_server = Some(
            sip_transport::tls::server_config_from_pem(&cert, &key).map_err(|source| {
                ServeError::Tls {
                    field: "tls.cert/tls.key",
                    source,
                }
            })?,
        );
    }
    if let Some(ca) = &cfg.tls.ca {
        let pem = read_file("tls.ca", ca)?;
        stream.tls_client = Some(sip_transport::tls::client_config_from_ca_pem(&pem).map_err(
            |source| ServeError::Tls {
                field: "tls.ca",
                source,
            },
        )?);
    }
    let spec = runtime::RuntimeSpec {
        listeners: cfg
            .proxy
            .listen
            .iter()
            .map(|l| (l.transport, l.addr))
            .collect(),
        workers: cfg.worker_count(),
        proxy: cfg.proxy_config(),
        drain: Duration::from_secs(cfg.proxy.drain_s),
        stream,
        linger: Duration::from_micros(cfg.proxy.linger_us),
    };
    let rt =
        runtime::Runtime::start(spec, dispatcher.clone()).map_err(|source| ServeError::Start {
            what: "cannot start the workers and listeners".into(),
            source,
        })?;
    tracing::info!(
        udp = ?rt.udp_addrs(),
        streams = ?rt.stream_addrs(),
        workers = cfg.worker_count(),
        mode = ?cfg.proxy.mode,
        algorithm = cfg.dispatcher.algorithm.0.name(),
        "sip-lb running"
    );
    let shared = rt.shared.clone();
    let main_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| ServeError::Start {
            what: "the admin runtime".into(),
            source,
        })?;
    let cfg = Arc::new(std::sync::Mutex::new(cfg));
    let reload = {
        let cfg = cfg.clone();
        let dispatcher = dispatcher.clone();
        Arc::new(
            move || -> Result<sip_dispatch::ReloadReport, config::ConfigError> {
                let c = cfg.lock().unwrap_or_else(|e| e.into_inner());
                let fresh = match &c.origin {
                    Some(p) => {
                        let mut n = Config::load(p)?;
                        // A list given on the command line stays in force.
                        if c.dispatcher.list.is_some() && n.dispatcher.list.is_none() {
                            n.dispatcher.list = c.dispatcher.list.clone();
                        }
                        n
                    }
                    None => c.clone(),
                };
                let list = fresh.destination_list()?;
                let report = dispatcher.reload(list);
                tracing::info!(
                    added = report.added.len(),
                    removed = report.removed.len(),
                    changed = report.changed.len(),
                    kept = report.kept,
                    "destinations reloaded"
                );
                Ok(report)
            },
        ) as admin::ReloadFn
    };
    let (admin_enabled, admin_listen, token) = {
        let c = cfg.lock().unwrap_or_else(|e| e.into_inner());
        (c.admin.enabled, c.admin.listen, c.admin.token.clone())
    };
    let result = main_rt.block_on(async {
        let admin_addr = if admin_enabled {
            let a = admin::serve(admin_listen, token, shared.clone(), reload.clone())
                .await
                .map_err(|source| ServeError::Start {
                    what: format!("admin {admin_listen}"),
                    source,
                })?;
            tracing::info!("admin interface on http://{a}/");
            Some(a)
        } else {
            None
        };
        let stop = control.as_ref().map(|(s, _)| s.clone()).unwrap_or_default();
        if let Some((_, tx)) = &control {
            let _ = tx.send(Started {
                admin: admin_addr,
                shared: shared.clone(),
            });
        }
        wait_for_signals(reload, stop).await;
        Ok::<(), ServeError>(())
    });
    tracing::info!("stopping: draining open transactions");
    rt.shutdown();
    rt.join();
    tracing::info!("stopped");
    result
}

async fn wait_for_signals(reload: admin::ReloadFn, stop: StopHandle) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = stop.0.notified() => return,
            _ = hup.recv() => {
                if let Err(e) = reload() {
                    tracing::error!("reload failed, keeping the current destinations: {e}");
                }
            }
        }
    }
}
