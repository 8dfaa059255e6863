//! `one_hm` end to end: the real binary, with pyzmq peers (`tests/py/`), in temp dirs on free
//! loopback ports.

mod curve;
mod fixture;
mod journal;
mod nats;
mod oned_lines;
mod replay;
mod results;
mod subscribers;
