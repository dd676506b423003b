//! The Files and Batches API: wire types, level-1 request builders and response parsers.

mod endpoint;
mod error_body;
pub(crate) mod requests;
mod responses;
mod status;
pub(crate) mod types;

pub use crate::provider::{AuthScheme, Provider, ProviderKind, Windows, api_config_for};
pub use endpoint::Endpoint;
pub use error_body::{ApiError, ErrorObject, ErrorResponse};
pub use requests::{
    ApiBase, ApiConfig, ApiKey, Boundary, ConfigError, IdProblem, ListBatches, ListFiles,
    ListOrder, Outgoing, RequestError, ShardRef, UploadFile, cancel_batch, create_batch,
    delete_file, file_content, list_batches, list_files, retrieve_batch, retrieve_file,
    upload_file, upload_file_bytes, validate_id,
};
pub use responses::{
    ResponseError, parse_api_error, parse_batch, parse_batch_list, parse_deleted_file, parse_file,
    parse_file_list,
};
pub use status::BatchStatus;
pub use types::{
    Batch, BatchError, BatchErrors, BatchUsage, CompletionWindow, CreateBatch, DeletedFile,
    ExpiresAfter, ExpiresAnchor, FileObject, FilePurpose, FileStatus, InputTokensDetails, List,
    ListItem, OutputTokensDetails, ParamError, RequestCounts, validate_metadata,
};
