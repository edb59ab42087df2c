//! The running collector: opens storage, binds the QUIC and HTTP listeners (logging each
//! bound address, so `:0` works), serves until SIGINT/SIGTERM, then drains within the grace
//! period: QUIC endpoint closed so agents learn at once, HTTP stops accepting, storage closed.

use crate::api::{self, ApiState};
use crate::clock::now_ms;
use crate::config::Settings;
use crate::ingest::{self, AgentRegistry, Ingest};
use crate::rules::eval::GroupContext;
use crate::rules::manager::{ManagerOptions, RuleManager};
use crate::storage::{Storage, StorageOptions};
use crate::telemetry::CollectorMetrics;
use anyhow::Context;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use vigil_shared::certs::{self, files};

fn read(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Loads the collector's TLS configuration from the certificates directory.
pub fn tls(settings: &Settings) -> anyhow::Result<rustls::ServerConfig> {
    let d = &settings.certs_dir;
    certs::server_config(
        &read(&d.join(files::CA_CERT))?,
        &read(&d.join(files::COLLECTOR_CERT))?,
        &read(&d.join(files::COLLECTOR_KEY))?,
    )
    .with_context(|| format!("building TLS configuration from {}", d.display()))
}

/// Runs the collector until a shutdown signal arrives.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let tls = tls(&settings)?;
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating data directory {}", settings.data_dir.display()))?;
    let storage = Storage::open(
        &settings.data_dir,
        StorageOptions {
            retention: settings.retention,
            max_series: settings.max_series,
            max_series_per_tenant: settings.max_series_per_tenant,
            tenant_max_series: settings.tenant_max_series.clone(),
            agent_tenants: settings.agent_tenants.clone(),
            out_of_order_window: settings.out_of_order_window,
            ..Default::default()
        },
    )
    .with_context(|| format!("opening storage in {}", settings.data_dir.display()))?;
    let metrics = CollectorMetrics::default();
    storage
        .register_metrics(&metrics.registry)
        .context("registering storage metrics")?;
    // Silences (persisted in the data directory) and the dispatcher's alerts, shared with
    // the Alertmanager v2 API.
    let silence_metrics = crate::telemetry::SilenceMetrics::register(&metrics.registry)
        .context("registering silence metrics")?;
    let silences = Arc::new(
        crate::notify::Silences::open(
            &settings.data_dir,
            settings.silence_retention,
            Some(silence_metrics.clone()),
        )
        .context("loading silences")?,
    );
    metrics
        .registry
        .register(Box::new(crate::notify::silence::SilenceStateGauge::new(
            silences.clone(),
        )))
        .context("registering the silences gauge")?;
    let alert_store = crate::notify::AlertStore::default();
    let mut am_config: Option<Arc<crate::notify::Config>> = None;
    let agents = AgentRegistry::default();
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let ready = Arc::new(AtomicBool::new(false));

    let endpoint = ingest::endpoint(settings.quic_listen, tls)
        .with_context(|| format!("binding QUIC on {}", settings.quic_listen))?;
    let quic_addr = endpoint
        .local_addr()
        .context("reading bound QUIC address")?;
    let http = tokio::net::TcpListener::bind(settings.http_listen)
        .await
        .with_context(|| format!("binding HTTP on {}", settings.http_listen))?;
    let http_addr = http.local_addr().context("reading bound HTTP address")?;
    tracing::info!(%quic_addr, "QUIC ingest listening");
    tracing::info!(%http_addr, "HTTP API listening");
    // A machine-readable line for scripts and tests that start the collector on port 0.
    println!("vigil-collector listening quic={quic_addr} http={http_addr}");

    // Ingest raises this after storing samples; the rule manager then evaluates alerting
    // groups at once instead of on their next interval.
    let samples_arrived = crate::signals::SamplesArrived::default();
    let commands = ingest::AgentCommands::new(metrics.clone());
    let ingest = Ingest {
        storage: storage.clone(),
        agents: agents.clone(),
        metrics: metrics.clone(),
        now_ms,
        samples_arrived: samples_arrived.clone(),
        commands: commands.clone(),
    };
    tracker.spawn(
        ingest
            .serve(endpoint, cancel.clone(), tracker.clone())
            .instrument(tracing::info_span!("quic_ingest")),
    );

    // Notifications: with an Alertmanager config, the dispatcher routes the alerts of the
    // rules and those POSTed to `/api/v2/alerts` (by a Prometheus, or `amtool alert add`).
    let dispatch = match &settings.alertmanager_config {
        Some(path) => {
            let config = Arc::new(
                crate::notify::Config::load_file(path)
                    .with_context(|| format!("loading {}", path.display()))?,
            );
            am_config = Some(config.clone());
            let (handle, dispatcher) = crate::notify::dispatcher(
                config,
                crate::notify::DispatchOptions {
                    external_url: format!("http://{http_addr}"),
                    data_dir: Some(settings.data_dir.clone()),
                    ..Default::default()
                },
            );
            if let Err(e) = handle.stats().metrics.register(&metrics.registry) {
                tracing::warn!(error = %e, "registering notification metrics");
            }
            let dispatcher = dispatcher.with_silences(silences.clone(), alert_store.clone());
            tracker.spawn(
                dispatcher
                    .run(cancel.clone())
                    .instrument(tracing::info_span!("notify")),
            );
            Some(handle)
        }
        None => None,
    };

    // Rules: the rule manager evaluates on schedule and hands the alerts through a bounded
    // channel to the dispatcher and to the external Alertmanagers.
    let rules = if settings.rule_files.is_empty() {
        None
    } else {
        let (alert_tx, mut alert_rx) =
            tokio::sync::mpsc::channel::<Vec<crate::notify::alert::Alert>>(64);
        let manager = RuleManager::new(
            storage.clone(),
            ManagerOptions {
                files: settings.rule_files.clone(),
                default_interval: settings.evaluation_interval,
                context: GroupContext {
                    external_url: format!("http://{http_addr}"),
                    ..Default::default()
                },
                notify: Some(alert_tx),
                samples_arrived: samples_arrived.clone(),
                evaluations: Some(metrics.rule_group_evaluations.clone()),
                eager_min_gap: settings.early_evaluation_gap,
                query: settings.query.clone(),
                ..Default::default()
            },
        )
        .map_err(|e| anyhow::anyhow!("loading rule files:\n{e}"))?;
        let manager = Arc::new(manager);
        tracker.spawn(
            manager
                .clone()
                .run(cancel.clone())
                .instrument(tracing::info_span!("rules")),
        );
        let handle = dispatch.clone();
        let forwarder = if settings.alertmanager_urls.is_empty() {
            None
        } else {
            for u in &settings.alertmanager_urls {
                tracing::info!(url = %u, "forwarding alerts to Alertmanager");
            }
            let f = crate::notify::forward::Forwarder::start(
                settings.alertmanager_urls.clone(),
                std::time::Duration::from_secs(10),
                cancel.clone(),
                &tracker,
            );
            if let Err(e) = f.metrics().register(&metrics.registry) {
                tracing::warn!(error = %e, "registering Alertmanager forwarding metrics");
            }
            Some(f)
        };
        tracker.spawn(
            async move {
                while let Some(alerts) = alert_rx.recv().await {
                    if let Some(f) = &forwarder {
                        f.forward(alerts.clone());
                    }
                    let Some(h) = &handle else { continue };
                    for a in alerts {
                        if h.send(a).await.is_err() {
                            return;
                        }
                    }
                }
            }
            .instrument(tracing::info_span!("alert_forwarder")),
        );
        Some(manager)
    };

    let state = ApiState {
        storage: storage.clone(),
        agents,
        metrics,
        ready: ready.clone(),
        now_ms,
        samples_arrived,
    };
    tracker.spawn(
        silences
            .clone()
            .maintain(crate::notify::silence::MAINTENANCE_INTERVAL, cancel.clone())
            .instrument(tracing::info_span!("silences")),
    );
    let config_text = match &settings.alertmanager_config {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
        }
        None => String::new(),
    };
    let app = api::router(state)
        .merge(api::rules_router(rules.clone()))
        .merge(api::alertmanager::router(
            api::alertmanager::AlertmanagerApi {
                silences,
                alerts: alert_store,
                config: am_config,
                config_text,
                started: std::time::SystemTime::now(),
                metrics: Some(silence_metrics),
                dispatcher: dispatch,
            },
        ))
        .merge(api::actions::router(commands))
        .merge(api::query::router(
            Arc::new(storage.clone()),
            settings.query.clone(),
        ));
    let http_cancel = cancel.clone();
    tracker.spawn(
        async move {
            let serve = axum::serve(http, app)
                .with_graceful_shutdown(async move { http_cancel.cancelled().await });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "HTTP server failed");
            }
        }
        .instrument(tracing::info_span!("http")),
    );
    ready.store(true, Ordering::SeqCst);

    // SIGHUP reloads the rule files; a bad file keeps the old rules running.
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("listening for SIGHUP")?;
    let stop = vigil_cli::runtime::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = hup.recv() => {
                if let Some(m) = &rules {
                    match m.reload().await {
                        Ok(()) => tracing::info!("rule files reloaded"),
                        Err(e) => tracing::error!(error = %e, "reloading rule files failed; keeping the old rules"),
                    }
                }
            }
        }
    }
    tracing::info!(grace = ?settings.shutdown_grace, "shutting down");
    ready.store(false, Ordering::SeqCst);
    cancel.cancel();
    tracker.close();
    if tokio::time::timeout(settings.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("tasks still running after the grace period; closing storage anyway");
    }
    storage.close().await.context("closing storage")?;
    tracing::info!("stopped");
    Ok(())
}
