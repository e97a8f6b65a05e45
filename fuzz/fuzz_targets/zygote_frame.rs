//! One zygote-protocol frame, decoded as the zygote's Request and the agent's Reply and ChildEvent.
//! The body is `tests::fuzz_bodies::zygote_frame`, shared with the corpus replay test.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tests::fuzz_bodies::zygote_frame(data));
