//! Blocking XML-RPC client.
