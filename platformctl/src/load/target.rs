//! What a load run drives: registrations over HTTP or straight through the store, or
//! predictions over HTTP or Kafka request/reply.

use hyper::StatusCode;
use serde::Deserialize;
use service_kit::kafka::KafkaArgs;
use user_service::domain::NewUser;
use user_service::store::{RegisterError, User, UserStore};
use uuid::Uuid;

use super::args::{LoadArgs, TargetKind};
use super::http::Client;
use super::outcome::Outcome;
use super::predict::{KafkaRoundTrip, Requests, judge};

pub enum Driver {
    Http(Client),
    Store(UserStore),
    PredictHttp(Client, Requests),
    PredictKafka(KafkaRoundTrip, Requests),
}

#[derive(Deserialize)]
struct Created {
    user_id: Uuid,
}

pub struct Target {
    driver: Driver,
    run_id: String,
    concurrency: usize,
}

impl Target {
    pub async fn connect(args: &LoadArgs, run_id: &str) -> anyhow::Result<Self> {
        let endpoint = |path: &str| format!("{}{path}", args.url.trim_end_matches('/'));
        let driver = match (args.target, &args.database_url) {
            (TargetKind::Register, Some(url)) => Driver::Store(store(url, args.concurrency).await?),
            (TargetKind::Register, None) => Driver::Http(Client::new(&endpoint("/register/"))?),
            (TargetKind::PredictHttp, _) => {
                Driver::PredictHttp(Client::new(&endpoint("/predict"))?, Requests::load()?)
            }
            (TargetKind::PredictKafka, _) => Driver::PredictKafka(
                KafkaRoundTrip::connect(&args.topics).await?,
                Requests::load()?,
            ),
        };
        Ok(Self {
            driver,
            run_id: run_id.to_owned(),
            concurrency: args.concurrency,
        })
    }

    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    pub fn name(&self) -> &'static str {
        match self.driver {
            Driver::Http(_) => "http",
            Driver::Store(_) => "store",
            Driver::PredictHttp(..) => "predict-http",
            Driver::PredictKafka(..) => "predict-kafka",
        }
    }

    /// Sends request number `n` of this run.
    pub async fn send(&self, n: u64) -> Outcome {
        match &self.driver {
            Driver::Http(client) => {
                let (user_name, email) = self.user(n);
                // Both fields are plain ASCII made here: no JSON escaping needed.
                let body = format!(r#"{{"user_name":"{user_name}","email":"{email}"}}"#);
                registered(client.post(body).await)
            }
            Driver::Store(store) => {
                let (user_name, email) = self.user(n);
                direct(store, &user_name, &email).await
            }
            Driver::PredictHttp(client, requests) => {
                let (body, expected) = requests.body(n, &Uuid::new_v4().to_string());
                predicted(client.post(body).await, expected)
            }
            Driver::PredictKafka(round_trip, requests) => round_trip.ask(requests, n).await,
        }
    }

    fn user(&self, n: u64) -> (String, String) {
        (
            format!("Load {n}"),
            format!("load-{}-{n}@example.com", self.run_id),
        )
    }
}

/// A 201 must carry the new user's id.
fn registered(reply: Option<(StatusCode, bytes::Bytes)>) -> Outcome {
    match reply {
        None => Outcome::Failed,
        Some((StatusCode::CREATED, body)) => serde_json::from_slice::<Created>(&body)
            .map_or(Outcome::Failed, |created| Outcome::Created(created.user_id)),
        Some((status, _)) => Outcome::Refused(status.as_str().to_owned()),
    }
}

/// A 200 must carry the expected class.
fn predicted(reply: Option<(StatusCode, bytes::Bytes)>, expected: i64) -> Outcome {
    match reply {
        None => Outcome::Failed,
        Some((StatusCode::OK, body)) => {
            serde_json::from_slice(&body).map_or(Outcome::Failed, |answer| judge(&answer, expected))
        }
        Some((status, _)) => Outcome::Refused(status.as_str().to_owned()),
    }
}

/// A pool as large as the concurrency, on a migrated user database.
async fn store(url: &str, concurrency: usize) -> anyhow::Result<UserStore> {
    let mut config = user_service::Config::new(url, KafkaArgs::new("unused:9092", "unused"));
    config.database_max_connections = u32::try_from(concurrency).unwrap_or(u32::MAX);
    let db = user_service::app::connect_and_migrate(&config).await?;
    Ok(UserStore::new(db))
}

async fn direct(store: &UserStore, user_name: &str, email: &str) -> Outcome {
    let Ok(new_user) = NewUser::parse(user_name, email) else {
        return Outcome::Refused("invalid".to_owned());
    };
    let user = User::new(&new_user);
    match store.register(&user, None, None).await {
        Ok(()) => Outcome::Created(user.user_id),
        Err(RegisterError::DuplicateEmail | RegisterError::KeyInUse) => {
            Outcome::Refused("duplicate".to_owned())
        }
        Err(RegisterError::Db(error)) if error.is_unavailable() => {
            Outcome::Refused("unavailable".to_owned())
        }
        Err(RegisterError::Db(_)) => Outcome::Failed,
    }
}
