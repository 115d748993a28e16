//! `--verify`: every user the run created is notified exactly once (by user id), and how
//! long registration → delivery took.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Args;
use notification_service::store::{Delivery, NotificationStore};
use serde::Serialize;
use service_kit::db::Database;
use uuid::Uuid;

use super::latency::{Summary, new_histogram};

/// Where the deliveries are read from.
#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// notification-service base URL (`GET /notifications`, at most 1000 users a run).
    #[arg(
        long,
        env = "NOTIFICATION_SERVICE_URL",
        default_value = "http://127.0.0.1:8001"
    )]
    notifications_url: String,

    /// Admin bearer token of the notification-service.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,

    /// Read deliveries from the notification-service database instead of its API (no
    /// size limit; for large runs).
    #[arg(long, hide_env_values = true)]
    notifications_database_url: Option<String>,

    /// Seconds to wait for the last delivery.
    #[arg(long, default_value_t = 120.0)]
    verify_timeout: f64,
}

/// A user the run created, and when its request was sent.
pub struct Created {
    pub user_id: Uuid,
    pub sent_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
pub struct Verification {
    pub created: usize,
    pub delivered: usize,
    pub missing: usize,
    /// Users notified more than once.
    pub duplicated: usize,
    /// Notifications of this run for users the run did not see created (a request that
    /// timed out on the client but committed on the server).
    pub unexpected: usize,
    pub exactly_once: bool,
    /// From the end of the load run until the last delivery was recorded.
    pub wait_seconds: f64,
    /// Request sent → notification delivered and recorded.
    pub end_to_end_latency_ms: Summary,
}

enum Source {
    Api {
        client: reqwest::Client,
        url: String,
        token: Option<String>,
    },
    Database(NotificationStore),
}

pub async fn check(
    args: &VerifyArgs,
    run_id: &str,
    created: &[Created],
) -> anyhow::Result<Verification> {
    let source = Source::open(args, created.len()).await?;
    let prefix = format!("load-{run_id}-");
    let wanted: HashSet<Uuid> = created.iter().map(|c| c.user_id).collect();
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(args.verify_timeout);
    let mut rows = source.fetch(&prefix).await?;
    while !all_delivered(&rows, &wanted) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        rows = source.fetch(&prefix).await?;
    }
    let wait_seconds = start.elapsed().as_secs_f64();
    // A late second delivery would show up shortly after the first: look once more.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rows = source.fetch(&prefix).await?;
    Ok(tally(created, &rows, wait_seconds))
}

fn all_delivered(rows: &[Delivery], wanted: &HashSet<Uuid>) -> bool {
    let seen: HashSet<Uuid> = rows.iter().map(|r| r.user_id).collect();
    wanted.is_subset(&seen)
}

fn tally(created: &[Created], rows: &[Delivery], wait_seconds: f64) -> Verification {
    let mut per_user: HashMap<Uuid, Vec<DateTime<Utc>>> = HashMap::new();
    for row in rows {
        per_user
            .entry(row.user_id)
            .or_default()
            .push(row.delivered_at);
    }
    let mut latency = new_histogram();
    let mut delivered = 0;
    for c in created {
        if let Some(first) = per_user.get(&c.user_id).and_then(|t| t.iter().min()) {
            delivered += 1;
            let micros = (*first - c.sent_at).num_microseconds().unwrap_or(0);
            latency.saturating_record(u64::try_from(micros).unwrap_or(0).max(1));
        }
    }
    let known: HashSet<Uuid> = created.iter().map(|c| c.user_id).collect();
    let duplicated = per_user.values().filter(|t| t.len() > 1).count();
    let unexpected = per_user.keys().filter(|id| !known.contains(id)).count();
    let missing = created.len() - delivered;
    Verification {
        created: created.len(),
        delivered,
        missing,
        duplicated,
        unexpected,
        exactly_once: missing == 0 && duplicated == 0,
        wait_seconds,
        end_to_end_latency_ms: Summary::of(&latency),
    }
}

