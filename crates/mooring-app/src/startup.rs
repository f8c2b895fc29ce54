//! Wiring: settings in, a running server out.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use anyhow::Context;
use mooring_custodian::HttpCustodian;
use mooring_http::{CallbackAuth, HttpConfig, MetricsEndpoint, Services};
use mooring_platform::HttpPlatform;
use mooring_ports::{Custodian, PayoutRail, RateSource, ReadinessCheck, SystemClock};
use mooring_rails::{HttpRail, SimulatedRail};
use mooring_rates::{FeedRates, TableRates};
use mooring_store::{MigrationsCurrent, SelfCustodian, Store, StoreReachable};
use mooring_usecases::{
    AuditTrail, DepositService, EngineParts, EventInbox, FeeService, KycService, NoCustodian,
    Operations, PayoutEngine, PayoutRequests, Pruner, QuoteService, QuoteServiceParts,
    StaffService,
};
use tokio::task::JoinHandle;

use crate::engine::{EngineHandle, Schedule};
use crate::settings::{CustodianSetting, RailSetting, RateSourceSetting, Settings};

/// How long a stopping server gives the payout steps under way (after the
/// requests in flight, `mooring_http::SHUTDOWN_TIMEOUT_SECONDS`): together
/// within Kubernetes' default 30 s grace period.
const ENGINE_GRACE: std::time::Duration = std::time::Duration::from_secs(15);

/// Connections of the operators' routes (`/ready`, `/metrics`).
const OPS_POOL_SIZE: u32 = 2;

/// Opens the store, migrating it when `database.auto_migrate` is on.
pub async fn open_store(settings: &Settings, migrate: bool) -> anyhow::Result<Store> {
    let store = Store::connect(settings.database.store.clone()).await?;
    if migrate {
        let applied = store.migrate().await?;
        if !applied.is_empty() {
            tracing::info!(migrations = ?applied, "database migrated");
        }
    } else {
        let pending = store.pending_migrations().await?;
        anyhow::ensure!(
            pending.is_empty(),
            "the database has {} pending migration(s); run `mooring migrate` or set database.auto_migrate = true",
            pending.len()
        );
    }
    let key = settings.pii.key()?;
    if let Some(path) = &key.created_file {
        tracing::warn!(
            path = %path.display(),
            "no pii.key is set: created a key file for the customer data; back it up apart from the database, or set pii.key (MOORING__PII__KEY)"
        );
    }
    let (store, unlocked) = store.unlock(key.keyring).await?;
    let sealed = unlocked.sealed_fields + unlocked.sealed_files + unlocked.sealed_orders;
    if sealed > 0 {
        tracing::info!(
            fields = unlocked.sealed_fields,
            files = unlocked.sealed_files,
            orders = unlocked.sealed_orders,
            "customer data an earlier version stored in plaintext is now encrypted"
        );
    }
    Ok(store)
}

/// The audit trail in a store.
pub fn audit_trail(store: Store) -> AuditTrail {
    AuditTrail::new(Arc::new(store), Arc::new(SystemClock))
}

/// The back office's users and sessions over a store, as configured.
pub fn staff_service(settings: &Settings, store: Store) -> StaffService {
    let audit = audit_trail(store.clone());
    StaffService::new(
        Arc::new(store),
        audit,
        Arc::new(SystemClock),
        settings.backoffice.policy,
        &settings.backoffice.issuer,
    )
}

/// The KYC service over a store, as configured.
pub fn kyc_service(settings: &Settings, store: Store) -> anyhow::Result<KycService> {
    Ok(KycService::new(
        Arc::new(store.clone()),
        settings.customer_types.clone(),
        settings.review_mode,
        audit_trail(store),
        Arc::new(SystemClock),
    ))
}

/// The quote service over a store, with the configured rate source (a feed
/// starts polling here).
pub fn quote_service(settings: &Settings, store: Store) -> anyhow::Result<QuoteService> {
    let setup = &settings.quotes;
    let rates: Arc<dyn RateSource> = match &setup.source {
        RateSourceSetting::Table => Arc::new(TableRates::from_pricing(&setup.pricing)),
        RateSourceSetting::Feed(config) => FeedRates::start(config.clone())?,
    };
    Ok(QuoteService::new(QuoteServiceParts {
        pricing: setup.pricing.clone(),
        assets: setup.assets.clone(),
        rates,
        store: Arc::new(store),
        lifetime: setup.lifetime,
        liquidity: setup.liquidity.clone(),
        clock: Arc::new(SystemClock),
    }))
}

