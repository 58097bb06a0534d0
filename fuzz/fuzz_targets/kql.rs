#![no_main]
// The property is checked in the library (tgvault::fuzz::kql), so that the
// unit tests replay the corpus through the same code.
libfuzzer_sys::fuzz_target!(|data: &[u8]| tgvault::fuzz::kql(data));