impl Source {
    async fn open(args: &VerifyArgs, created: usize) -> anyhow::Result<Self> {
        if let Some(url) = &args.notifications_database_url {
            let db = Database::connect(url, 1)
                .await
                .context("cannot connect to the notification database")?;
            return Ok(Self::Database(NotificationStore::new(db)));
        }
        anyhow::ensure!(
            created <= 1000,
            "GET /notifications shows at most 1000: verify {created} users with --notifications-database-url"
        );
        Ok(Self::Api {
            client: reqwest::Client::new(),
            url: format!(
                "{}/notifications?limit=1000",
                args.notifications_url.trim_end_matches('/')
            ),
            token: args.admin_token.clone(),
        })
    }

    /// Deliveries of this run's users (their emails start with `prefix`).
    async fn fetch(&self, prefix: &str) -> anyhow::Result<Vec<Delivery>> {
        match self {
            Self::Api { client, url, token } => {
                from_api(client, url, token.as_deref(), prefix).await
            }
            Self::Database(store) => store
                .deliveries_to_emails_starting(prefix)
                .await
                .context("reading notifications"),
        }
    }
}

async fn from_api(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    prefix: &str,
) -> anyhow::Result<Vec<Delivery>> {
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.context("GET /notifications")?;
    anyhow::ensure!(
        response.status().is_success(),
        "GET /notifications answered {} (is --admin-token / ADMIN_TOKEN set?)",
        response.status()
    );
    let list: Vec<serde_json::Value> = response.json().await?;
    Ok(list
        .iter()
        .filter(|n| n["email"].as_str().is_some_and(|e| e.starts_with(prefix)))
        .filter_map(|n| {
            Some(Delivery {
                user_id: n["user_id"].as_str()?.parse().ok()?,
                delivered_at: n["delivered_at"].as_str()?.parse().ok()?,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(millis: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_800_000_000_000 + millis).expect("valid time")
    }

    fn created(user_id: Uuid, millis: i64) -> Created {
        Created {
            user_id,
            sent_at: at(millis),
        }
    }

    fn delivery(user_id: Uuid, millis: i64) -> Delivery {
        Delivery {
            user_id,
            delivered_at: at(millis),
        }
    }

    #[test]
    fn every_user_once_is_exactly_once_and_latency_runs_from_sent_to_delivered() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let created = [created(a, 0), created(b, 10)];
        let rows = [delivery(a, 4), delivery(b, 30)];

        let v = tally(&created, &rows, 0.5);

        assert_eq!(
            (v.delivered, v.missing, v.duplicated, v.unexpected),
            (2, 0, 0, 0)
        );
        assert!(v.exactly_once);
        assert!((v.end_to_end_latency_ms.max - 20.0).abs() < 0.1, "{v:?}");
        assert!((v.end_to_end_latency_ms.p50 - 4.0).abs() < 0.1, "{v:?}");
    }

    #[test]
    fn a_missing_or_repeated_notification_fails_the_check() {
        let (a, b, stranger) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let created = [created(a, 0), created(b, 0)];
        // a twice (the later one must not count as its latency), b never, and one user
        // this run did not see created.
        let rows = [delivery(a, 50), delivery(a, 5), delivery(stranger, 1)];

        let v = tally(&created, &rows, 0.5);

        assert_eq!(
            (v.delivered, v.missing, v.duplicated, v.unexpected),
            (1, 1, 1, 1)
        );
        assert!(!v.exactly_once);
        assert!((v.end_to_end_latency_ms.max - 5.0).abs() < 0.1, "{v:?}");
    }

    #[test]
    fn all_delivered_waits_for_every_created_user() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let wanted = HashSet::from([a, b]);
        assert!(!all_delivered(&[delivery(a, 1)], &wanted));
        assert!(all_delivered(&[delivery(b, 1), delivery(a, 2)], &wanted));
    }
}
