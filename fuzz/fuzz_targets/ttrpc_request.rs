//! The payload of any RPC the agent serves, or a whole ttrpc Request envelope.
//! The body is `tests::fuzz_bodies::ttrpc_request`, shared with the corpus replay test.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tests::fuzz_bodies::ttrpc_request(data));
