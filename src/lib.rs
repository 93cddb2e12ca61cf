//! vidchat as a library: the modules of the binary, public so that fuzz
//! targets and benchmarks can drive the decoders directly.
//!
//! Data path, one module each: `capture` → `codec` → `wire` → `net` →
//! `window`; `secure` encrypts, `session` runs a call, `handoff` passes
//! frames between threads, `interrupt` turns Ctrl-C into a hang-up, and
//! `call` holds what all of them share (why a call ended, the stop flag,
//! the clock), and `shared` lets a typed error ride in a cloned value.

pub mod call;
pub mod capture;
pub mod cli;
pub mod codec;
pub mod handoff;
pub mod interrupt;
pub mod media;
pub mod net;
pub mod secure;
pub mod session;
pub mod shared;
pub mod stats;
pub mod text;
pub mod trust;
pub mod window;
pub mod wire;
