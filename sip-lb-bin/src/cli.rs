//! The command line (clap derive). Both forms, flags only and `--config FILE` with flags
//! overriding the file, build the same [`Config`].
//!
//! ```text
//! sip-lb --listen udp:127.0.0.1:5060 --dispatcher-list FILE --set 1 --algorithm 4 [--stateless] [--admin 127.0.0.1:9060]
//! sip-lb --config sip-lb.toml
//! sip-lb check-config sip-lb.toml
//! sip-lb demo [--duration S] [--rate R] [--algorithm A]
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{AlgorithmSetting, Config, Listen, LogFormat, ModeSetting};

/// A SIP load balancer (Kamailio dispatcher compatible).
#[derive(Parser, Debug)]
#[command(name = "sip-lb", version, about)]
pub struct Cli {
    /// A subcommand; without one, the balancer runs.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Configuration file (TOML); command-line options override it.
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Listener, `udp:`, `tcp:`, `tls:`, `ws:` or `wss:` + IPv4 or [IPv6] address:port
    /// (repeatable; replaces the file's listeners).
    #[arg(long)]
    pub listen: Vec<Listen>,
    /// A Kamailio dispatcher.list file.
    #[arg(long)]
    pub dispatcher_list: Option<PathBuf>,
    /// The destination set to balance over.
    #[arg(long)]
    pub set: Option<u32>,
    /// Algorithm: Kamailio number or name (round-robin, call-id-hash, ...).
    #[arg(long)]
    pub algorithm: Option<String>,
    /// Forward statelessly.
    #[arg(long)]
    pub stateless: bool,
    /// Admin HTTP listener (port 0 picks a free port).
    #[arg(long)]
    pub admin: Option<SocketAddr>,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Receive coalescing in microseconds (`proxy.linger_us`): after a wake-up whose
    /// receive found nothing more waiting, a worker waits this long so that its next
    /// receive takes several datagrams (0: off).
    #[arg(long)]
    pub linger_us: Option<u64>,
    /// Log format.
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log level or filter (`info`, `sip_lb=debug,warn`).
    #[arg(long)]
    pub log_level: Option<String>,
}

/// The subcommands.
#[derive(Subcommand, Debug, PartialEq, Eq)]
pub enum Command {
    /// Validate a configuration file and print the effective configuration.
    CheckConfig {
        /// The file.
        file: PathBuf,
    },
    /// Run the balancer with built-in demo backends and a demo caller on loopback.
    Demo {
        /// Seconds to run.
        #[arg(long, default_value_t = 20)]
        duration: u64,
        /// Calls per second.
        #[arg(long, default_value_t = 20)]
        rate: u32,
        /// Algorithm (number or name).
        #[arg(long, default_value = "round-robin")]
        algorithm: String,
    },
}

/// Why the command line does not make a configuration to run with.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The configuration file is wrong (its message names file, line and field).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A command-line value is wrong.
    #[error("command line: {flag}: {message}")]
    Flag {
        /// The option (`--algorithm`).
        flag: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The combined configuration fails validation.
    #[error("{origin}: {field}: {message}")]
    Invalid {
        /// The file, or `command line`.
        origin: String,
        /// The dotted field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// Nothing to balance over.
    #[error(
        "no destinations: give --dispatcher-list FILE, or a config with [dispatcher] list or destinations (try `sip-lb demo`)"
    )]
    NoDestinations,
}

