//! `vigil-collector`: parses the command line, sets up logging, validates the configuration
//! without binding anything (exit 64 with every problem named), then hands over to the
//! library. Exit codes: 0 ok, 64 bad usage or configuration, 1 runtime failure.

#![forbid(unsafe_code)]

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use vigil_cli::config::{check_config, settings_or_exit};
use vigil_cli::EXIT_USAGE;
use vigil_collector::config::CollectorConfig;
use vigil_shared::duration::{NonZeroDuration, PromDuration};

#[derive(Parser)]
#[command(name = "vigil-collector", version, about = "Vigil's central collector")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the collector.
    Run(Box<RunArgs>),
    /// Validate a configuration file and exit (64 when invalid).
    CheckConfig {
        #[arg(long)]
        config: PathBuf,
    },
    /// Create and issue certificates.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Prometheus rule files: `check rules FILE...` and `test rules TEST.yml...`, as promtool.
    #[command(subcommand)]
    Check(RulesCheck),
    /// Run promtool-format rule unit tests.
    #[command(subcommand)]
    Test(RulesTest),
    /// Alertmanager-format routing tools.
    #[command(subcommand)]
    Routes(RoutesCommand),
    /// Ask a connected agent to run one of its allow-listed actions.
    #[command(subcommand)]
    Actions(ActionsCommand),
}

#[derive(Subcommand)]
enum ActionsCommand {
    /// Run action NAME on agent AGENT through a running collector's HTTP API; prints the
    /// agent's answer. Exit 0 when the action ran and succeeded, 1 otherwise.
    Run {
        /// The agent's identity (its certificate's common name).
        #[arg(long)]
        agent: String,
        /// The collector's HTTP address.
        #[arg(long, default_value = "127.0.0.1:9090")]
        http: String,
        /// How long to wait for the answer (default 60s).
        #[arg(long)]
        timeout: Option<NonZeroDuration>,
        /// Print the API's JSON answer instead of text.
        #[arg(long)]
        json: bool,
        /// The action's name in the agent's config.
        name: String,
    },
}

#[derive(Subcommand)]
enum RulesCheck {
    /// Validate rule files, with promtool's messages.
    Rules { files: Vec<PathBuf> },
}

#[derive(Subcommand)]
enum RulesTest {
    /// Run rule unit tests in promtool's format.
    Rules { files: Vec<PathBuf> },
}

#[derive(Subcommand)]
enum RoutesCommand {
    /// Print the receivers a label set reaches, exactly as `amtool config routes test` does.
    Test {
        /// Alertmanager configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Also print the matching part of the routing tree.
        #[arg(long)]
        tree: bool,
        /// Exit 1 unless the receivers equal this comma-separated list.
        #[arg(long = "verify.receivers", default_value = "")]
        verify_receivers: String,
        /// Labels of the alert, `name=value`.
        labels: Vec<String>,
    },
}

#[derive(Args)]
struct RunArgs {
    /// TOML configuration file; flags override its settings.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long)]
    certs_dir: Option<PathBuf>,
    /// UDP address for QUIC ingest (port 0 picks a free port).
    #[arg(long)]
    quic_listen: Option<SocketAddr>,
    /// TCP address for the HTTP API (port 0 picks a free port).
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// How long samples are kept, e.g. 15d.
    #[arg(long)]
    retention: Option<NonZeroDuration>,
    /// Active-series limit (0 = unlimited).
    #[arg(long)]
    max_series: Option<usize>,
    /// Active-series limit of each tenant (0 = unlimited); overrides in `[limits]`.
    #[arg(long)]
    max_series_per_tenant: Option<usize>,
    /// Accept samples up to this far behind a series' newest sample.
    #[arg(long)]
    out_of_order_window: Option<PromDuration>,
    /// Grace period for draining on shutdown.
    #[arg(long)]
    shutdown_grace: Option<NonZeroDuration>,
    /// Prometheus-format rule file (repeatable).
    #[arg(long)]
    rule_file: Vec<PathBuf>,
    /// Interval for rule groups that set none.
    #[arg(long)]
    evaluation_interval: Option<NonZeroDuration>,
    /// Evaluate alerting-only groups when new samples arrive, at most once per this gap
    /// (default 200ms; 0s evaluates only on the interval, like Prometheus).
    #[arg(long)]
    early_evaluation_gap: Option<PromDuration>,
    /// Alertmanager-format configuration routing the rules' alerts.
    #[arg(long)]
    alertmanager_config: Option<PathBuf>,
    /// External Alertmanager to send every firing and resolved alert to with
    /// `POST /api/v2/alerts` (repeatable), e.g. `http://alertmanager:9093`.
    #[arg(long = "alertmanager-url")]
    alertmanager_url: Vec<String>,
    /// How long expired silences are kept (Alertmanager's --data.retention), e.g. 120h.
    #[arg(long)]
    silence_retention: Option<NonZeroDuration>,
    /// Most samples one query may load and hold (default 50000000).
    #[arg(long = "query.max-samples")]
    query_max_samples: Option<usize>,
    /// Most series one selector of a query may match (default 1000000).
    #[arg(long = "query.max-series")]
    query_max_series: Option<usize>,
    /// Longest a query may run (default 2m).
    #[arg(long = "query.timeout")]
    query_timeout: Option<NonZeroDuration>,
    /// Most queries evaluated at once; more wait within their timeout (default 20).
    #[arg(long = "query.max-concurrency")]
    query_max_concurrency: Option<usize>,
    /// How far back an instant selector looks for a sample (default 5m).
    #[arg(long = "query.lookback-delta")]
    query_lookback_delta: Option<NonZeroDuration>,
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Create a CA and the collector's certificate in DIR.
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// Extra DNS name or IP address for the collector certificate (repeatable).
        #[arg(long)]
        san: Vec<String>,
    },
    /// Issue an agent certificate and write everything the agent needs into OUT.
    IssueAgent {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        out: PathBuf,
    },
}

