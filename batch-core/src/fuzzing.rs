//! Fuzz bodies (feature "fuzzing").
