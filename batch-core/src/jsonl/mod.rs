//! JSONL: encoding request lines and decoding result files chunk by chunk.

mod decode;
mod encode;

pub use decode::*;
pub use encode::*;
