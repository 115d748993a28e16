//! The log channel: the default, needs nothing.

use events::Event;

/// The address is personal data: the log names the user by id only.
pub fn deliver(event: &Event) {
    tracing::info!(
        user_id = %event.body.user_id,
        event_id = %event.attributes.id,
        "welcome notification delivered"
    );
}
