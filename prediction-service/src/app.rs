//! Builds the prediction-service from its settings and runs it until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use rdkafka::producer::FutureProducer;
use service_kit::Shutdown;
use service_kit::app::HttpServer;
use service_kit::config::CommonArgs;
use service_kit::health::Refresh;
use service_kit::runner::ServiceConfig;

use crate::api::{AppState, router};
use crate::config::Config;
use crate::kafka::{CommitOnRevoke, KafkaConsumer, Worker};
use crate::metrics::PredictionMetrics;
use crate::model::watch::ModelStore;

/// A bound, ready-to-run prediction-service.
pub struct Application {
    http: HttpServer,
    worker: Worker,
    model: Arc<ModelStore>,
    poll_interval: std::time::Duration,
    readiness: Refresh<AppState>,
}

impl Application {
    /// Loads the model, creates the Kafka clients and binds; port 0 picks a free port.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let metrics = PredictionMetrics::new()?;
        let model = ModelStore::open(config.model_path.clone(), metrics.clone())
            .context("cannot load the model (MODEL_PATH)")?;
        let kafka = config.kafka();
        let consumer: KafkaConsumer = kafka
            .consumer_config(&config.group_id)
            .create_with_context(CommitOnRevoke)
            .context("invalid Kafka consumer settings")?;
        let consumer = Arc::new(consumer);
        let producer: FutureProducer = kafka
            .producer_config()
            .create()
            .context("invalid Kafka producer settings")?;
        let state = AppState {
            model: model.clone(),
            metrics: metrics.clone(),
            consumer: consumer.clone(),
            request_topic: config.request_topic.clone(),
            max_batch: config.max_batch(),
        };
        let worker = Worker {
            consumer,
            producer,
            model: model.clone(),
            metrics,
            topics: config.topics(),
            max_batch: config.max_batch(),
            max_request_bytes: config.max_request_bytes,
        };
        let readiness = Refresh::new(state.clone());
        let router = router(
            state,
            config.max_body_bytes(),
            &config.common.trusted_proxies,
        );
        Ok(Self {
            http: HttpServer::bind(config.http_addr, router).await?,
            worker,
            model,
            poll_interval: config.model_poll_interval(),
            readiness,
        })
    }

    /// The HTTP router, for in-process (`oneshot`) tests.
    pub fn router(&self) -> Router {
        self.http.router()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.http.local_addr()
    }

    /// Serves and answers until `shutdown`: drains HTTP, answers the batch in hand,
    /// commits offsets.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let watcher = tokio::spawn(
            self.model
                .clone()
                .watch(self.poll_interval, shutdown.clone()),
        );
        let stop = shutdown.clone();
        let worker = self.worker;
        // If the consumer stops on its own (fatal Kafka error), the whole service stops.
        let worker = tokio::spawn(async move {
            let result = worker.run(stop.clone()).await;
            stop.trigger();
            result
        });
        let served = self
            .readiness
            .alongside(&shutdown, self.http.serve(Config::NAME, shutdown.clone()))
            .await;
        worker
            .await
            .context("request consumer panicked")?
            .context("request consumer failed")?;
        watcher.await.context("model watcher panicked")?;
        served?;
        tracing::info!("prediction-service stopped");
        Ok(())
    }
}

impl ServiceConfig for Config {
    const NAME: &'static str = "prediction-service";

    fn common(&self) -> &CommonArgs {
        &self.common
    }

    fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The service has no database.
    async fn migrate(&self) -> anyhow::Result<()> {
        Ok(())
    }

    async fn serve(&self, shutdown: Shutdown) -> anyhow::Result<()> {
        Application::build(self).await?.run(shutdown).await
    }
}
