//! A protobuf grpc.Spec or grpc.Process, converted to OCI and validated.
//! The body is `tests::fuzz_bodies::oci_spec`, shared with the corpus replay test.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tests::fuzz_bodies::oci_spec(data));
