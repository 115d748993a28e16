//! The result of one request, whatever the target: what the workers count and the report
//! sums up.

use uuid::Uuid;

/// The result of one registration.
pub enum Outcome {
    Created(Uuid),
    /// A prediction answered with the expected class.
    Answered,
    /// An HTTP status other than 201, or a store error kind.
    Refused(String),
    /// No answer: connection, timeout or body errors.
    Failed,
}

impl Outcome {
    /// Created, or answered right: what the throughput counts.
    pub fn succeeded(&self) -> bool {
        matches!(self, Self::Created(_) | Self::Answered)
    }

    /// The key under which the report counts it.
    pub fn label(&self) -> String {
        match self {
            Self::Created(_) => SUCCESS[0].to_owned(),
            Self::Answered => SUCCESS[1].to_owned(),
            Self::Refused(label) => label.clone(),
            Self::Failed => "transport".to_owned(),
        }
    }
}

/// The labels of [`Outcome::succeeded`] answers.
pub const SUCCESS: [&str; 2] = ["201", "ok"];
