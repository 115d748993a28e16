//! The serving model and its hot reload.
//!
//! The file at `MODEL_PATH` is polled: when its modification time, size or inode change
//! (an in-place write, or a rename as Kubernetes does for a ConfigMap), it is read and
//! hashed, and a file with new content is loaded and self-checked off the async workers.
//! A good file replaces the model between two batches; a bad one is refused with a
//! warning and `model_reloads_total{outcome="failure"}`, and the previous model keeps
//! serving. A refused file is not retried until it changes again.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use service_kit::Shutdown;

use super::{Model, ModelError};
use crate::metrics::{PredictionMetrics, ReloadOutcome};

/// The model serving now, shared by every request path.
pub struct ModelStore {
    path: PathBuf,
    current: RwLock<Arc<Model>>,
    metrics: PredictionMetrics,
    /// The file's state before it was first read: a change made before the watch starts
    /// is seen too.
    opened: Option<Stamp>,
}

/// Outcome of one poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    Unchanged,
    Loaded { version: String, sha256: String },
    Refused(String),
}

/// What identifies the file's state without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &std::path::Path) -> std::io::Result<Stamp> {
    let meta = std::fs::metadata(path)?;
    Ok(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: meta.ino(),
    })
}

impl ModelStore {
    /// Loads the model at `path`; the service does not start without a good one.
    pub fn open(path: PathBuf, metrics: PredictionMetrics) -> Result<Arc<Self>, ModelError> {
        let opened = stamp(&path).ok();
        let model = Model::load(&path)?;
        set_info(&metrics, None, &model);
        tracing::info!(
            path = %path.display(),
            name = %model.info.name,
            version = %model.info.version,
            sha256 = %model.info.sha256,
            trees = model.info.trees,
            nodes = model.info.nodes,
            "model loaded"
        );
        Ok(Arc::new(Self {
            path,
            current: RwLock::new(Arc::new(model)),
            metrics,
            opened,
        }))
    }

    pub fn current(&self) -> Arc<Model> {
        match self.current.read() {
            Ok(model) => model.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Polls the file every `interval` until `shutdown`.
    pub async fn watch(self: Arc<Self>, interval: Duration, shutdown: Shutdown) {
        let mut seen = self.opened;
        let mut refused: Option<String> = None;
        loop {
            tokio::select! {
                () = shutdown.wait() => return,
                () = tokio::time::sleep(interval) => {}
            }
            let store = self.clone();
            let known = (seen, refused.clone());
            let Ok((now, result)) =
                tokio::task::spawn_blocking(move || store.poll(known.0, known.1.as_deref())).await
            else {
                continue;
            };
            seen = now;
            if let Reload::Refused(sha) = result {
                refused = Some(sha);
            }
        }
    }

    /// One poll: what the file looks like now, and what was done about it. `refused` is
    /// the sha256 of the last refused file.
    fn poll(&self, seen: Option<Stamp>, refused: Option<&str>) -> (Option<Stamp>, Reload) {
        let now = match stamp(&self.path) {
            Ok(now) => now,
            Err(error) => {
                if seen.is_some() {
                    tracing::warn!(path = %self.path.display(), %error, "model file unreadable; the loaded model keeps serving");
                }
                return (None, Reload::Unchanged);
            }
        };
        if seen == Some(now) {
            return (seen, Reload::Unchanged);
        }
        let result = self.reload(refused);
        (Some(now), result)
    }

    /// Loads the file if its content is new; refuses it if it does not load or check.
    pub fn reload(&self, refused: Option<&str>) -> Reload {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::warn!(path = %self.path.display(), %error, "model file unreadable; the loaded model keeps serving");
                return Reload::Unchanged;
            }
        };
        let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        if sha256 == self.current().info.sha256 || refused == Some(sha256.as_str()) {
            return Reload::Unchanged;
        }
        match Model::from_bytes(&bytes) {
            Ok(model) => self.install(model),
            Err(error) => {
                self.metrics.reloaded(ReloadOutcome::Failure);
                let serving = self.current();
                tracing::warn!(
                    path = %self.path.display(),
                    %sha256,
                    error = %error,
                    serving_version = %serving.info.version,
                    serving_sha256 = %serving.info.sha256,
                    "model file refused; the previous model keeps serving"
                );
                Reload::Refused(sha256)
            }
        }
    }

    fn install(&self, model: Model) -> Reload {
        let (version, sha256) = (model.info.version.clone(), model.info.sha256.clone());
        let model = Arc::new(model);
        let previous = match self.current.write() {
            Ok(mut current) => std::mem::replace(&mut *current, model.clone()),
            Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), model.clone()),
        };
        set_info(&self.metrics, Some(&previous), &model);
        self.metrics.reloaded(ReloadOutcome::Success);
        tracing::info!(
            path = %self.path.display(),
            %version,
            %sha256,
            previous_version = %previous.info.version,
            previous_sha256 = %previous.info.sha256,
            "model reloaded"
        );
        Reload::Loaded { version, sha256 }
    }
}

fn set_info(metrics: &PredictionMetrics, previous: Option<&Model>, model: &Model) {
    if let Some(previous) = previous {
        let _ = metrics
            .model_info
            .remove_label_values(&[&previous.info.version, &previous.info.sha256]);
    }
    metrics
        .model_info
        .with_label_values(&[&model.info.version, &model.info.sha256])
        .set(1);
}