/// The deposit-address service, with the configured custodian.
pub fn deposit_service(settings: &Settings, store: Store) -> anyhow::Result<DepositService> {
    let custodian: Arc<dyn Custodian> = match &settings.custodian {
        CustodianSetting::None => Arc::new(NoCustodian),
        CustodianSetting::SelfCustody { account, memo } => {
            Arc::new(SelfCustodian::new(store.clone(), account.clone(), *memo))
        }
        CustodianSetting::Http { url, timeout } => {
            Arc::new(HttpCustodian::new(url.clone(), *timeout)?)
        }
    };
    Ok(DepositService::new(custodian, Arc::new(store)))
}

/// The fee service (`GET /fee`).
pub fn fee_service(settings: &Settings, kyc: KycService) -> anyhow::Result<FeeService> {
    Ok(FeeService::new(
        settings.fees.clone(),
        settings.asset_catalog.clone(),
        kyc,
    ))
}

/// The payment engine over a store, with the configured platform client
/// and rail.
pub fn payout_engine(
    settings: &Settings,
    store: Store,
    kyc: KycService,
    quotes: QuoteService,
    deposits: DepositService,
) -> anyhow::Result<PayoutEngine> {
    let platform = Arc::new(HttpPlatform::new(settings.platform.clone())?);
    engine_over(settings, platform, store, kyc, quotes, deposits)
}

fn engine_over(
    settings: &Settings,
    platform: Arc<HttpPlatform>,
    store: Store,
    kyc: KycService,
    quotes: QuoteService,
    deposits: DepositService,
) -> anyhow::Result<PayoutEngine> {
    let rail: Arc<dyn PayoutRail> = match &settings.rail {
        RailSetting::Simulated {
            delay,
            failure_rate,
        } => Arc::new(SimulatedRail::new(*delay, *failure_rate)),
        RailSetting::Http { url, timeout, auth } => {
            Arc::new(HttpRail::new(url.clone(), *timeout, auth.clone())?)
        }
    };
    let audit = kyc.audit().clone();
    let store = Arc::new(store);
    Ok(PayoutEngine::new(
        EngineParts {
            audit,
            platform,
            ledger: store.clone(),
            events: store.clone(),
            marks: store,
            rail,
            kyc,
            quotes,
            deposits,
            clock: Arc::new(SystemClock),
        },
        settings.engine.config.clone(),
    ))
}

/// A built server, bound and ready to run.
pub struct Application {
    port: u16,
    server: Server,
    /// `/metrics` on its own listener (`metrics.bind`): its port, and the
    /// running server.
    metrics: Option<(u16, ServerHandle, JoinHandle<std::io::Result<()>>)>,
    engine: Option<EngineHandle>,
    housekeeping: Option<crate::housekeeping::Housekeeping>,
    /// The back office on its own listener (`backoffice.bind`).
    backoffice: Option<(u16, ServerHandle, JoinHandle<std::io::Result<()>>)>,
}

