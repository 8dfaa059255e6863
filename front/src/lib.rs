//! oned-lite: the front-end. `main` parses flags and calls [`run`].

pub mod api;
pub mod cloud;
pub mod config;
pub mod db;
pub mod driver_link;
pub mod events;
pub mod hook_log;
pub mod hook_pool;
pub mod server;
pub mod users;
