#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| batch_core::fuzzing::checkpoint(data));
