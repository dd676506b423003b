//! The Files and Batches API: wire types, level-1 request builders and response parsers.

mod endpoint;
mod error_body;
mod status;
mod types;

pub use endpoint::Endpoint;
pub use error_body::*;
pub use status::*;
pub use types::*;
