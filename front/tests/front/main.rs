//! oned-lite's tests, one binary: the API through real clients (Python, Ruby, pyone), events
//! and their acknowledgements, restarts, retention and hostile clients.

mod api_common;
mod api_events;
mod api_python;
mod api_restart;
mod api_ruby;
mod cloud_common;
mod cloud_lifecycle;
mod config_reference;
mod events_ack;
mod events_api_atomic;
mod events_driver;
mod hook_log_retention;
mod hostile_clients;
