//! What the daemons need to be scraped by Prometheus: lock-free instruments for the hot path
//! ([`Counter`], [`Gauge`], [`Histogram`], [`KeyedCounters`]), the text exposition format 0.0.4
//! ([`Exposition`]), and a small HTTP server for `GET /metrics` and `GET /health`
//! ([`MetricsServer`]) on its own thread, so that a scrape never runs on a daemon's own threads.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod exposition;
mod instruments;
mod listen;
mod server;

pub use exposition::{Exposition, Kind};
pub use instruments::{Counter, Gauge, Histogram, KeyedCounters, SECONDS_BUCKETS};
pub use listen::{ListenError, bind, parse_listen};
pub use server::{Health, MetricsServer, Source};
