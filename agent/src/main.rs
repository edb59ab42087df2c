//! `vigil-agent`: parses the command line, sets up logging, validates the configuration
//! without binding anything (exit 64 with every problem named), then hands over to the
//! library. Exit codes: 0 ok, 64 bad usage or configuration, 1 runtime failure (for
//! `status`: the agent is not running or has not reached a collector in time).

#![forbid(unsafe_code)]

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use vigil_agent::config::{AgentConfig, ScrapeConfig};
use vigil_shared::duration::NonZeroDuration;

#[derive(Parser)]
#[command(name = "vigil-agent", version, about = "Vigil's edge agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent.
    Run(Box<RunArgs>),
    /// Show the running agent's state; exits 1 when it is not running or not shipping.
    Status {
        #[arg(long, default_value = "/run/vigil-agent/status.sock")]
        status_socket: PathBuf,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
        /// Not live when no collector acknowledged anything for this long.
        #[arg(long, default_value = "2m")]
        max_ack_age: NonZeroDuration,
    },
    /// Validate a configuration file and exit (64 when invalid).
    CheckConfig {
        #[arg(long)]
        config: PathBuf,
    },
    /// List or run the remediation actions of a configuration.
    #[command(subcommand)]
    Actions(ActionsCommand),
    /// Score a NAB-format CSV (`timestamp,value`) with the live anomaly detector, writing
    /// `timestamp,value,anomaly_score`.
    Detect {
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        output: PathBuf,
    },
}

#[derive(Subcommand)]
enum ActionsCommand {
    /// Print the actions the configuration allows.
    List {
        #[arg(long, default_value = "/etc/vigil/agent.toml")]
        config: PathBuf,
    },
    /// Run one action now (audited like any other run).
    Run {
        #[arg(long, default_value = "/etc/vigil/agent.toml")]
        config: PathBuf,
        /// Report what would run without running it.
        #[arg(long)]
        dry_run: bool,
        name: String,
    },
}

#[derive(Args)]
struct RunArgs {
    /// TOML configuration file; flags override its settings.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Directory with ca.pem, agent.pem and agent.key.
    #[arg(long)]
    certs_dir: Option<PathBuf>,
    /// Collector addresses, comma-separated, in failover order.
    #[arg(long, value_delimiter = ',')]
    collector: Vec<String>,
    /// TLS name to verify on the collector's certificate.
    #[arg(long)]
    server_name: Option<String>,
    /// Collection interval, e.g. 1s, 15s.
    #[arg(long)]
    interval: Option<NonZeroDuration>,
    /// Application endpoint to scrape (repeatable).
    #[arg(long)]
    scrape: Vec<String>,
    #[arg(long)]
    status_socket: Option<PathBuf>,
    /// Address for the agent's own /metrics.
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Bound on the durable buffer in bytes.
    #[arg(long)]
    buffer_max_bytes: Option<u64>,
    /// Batches outstanding at once.
    #[arg(long)]
    max_in_flight: Option<usize>,
    /// Host identity (default: $NODE_NAME, else the hostname).
    #[arg(long)]
    host: Option<String>,
    #[arg(long)]
    procfs: Option<PathBuf>,
    #[arg(long)]
    sysfs: Option<PathBuf>,
    #[arg(long)]
    rootfs: Option<PathBuf>,
    /// Never execute remediation actions; report and audit what would run.
    #[arg(long)]
    remediation_dry_run: bool,
}

const EXIT_USAGE: u8 = 64;

