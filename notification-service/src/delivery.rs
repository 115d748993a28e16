//! Delivery channels for the welcome notification.

use clap::ValueEnum;
use events::UserRegistered;

/// Where welcome notifications go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Channel {
    /// Write the notification to the service log.
    #[default]
    Log,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("channel {channel} failed: {reason}")]
    Failed {
        channel: &'static str,
        reason: String,
    },
}

impl Channel {
    pub fn name(self) -> &'static str {
        match self {
            Self::Log => "log",
        }
    }

    /// Sends the welcome notification for `user`.
    pub async fn deliver(self, user: &UserRegistered) -> Result<(), DeliveryError> {
        match self {
            // The address is personal data: the log names the user by id only.
            Self::Log => {
                tracing::info!(user_id = %user.user_id, "welcome notification delivered");
                Ok(())
            }
        }
    }
}
