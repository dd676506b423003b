//! End-to-end tests: the blocking (ureq) and async (reqwest) transports run
//! the same scenarios against the emulator, started in-process on loopback
//! at a high speed, and must agree.

mod common;

mod anthropic;
mod anthropic_by_id;
mod anthropic_stream;
mod by_id;
mod credentials;

mod faults;
mod fidelity;
mod happy;
mod kept_handle;
mod library;
mod misbehaving;
mod partial;
mod providers;
mod secrets;
mod seed_ops;
mod settings;
mod streaming;
mod typed;
mod webhooks;
mod wire;
