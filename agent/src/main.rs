//! `vigil-agent`: parses the command line, sets up logging, validates the configuration
//! without binding anything (exit 64 with every problem named), then hands over to the
//! library. Exit codes: 0 ok, 64 bad usage or configuration, 1 runtime failure (for
//! `status`: the agent is not running or has not reached a collector in time).

#![forbid(unsafe_code)]

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vigil_agent::config::{AgentConfig, ScrapeConfig};
use vigil_cli::config::{check_config, settings_or_exit};
use vigil_cli::EXIT_USAGE;
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

impl RunArgs {
    /// The settings given as flags, to overlay onto the file's.
    fn flags(self) -> AgentConfig {
        AgentConfig {
            data_dir: self.data_dir,
            certs_dir: self.certs_dir,
            collectors: self.collector,
            server_name: self.server_name,
            interval: self.interval,
            status_socket: self.status_socket,
            metrics_listen: self.metrics_listen,
            buffer_max_bytes: self.buffer_max_bytes,
            max_in_flight: self.max_in_flight,
            host: self.host,
            procfs: self.procfs,
            sysfs: self.sysfs,
            rootfs: self.rootfs,
            remediation: vigil_agent::remediate::config::RemediationSettings {
                dry_run: self.remediation_dry_run,
                ..Default::default()
            },
            checks: Vec::new(),
            actions: Vec::new(),
            scrape: self
                .scrape
                .into_iter()
                .map(|url| ScrapeConfig {
                    url,
                    job: None,
                    timeout: None,
                })
                .collect(),
        }
    }
}

fn main() -> ExitCode {
    vigil_cli::init_tracing();
    let cli: Cli = match vigil_cli::parse_args() {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Each subcommand gives its exit code; `Err` is an early stop (an invalid configuration,
    // no runtime) whose message is already printed.
    let outcome = match cli.command {
        Command::Run(a) => run(*a),
        Command::CheckConfig { config } => Ok(check_config::<AgentConfig>(&config)),
        Command::Status {
            status_socket,
            json,
            max_ack_age,
        } => status(&status_socket, json, max_ack_age),
        Command::Actions(cmd) => actions(cmd),
        Command::Detect { input, output } => Ok(detect(&input, &output)),
    };
    outcome.unwrap_or_else(|code| code)
}

/// One thread runs everything; blocking work (host collection, sled) gets at most two
/// helper threads, which exit after 10 s idle. This keeps the agent's memory small.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.max_blocking_threads(2);
    vigil_cli::runtime::build(builder)
}

/// `vigil-agent run`.
fn run(args: RunArgs) -> Result<ExitCode, ExitCode> {
    let config = args.config.clone();
    let settings = settings_or_exit(config.as_deref(), args.flags())?;
    let result = runtime()?.block_on(vigil_agent::run::run(settings));
    Ok(vigil_cli::runtime::exit_code(result))
}

/// `vigil-agent status`.
fn status(
    status_socket: &Path,
    json: bool,
    max_ack_age: NonZeroDuration,
) -> Result<ExitCode, ExitCode> {
    let s = match runtime()?.block_on(vigil_agent::status::fetch(status_socket)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("Error: {e}");
            return Err(ExitCode::FAILURE);
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
    } else {
        print!("{}", vigil_agent::status::render(&s));
    }
    match vigil_agent::status::liveness(&s, max_ack_age.get()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(why) => {
            eprintln!("not live: {why}");
            Err(ExitCode::FAILURE)
        }
    }
}

/// `vigil-agent actions list|run`.
fn actions(cmd: ActionsCommand) -> Result<ExitCode, ExitCode> {
    let config = match &cmd {
        ActionsCommand::List { config } | ActionsCommand::Run { config, .. } => config,
    };
    let settings = settings_or_exit(Some(config), AgentConfig::default())?;
    let (name, dry_run) = match cmd {
        ActionsCommand::List { .. } => {
            print!(
                "{}",
                vigil_agent::remediate::cli::actions_table(&settings.actions)
            );
            return Ok(ExitCode::SUCCESS);
        }
        ActionsCommand::Run { name, dry_run, .. } => (name, dry_run),
    };
    let result = runtime()?.block_on(async {
        let r = vigil_agent::remediate::Remediator::new(
            settings.remediation,
            settings.actions,
            &settings.data_dir,
        )
        .map_err(|e| e.to_string())?;
        vigil_agent::remediate::cli::run_action(&r, &name, dry_run)
            .await
            .map_err(|e| e.to_string())
    });
    match result {
        Ok((text, ok)) => {
            print!("{text}");
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Err(e) => {
            eprintln!("Error: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

/// `vigil-agent detect`.
fn detect(input: &Path, output: &Path) -> ExitCode {
    let params = vigil_agent::checks::anomaly::DetectorParams::default();
    match vigil_agent::checks::nab::run_nab_file(input, output, &params) {
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
