//! The Files and Batches API: wire types, level-1 request builders and response parsers.

mod endpoint;
mod error_body;
mod status;
mod types;

pub use endpoint::Endpoint;
pub use error_body::{ApiError, ErrorObject, ErrorResponse};
pub use status::BatchStatus;
pub use types::{
    Batch, BatchError, BatchErrors, BatchUsage, CompletionWindow, CreateBatch, DeletedFile,
    ExpiresAfter, ExpiresAnchor, FileObject, FilePurpose, FileStatus, InputTokensDetails, List,
    ListItem, OutputTokensDetails, ParamError, RequestCounts, validate_metadata,
};
