//! The protocol crate's tests, one binary: reference documents, peers' quirks and property tests.

mod agent_frames;
mod docs_malformed;
mod docs_peers;
mod docs_props;
mod docs_reference;
mod hook_create;
mod hook_props;
mod hook_xml;
mod keys_reference;
mod mad_lines;
mod states_tables;
mod template_props;
mod template_syntax;
mod xmlrpc_props;
