//! vidchat as a library: the modules of the binary, public so that fuzz
//! targets and benchmarks can drive the decoders directly.
//!
//! Data path, one module each: `capture` → `codec` → `wire` → `net` →
//! `window`; `secure` encrypts, `session` runs a call, `handoff` passes
//! frames between threads.

pub mod capture;
pub mod cli;
pub mod codec;
pub mod handoff;
pub mod net;
pub mod secure;
pub mod session;
pub mod stats;
pub mod text;
pub mod window;
pub mod wire;
