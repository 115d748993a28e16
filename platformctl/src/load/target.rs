//! What a load run drives: the HTTP API, or the store's registration transaction alone.

use service_kit::kafka::KafkaArgs;
use user_service::domain::NewUser;
use user_service::store::{RegisterError, User, UserStore};
use uuid::Uuid;

use super::LoadArgs;
use super::http::Client;

/// The result of one registration.
pub enum Outcome {
    Created(Uuid),
    /// An HTTP status other than 201, or a store error kind.
    Refused(String),
    /// No answer: connection, timeout or body errors.
    Failed,
}

impl Outcome {
    pub fn is_created(&self) -> bool {
        matches!(self, Self::Created(_))
    }

    /// The key under which the report counts it.
    pub fn label(&self) -> String {
        match self {
            Self::Created(_) => "201".to_owned(),
            Self::Refused(label) => label.clone(),
            Self::Failed => "transport".to_owned(),
        }
    }
}

pub enum Driver {
    Http(Client),
    Store(UserStore),
}

pub struct Target {
    driver: Driver,
    run_id: String,
    concurrency: usize,
}

impl Target {
    pub async fn connect(args: &LoadArgs, run_id: &str) -> anyhow::Result<Self> {
        let driver = match &args.database_url {
            Some(url) => Driver::Store(store(url, args.concurrency).await?),
            None => Driver::Http(Client::new(&format!(
                "{}/register/",
                args.url.trim_end_matches('/')
            ))?),
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
        }
    }

    /// Registers user number `n` of this run.
    pub async fn register(&self, n: u64) -> Outcome {
        let user_name = format!("Load {n}");
        let email = format!("load-{}-{n}@example.com", self.run_id);
        match &self.driver {
            // Both fields are plain ASCII made here: no JSON escaping needed.
            Driver::Http(client) => {
                let body = format!(r#"{{"user_name":"{user_name}","email":"{email}"}}"#);
                client.post(body).await
            }
            Driver::Store(store) => direct(store, &user_name, &email).await,
        }
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
