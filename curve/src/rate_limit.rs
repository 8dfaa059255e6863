//! How many refused connections the CURVE side logs: a client retrying with a wrong key, or
//! without CURVE, reconnects every few hundred milliseconds and would otherwise fill the log.

use std::time::{Duration, Instant};

use tracing::warn;

/// Refusals logged per window; the rest are counted and summed up when the next one opens.
pub const PER_WINDOW: u32 = 10;
pub const WINDOW: Duration = Duration::from_secs(60);

/// One budget of [`PER_WINDOW`] logged refusals a [`WINDOW`].
#[derive(Debug, Default)]
pub struct RateLimit {
    window: Option<Instant>,
    logged: u32,
    pub(crate) suppressed: u64,
}

impl RateLimit {
    /// Whether one more refusal may be logged now.
    pub fn admit(&mut self, now: Instant) -> bool {
        let fresh = self
            .window
            .is_none_or(|start| now.duration_since(start) >= WINDOW);
        if fresh {
            if self.suppressed > 0 {
                warn!(
                    refused = self.suppressed,
                    "more CURVE connections were refused in the last minute than were logged"
                );
            }
            self.window = Some(now);
            self.logged = 0;
            self.suppressed = 0;
        }
        if self.logged >= PER_WINDOW {
            self.suppressed += 1;
            return false;
        }
        self.logged += 1;
        true
    }
}