impl Cli {
    /// The configuration to run with: the file (if any), then the flags over it;
    /// validated, with the destination list read once to prove it parses.
    pub fn build_config(&self) -> Result<Config, CliError> {
        let mut cfg = match &self.config {
            Some(p) => Config::load(p)?,
            None => Config::default(),
        };
        if !self.listen.is_empty() {
            cfg.proxy.listen = self.listen.clone();
        }
        if let Some(l) = &self.dispatcher_list {
            cfg.dispatcher.list = Some(l.clone());
            cfg.dispatcher.destinations.clear();
            if self.config.is_none() {
                cfg.origin = None;
            }
        }
        if let Some(s) = self.set {
            cfg.dispatcher.set = s;
        }
        if let Some(a) = &self.algorithm {
            cfg.dispatcher.algorithm = AlgorithmSetting(a.parse().map_err(|e| CliError::Flag {
                flag: "--algorithm",
                message: format!("{e}"),
            })?);
        }
        if self.stateless {
            cfg.proxy.mode = ModeSetting::Stateless;
        }
        if let Some(a) = self.admin {
            cfg.admin.listen = a;
            cfg.admin.enabled = true;
        }
        if let Some(l) = self.linger_us {
            cfg.proxy.linger_us = l;
        }
        if let Some(w) = self.workers {
            cfg.proxy.workers = w;
        }
        if let Some(f) = self.log_format {
            cfg.log.format = f;
        }
        if let Some(l) = &self.log_level {
            tracing_subscriber::EnvFilter::try_new(l).map_err(|e| CliError::Flag {
                flag: "--log-level",
                message: e.to_string(),
            })?;
            cfg.log.level = l.clone();
        }
        cfg.validate()
            .map_err(|(field, message)| CliError::Invalid {
                origin: cfg.origin_name(),
                field,
                message,
            })?;
        if cfg.dispatcher.list.is_none() && cfg.dispatcher.destinations.is_empty() {
            return Err(CliError::NoDestinations);
        }
        cfg.destination_list()?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use sip_core::Transport;
    use sip_dispatch::Algorithm;

    struct Tmp(PathBuf);
    impl Tmp {
        fn new(name: &str) -> Tmp {
            let d = std::env::temp_dir().join(format!("sip-lb-cli-{}-{name}", std::process::id()));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(
                d.join("dispatcher.list"),
                "1 sip:127.0.0.1:5081\n1 sip:127.0.0.1:5082\n2 sip:127.0.0.1:5083\n",
            )
            .unwrap();
            Tmp(d)
        }
        fn file(&self, f: &str) -> String {
            self.0.join(f).display().to_string()
        }
    }
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("sip-lb").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn parse_err(args: &[&str]) -> String {
        Cli::try_parse_from(std::iter::once("sip-lb").chain(args.iter().copied()))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn the_flag_form_of_the_readme() {
        let t = Tmp::new("flags");
        let list = t.file("dispatcher.list");
        let cli = parse(&[
            "--listen",
            "udp:127.0.0.1:5060",
            "--listen",
            "tcp:[::1]:5070",
            "--dispatcher-list",
            &list,
            "--set",
            "2",
            "--algorithm",
            "4",
            "--stateless",
            "--admin",
            "127.0.0.1:9061",
            "--log-format",
            "json",
            "--log-level",
            "sip_lb=debug,warn",
            "--workers",
            "1",
            "--linger-us",
            "500",
        ]);
        assert_eq!(cli.command, None);
        let cfg = cli.build_config().unwrap();
        assert_eq!((cfg.proxy.workers, cfg.proxy.linger_us), (1, 500));
        assert_eq!(
            cfg.proxy
                .listen
                .iter()
                .map(|l| l.to_string())
                .collect::<Vec<_>>(),
            ["udp:127.0.0.1:5060", "tcp:[::1]:5070"]
        );
        assert_eq!(cfg.proxy.listen[1].transport, Transport::Tcp);
        assert_eq!(cfg.dispatcher.set, 2);
        assert_eq!(cfg.dispatcher.algorithm.0, Algorithm::RoundRobin);
        assert_eq!(cfg.proxy.mode, ModeSetting::Stateless);
        assert_eq!(cfg.admin.listen.to_string(), "127.0.0.1:9061");
        assert!(cfg.admin.enabled);
        assert_eq!(cfg.log.format, LogFormat::Json);
        assert_eq!(cfg.log.level, "sip_lb=debug,warn");
        assert_eq!(cfg.origin, None);
        assert_eq!(cfg.destination_list().unwrap().entries().len(), 3);
        // Names work as well as numbers.
        let cli = parse(&["--dispatcher-list", &list, "--algorithm", "call-id-hash"]);
        assert_eq!(
            cli.build_config().unwrap().dispatcher.algorithm.0,
            Algorithm::CallIdHash
        );
    }

    #[test]
    fn the_config_form_with_flags_overriding_the_file() {
        let t = Tmp::new("config");
        let cfg_path = t.file("lb.toml");
        std::fs::write(
            &cfg_path,
            "[proxy]\nlisten = [\"udp:127.0.0.1:5090\"]\n[dispatcher]\nlist = \"dispatcher.list\"\nalgorithm = \"weight\"\n[admin]\nlisten = \"127.0.0.1:9099\"\n",
        )
        .unwrap();
        let cfg = parse(&["--config", &cfg_path]).build_config().unwrap();
        assert_eq!(cfg.proxy.listen[0].to_string(), "udp:127.0.0.1:5090");
        assert_eq!(cfg.dispatcher.algorithm.0, Algorithm::Weight);
        assert_eq!(cfg.admin.listen.to_string(), "127.0.0.1:9099");
        // The list is relative to the configuration file.
        assert_eq!(cfg.destination_list().unwrap().entries().len(), 3);
        let cfg = parse(&[
            "-c",
            &cfg_path,
            "--algorithm",
            "0",
            "--listen",
            "udp:127.0.0.1:5091",
        ])
        .build_config()
        .unwrap();
        assert_eq!(cfg.dispatcher.algorithm.0, Algorithm::CallIdHash);
        assert_eq!(cfg.proxy.listen.len(), 1);
        assert_eq!(cfg.proxy.listen[0].addr.port(), 5091);
        assert_eq!(cfg.origin.as_deref(), Some(std::path::Path::new(&cfg_path)));
    }

    #[test]
    fn subcommands() {
        assert_eq!(
            parse(&["check-config", "x.toml"]).command,
            Some(Command::CheckConfig {
                file: "x.toml".into()
            })
        );
        assert_eq!(
            parse(&["demo"]).command,
            Some(Command::Demo {
                duration: 20,
                rate: 20,
                algorithm: "round-robin".into()
            })
        );
        assert_eq!(
            parse(&[
                "demo",
                "--duration",
                "5",
                "--rate",
                "50",
                "--algorithm",
                "10"
            ])
            .command,
            Some(Command::Demo {
                duration: 5,
                rate: 50,
                algorithm: "10".into()
            })
        );
    }

    #[test]
    fn error_messages_name_the_problem() {
        let e = parse_err(&["--listen", "sctp:127.0.0.1:5060"]);
        assert!(
            e.contains("--listen") && e.contains("unknown transport `sctp`"),
            "{e}"
        );
        let e = parse_err(&["--listen", "udp:localhost:5060"]);
        assert!(e.contains("IPv6 as [::1]:5060"), "{e}");
        let e = parse_err(&["--admin", "nowhere"]);
        assert!(e.contains("--admin"), "{e}");
        let e = parse_err(&["--log-format", "xml"]);
        assert!(e.contains("text") && e.contains("json"), "{e}");
        let e = parse_err(&["--frobnicate"]);
        assert!(e.contains("--frobnicate"), "{e}");

        let t = Tmp::new("errors");
        let list = t.file("dispatcher.list");
        let e = parse(&["--dispatcher-list", &list, "--algorithm", "fastest"])
            .build_config()
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("command line: --algorithm: "), "{e}");
        let e = parse(&["--dispatcher-list", &list, "--log-level", "a=b=c"])
            .build_config()
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("command line: --log-level: "), "{e}");
        let e = parse(&["--listen", "tcp:127.0.0.1:5060", "--dispatcher-list", &list])
            .build_config()
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "command line: proxy.listen: at least one udp: listener is needed (destinations are reached over UDP)"
        );
        let e = parse(&[
            "--listen",
            "udp:127.0.0.1:5060",
            "--listen",
            "tls:127.0.0.1:5061",
            "--dispatcher-list",
            &list,
        ])
        .build_config()
        .unwrap_err()
        .to_string();
        assert!(e.contains("tls.cert"), "{e}");
        let e = parse(&[]).build_config().unwrap_err().to_string();
        assert!(e.starts_with("no destinations"), "{e}");
        let missing = t.file("missing.list");
        let e = parse(&["--dispatcher-list", &missing])
            .build_config()
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.list"), "{e}");
        std::fs::write(
            t.file("bad.list"),
            "1 sip:127.0.0.1:5081\nx sip:127.0.0.1:5082\n",
        )
        .unwrap();
        let e = parse(&["--dispatcher-list", &t.file("bad.list")])
            .build_config()
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad.list:2:"), "{e}");
        let cfg_path = t.file("lb.toml");
        std::fs::write(&cfg_path, "[proxy]\nworkers = \"two\"\n").unwrap();
        let e = parse(&["--config", &cfg_path])
            .build_config()
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("{cfg_path}:2: proxy.workers: ")),
            "{e}"
        );
    }
}
