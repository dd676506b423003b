//! (placeholder, to be written)
