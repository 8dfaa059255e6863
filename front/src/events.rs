//! The event bus: the one path for every HOOK_MESSAGE and RETRY to the driver.

/// Tables of the event outbox, applied by `db` in its migration list.
pub const SCHEMA: &str = "";
