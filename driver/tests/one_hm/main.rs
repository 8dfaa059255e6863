//! `one_hm` end to end: the real binary, with pyzmq peers (`tests/py/`), in temp dirs on free
//! loopback ports.

mod config_reference;
mod curve;
mod fixture;
mod front_killed;
mod journal;
mod nats;
mod oned_lines;
mod replay;
mod results;
mod subscribers;