fn settings(
    path: Option<&PathBuf>,
    flags: AgentConfig,
) -> Result<vigil_agent::config::Settings, String> {
    let file = match path {
        Some(p) => AgentConfig::load(p).map_err(|e| e.to_string())?,
        None => AgentConfig::default(),
    };
    file.overlay(flags).validate().map_err(|e| e.to_string())
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    // One thread runs everything; blocking work (host collection, sled) gets at most two
    // helper threads, which exit after 10 s idle. This keeps the agent's memory small.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(2)
        .build()
        .map_err(|e| {
            eprintln!("Error: starting the async runtime: {e}");
            ExitCode::FAILURE
        })
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::CheckConfig { config } => match settings(Some(&config), AgentConfig::default()) {
            Ok(_) => {
                println!("{}: OK", config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("Invalid configuration: {e}");
                ExitCode::from(EXIT_USAGE)
            }
        },
        Command::Actions(cmd) => {
            let config = match &cmd {
                ActionsCommand::List { config } | ActionsCommand::Run { config, .. } => {
                    config.clone()
                }
            };
            let settings = match settings(Some(&config), AgentConfig::default()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("Invalid configuration: {e}");
                    return ExitCode::from(EXIT_USAGE);
                }
            };
            match cmd {
                ActionsCommand::List { .. } => {
                    print!(
                        "{}",
                        vigil_agent::remediate::cli::actions_table(&settings.actions)
                    );
                    ExitCode::SUCCESS
                }
                ActionsCommand::Run { name, dry_run, .. } => {
                    let rt = match runtime() {
                        Ok(r) => r,
                        Err(c) => return c,
                    };
                    rt.block_on(async {
                        let r = match vigil_agent::remediate::Remediator::new(
                            settings.remediation,
                            settings.actions,
                            &settings.data_dir,
                        ) {
                            Ok(r) => r,
                            Err(e) => {
                                eprintln!("Error: {e}");
                                return ExitCode::FAILURE;
                            }
                        };
                        match vigil_agent::remediate::cli::run_action(&r, &name, dry_run).await {
                            Ok((text, ok)) => {
                                print!("{text}");
                                if ok {
                                    ExitCode::SUCCESS
                                } else {
                                    ExitCode::FAILURE
                                }
                            }
                            Err(e) => {
                                eprintln!("Error: {e}");
                                ExitCode::FAILURE
                            }
                        }
                    })
                }
            }
        }
        Command::Detect { input, output } => {
            let params = vigil_agent::checks::anomaly::DetectorParams::default();
            match vigil_agent::checks::nab::run_nab_file(&input, &output, &params) {
                Ok(summary) => {
                    println!(
                        "{}: {} rows, {} alarms",
                        input.display(),
                        summary.rows,
                        summary.alarms
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("Error: {e}");
                    ExitCode::from(EXIT_USAGE)
                }
            }
        }
        Command::Status {
            status_socket,
            json,
            max_ack_age,
        } => {
            let rt = match runtime() {
                Ok(r) => r,
                Err(c) => return c,
            };
            match rt.block_on(vigil_agent::status::fetch(&status_socket)) {
                Ok(s) => {
                    if json {
                        println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
                    } else {
                        print!("{}", vigil_agent::status::render(&s));
                    }
                    match vigil_agent::status::liveness(&s, max_ack_age.get()) {
                        Ok(()) => ExitCode::SUCCESS,
                        Err(why) => {
                            eprintln!("not live: {why}");
                            ExitCode::FAILURE
                        }
                    }
                }
                Err(e) => {
                    eprintln!("Error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run(a) => {
            let flags = AgentConfig {
                data_dir: a.data_dir,
                certs_dir: a.certs_dir,
                collectors: a.collector,
                server_name: a.server_name,
                interval: a.interval,
                status_socket: a.status_socket,
                metrics_listen: a.metrics_listen,
                buffer_max_bytes: a.buffer_max_bytes,
                max_in_flight: a.max_in_flight,
                host: a.host,
                procfs: a.procfs,
                sysfs: a.sysfs,
                rootfs: a.rootfs,
                remediation: vigil_agent::remediate::config::RemediationSettings {
                    dry_run: a.remediation_dry_run,
                    ..Default::default()
                },
                checks: Vec::new(),
                actions: Vec::new(),
                scrape: a
                    .scrape
                    .into_iter()
                    .map(|url| ScrapeConfig {
                        url,
                        job: None,
                        timeout: None,
                    })
                    .collect(),
            };
            let settings = match settings(a.config.as_ref(), flags) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("Invalid configuration: {e}");
                    return ExitCode::from(EXIT_USAGE);
                }
            };
            let rt = match runtime() {
                Ok(r) => r,
                Err(c) => return c,
            };
            match rt.block_on(vigil_agent::run::run(settings)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("Error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