impl Application {
    /// Opens the store, wires the services and binds the listener (port 0
    /// picks a free port; see [`Application::port`]).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let store = open_store(&settings, settings.database.auto_migrate).await?;
        let backend = store.backend();
        let kyc = kyc_service(&settings, store.clone())?;
        let quotes = quote_service(&settings, store.clone())?;
        let deposits = deposit_service(&settings, store.clone())?;
        let fees = fee_service(&settings, kyc.clone())?;
        let auth = settings.callback_auth.clone();
        if matches!(auth, CallbackAuth::None) {
            tracing::warn!(
                "callback authentication is off (callback_api.auth_type = none): anyone who reaches this port can read and change KYC data; set CALLBACK_API_AUTH_TYPE=jwt or api_key"
            );
        }
        let (host, loopback_only) = (&settings.server.host, settings.server.loopback_only);
        if loopback_only {
            tracing::warn!(
                "listening on 127.0.0.1 only, as callback authentication is off; set server.host (MOORING__SERVER__HOST) to listen elsewhere"
            );
        }
        let address = format!("{host}:{}", settings.server.port);
        let listener = TcpListener::bind(&address)
            .with_context(|| format!("cannot listen on {address} (server.host, server.port)"))?;
        let port = listener.local_addr()?.port();
        // The operators' routes (`/ready`, `/metrics`) read through two
        // connections of their own, never the callbacks' permits.
        let ops_store = Store::connect(mooring_store::StoreConfig {
            pool_size: OPS_POOL_SIZE,
            ..settings.database.store.clone()
        })
        .await?;
        let mut checks: Vec<Arc<dyn ReadinessCheck>> = vec![
            Arc::new(StoreReachable(ops_store.clone())),
            Arc::new(MigrationsCurrent(ops_store.clone())),
        ];
        let engine_setting = &settings.engine;
        let mut payouts = None;
        let engine = if engine_setting.enabled {
            let platform = Arc::new(HttpPlatform::new(settings.platform.clone())?);
            checks.push(platform.clone());
            let engine = engine_over(
                &settings,
                platform,
                store.clone(),
                kyc.clone(),
                quotes.clone(),
                deposits.clone(),
            )?;
            payouts = Some(engine.clone());
            Some(crate::engine::start(
                engine,
                Schedule {
                    poll_interval: engine_setting.poll_interval,
                    reconcile_interval: engine_setting.reconcile_interval,
                    concurrency: engine_setting.concurrency,
                },
            ))
        } else {
            tracing::info!("payment engine off (platform.enabled = false)");
            None
        };
        let retention = settings.retention;
        let housekeeping = retention.enabled.then(|| {
            crate::housekeeping::start(
                Pruner::new(
                    Arc::new(store.clone()),
                    Arc::new(SystemClock),
                    retention.policy,
                ),
                retention.interval,
            )
        });
        let inbox = match &engine {
            Some(handle) => {
                let wake = handle.wake();
                EventInbox::new(Arc::new(store.clone())).waking(move || wake.notify_waiters())
            }
            None => EventInbox::new(Arc::new(store.clone())),
        };
        let ops = Operations::new(
            checks,
            Arc::new(ops_store.clone()),
            EventInbox::new(Arc::new(ops_store.clone())),
            quotes.over_store(Arc::new(ops_store)),
            payouts.clone(),
            Arc::new(SystemClock),
        );
        let backoffice = if settings.backoffice.enabled {
            let bind = &settings.backoffice.bind;
            let listener = TcpListener::bind(bind)
                .with_context(|| format!("cannot listen on {bind} (backoffice.bind)"))?;
            let port = listener.local_addr()?.port();
            if port == settings.server.port {
                anyhow::bail!("backoffice.bind must not be the callbacks' port ({port})");
            }
            let office = mooring_backoffice::BackOffice {
                staff: staff_service(&settings, store.clone()),
                kyc: kyc.clone(),
                quotes: quotes.clone(),
                audit: kyc.audit().clone(),
                ops: ops.clone(),
                payouts: payouts.map(|engine| {
                    let desk = PayoutRequests::new(
                        Arc::new(store.clone()),
                        engine.clone(),
                        kyc.audit().clone(),
                        Arc::new(SystemClock),
                    );
                    (engine, desk)
                }),
                secure_cookies: settings.backoffice.secure_cookies,
                manual_review: settings.review_mode == mooring_domain::customer::ReviewMode::Manual,
            };
            let server = mooring_backoffice::serve(listener, office)?;
            tracing::info!(port, "back office listening");
            Some((port, server.handle(), tokio::spawn(server)))
        } else {
            None
        };
        let endpoint = MetricsEndpoint {
            handle: crate::telemetry::metrics_handle(),
            ops: ops.clone(),
        };
        let metrics = match &settings.metrics.bind {
            Some(bind) => {
                let listener = TcpListener::bind(bind)
                    .with_context(|| format!("cannot listen on {bind} (metrics.bind)"))?;
                let port = listener.local_addr()?.port();
                tracing::info!(port, "metrics on their own listener");
                let server = mooring_http::serve_metrics(listener, endpoint.clone())?;
                Some((port, server.handle(), tokio::spawn(server)))
            }
            None => None,
        };
        let config = HttpConfig {
            auth: auth.clone(),
            multipart_limit_bytes: settings.server.multipart_limit_bytes,
            workers: settings.server.workers,
            metrics: metrics.is_none().then_some(endpoint),
        };
        let services = Services {
            kyc: kyc.clone(),
            quotes,
            fees,
            deposits,
            events: inbox,
            ops,
        };
        let server = mooring_http::serve(listener, services, config)?;
        tracing::info!(
            port,
            database = %backend,
            callback_auth = auth.kind(),
            kyc.review = %settings.raw.kyc.review,
            kyc.types = kyc.types().names().collect::<Vec<_>>().join(","),
            pricing.source = %settings.raw.pricing.source,
            pricing.pairs = settings.raw.pricing.pairs.len(),
            platform.api = %settings.raw.platform.api,
            payout.rail = %settings.raw.payout.rail,
            engine = engine.is_some(),
            "mooring listening"
        );
        Ok(Self {
            port,
            server,
            metrics,
            engine,
            housekeeping,
            backoffice,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The back office's port, when it is enabled.
    pub fn backoffice_port(&self) -> Option<u16> {
        self.backoffice.as_ref().map(|(port, _, _)| *port)
    }

    /// The port of `/metrics`' own listener, when `metrics.bind` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(port, _, _)| *port)
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until the server is stopped through its handle; then stops
    /// the payment engine (the steps under way finish, claims are released)
    /// and the metrics listener.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        if let Some(engine) = self.engine {
            engine.stop(ENGINE_GRACE).await;
        }
        if let Some(housekeeping) = self.housekeeping {
            housekeeping.stop().await;
        }
        for (_, handle, task) in [self.metrics, self.backoffice].into_iter().flatten() {
            handle.stop(true).await;
            let _ = task.await;
        }
        served
    }
}
