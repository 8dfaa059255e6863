//! The NATS JetStream bus of the distributed mode, shared by `one_hm` and `onehem-server`.
//!
//! The driver stores every event in the events stream before it acknowledges it to the
//! front-end; HEMs read the stream through one durable consumer per partition, claim each hook's
//! start in a key-value bucket and publish results to the results stream, which the driver reads
//! back and acknowledges once the front-end stored them (ARCHITECTURE.md "Distributed mode").
//! This crate holds what both sides must agree on: how to connect ([`Settings`]), the names and
//! shapes of the streams ([`Layout`]) and the message ids that make a re-sent event one message.

pub mod connect;
pub mod layout;

pub use connect::{Auth, BusError, Settings, Tls, connect};
pub use layout::{Layout, StreamLimits};

/// Header holding the JetStream message id (de-duplication within the stream's window).
pub const MSG_ID: &str = "Nats-Msg-Id";
