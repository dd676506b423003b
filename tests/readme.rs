//! The Rust snippets of the workspace's READMEs, compiled (and, unless
//! marked `no_run`, run) as doctests: `cargo test -p e2e-tests --doc`.
//! Nothing else lives here.

#![doc = include_str!("../README.md")]

#[doc = include_str!("../batch-core/README.md")]
pub mod batch_core_readme {}

#[doc = include_str!("../batch-blocking/README.md")]
pub mod batch_blocking_readme {}

#[doc = include_str!("../batch-async/README.md")]
pub mod batch_async_readme {}

#[doc = include_str!("../batch-emulator/README.md")]
pub mod batch_emulator_readme {}

#[doc = include_str!("../batch-store/README.md")]
pub mod batch_store_readme {}