impl RunArgs {
    /// The settings given as flags, to overlay onto the file's.
    fn flags(self) -> CollectorConfig {
        CollectorConfig {
            data_dir: self.data_dir,
            certs_dir: self.certs_dir,
            quic_listen: self.quic_listen,
            http_listen: self.http_listen,
            retention: self.retention,
            max_series: self.max_series,
            out_of_order_window: self.out_of_order_window,
            shutdown_grace: self.shutdown_grace,
            rule_files: self.rule_file,
            evaluation_interval: self.evaluation_interval,
            early_evaluation_gap: self.early_evaluation_gap,
            alertmanager_config: self.alertmanager_config,
            limits: vigil_collector::config::LimitsConfig {
                max_series_per_tenant: self.max_series_per_tenant,
                ..Default::default()
            },
            alertmanager_urls: self.alertmanager_url,
            silence_retention: self.silence_retention,
            query: vigil_collector::config::QueryConfig {
                max_samples: self.query_max_samples,
                max_series: self.query_max_series,
                timeout: self.query_timeout,
                max_concurrency: self.query_max_concurrency,
                lookback_delta: self.query_lookback_delta,
            },
        }
    }
}

/// Prints promtool-style (stdout, stderr, exit code) output.
fn promtool_style((out, err, code): (String, String, i32)) -> ExitCode {
    print!("{out}");
    eprint!("{err}");
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn main() -> ExitCode {
    vigil_cli::init_tracing();
    let cli: Cli = match vigil_cli::parse_args() {
        Ok(c) => c,
        Err(code) => return code,
    };
    match cli.command {
        Command::Run(a) => run(*a),
        Command::CheckConfig { config } => check_config::<CollectorConfig>(&config),
        Command::Certs(cmd) => certs(cmd),
        Command::Check(RulesCheck::Rules { files }) => promtool_style(
            vigil_collector::rules::promtool::check_rules_command(&files),
        ),
        Command::Test(RulesTest::Rules { files }) => {
            promtool_style(vigil_collector::rules::promtool::test_rules_command(&files))
        }
        Command::Routes(RoutesCommand::Test {
            config,
            tree,
            verify_receivers,
            labels,
        }) => routes_test(&config, &labels, tree, &verify_receivers),
        Command::Actions(ActionsCommand::Run {
            agent,
            http,
            timeout,
            json,
            name,
        }) => actions_run(&http, &agent, &name, timeout.map(|t| t.get()), json),
    }
}

/// `vigil-collector run`.
fn run(args: RunArgs) -> ExitCode {
    let config = args.config.clone();
    let settings = match settings_or_exit(config.as_deref(), args.flags()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    match vigil_cli::runtime::build(tokio::runtime::Builder::new_multi_thread()) {
        Ok(rt) => vigil_cli::runtime::exit_code(rt.block_on(vigil_collector::run::run(settings))),
        Err(code) => code,
    }
}

/// `vigil-collector certs init|issue-agent`.
fn certs(cmd: CertsCommand) -> ExitCode {
    let (result, done) = match cmd {
        CertsCommand::Init { dir, san } => (
            vigil_collector::certs_cmd::init(&dir, &san),
            format!("created CA and collector certificate in {}", dir.display()),
        ),
        CertsCommand::IssueAgent { dir, name, out } => (
            vigil_collector::certs_cmd::issue_agent(&dir, &name, &out),
            format!("issued certificate for agent {name} into {}", out.display()),
        ),
    };
    if result.is_ok() {
        println!("{done}");
    }
    vigil_cli::runtime::exit_code(result)
}

/// `vigil-collector routes test`, as `amtool config routes test`.
fn routes_test(
    config: &std::path::Path,
    labels: &[String],
    tree: bool,
    verify_receivers: &str,
) -> ExitCode {
    match vigil_collector::notify::routes_test_command(config, labels, tree) {
        Ok(out) => {
            print!("{out}");
            match vigil_collector::notify::verify_receivers(&out, verify_receivers) {
                Some(warning) => {
                    print!("{warning}");
                    ExitCode::FAILURE
                }
                None => ExitCode::SUCCESS,
            }
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// `vigil-collector actions run`.
fn actions_run(
    http: &str,
    agent: &str,
    name: &str,
    timeout: Option<std::time::Duration>,
    json: bool,
) -> ExitCode {
    use vigil_collector::api::actions;
    let rt = match vigil_cli::runtime::build(tokio::runtime::Builder::new_current_thread()) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let (code, body) = match rt.block_on(actions::request(http, agent, name, timeout)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        println!("{body}");
    }
    if code != 200 {
        if !json {
            eprintln!(
                "Error: HTTP {code}: {}",
                body["error"].as_str().unwrap_or("(no error message)")
            );
        }
        return ExitCode::from(if code == 400 { EXIT_USAGE } else { 1 });
    }
    match serde_json::from_value::<vigil_collector::ingest::commands::ActionAnswer>(
        body["data"].clone(),
    ) {
        Ok(a) => {
            if !json {
                print!("{}", actions::render(&a));
            }
            if a.accepted && (a.outcome == "ok" || a.outcome == "dry_run") {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("Error: unexpected answer from the collector: {e}: {body}");
            ExitCode::FAILURE
        }
    }
}
