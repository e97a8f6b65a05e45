//! Wire-compatibility tests against the Kata agent protocol: field numbers as they show
//! up in encoded bytes, and the ttrpc service/method names the host dials.

use std::sync::Arc;

use protobuf::Message;

use crate::agent::CreateContainerRequest;
use crate::oci as grpc;

/// A protobuf key byte for fields 1..=15: (field_number << 3) | wire_type.
fn tag(field: u8, wire_type: u8) -> u8 {
    (field << 3) | wire_type
}

const LEN: u8 = 2;
const VARINT: u8 = 0;

#[test]
fn create_container_request_uses_kata_field_numbers() -> Result<(), protobuf::Error> {
    let req = CreateContainerRequest {
        container_id: "c1".into(),
        ..Default::default()
    };
    assert_eq!(req.write_to_bytes()?, [tag(1, LEN), 2, b'c', b'1']);

    // Kata puts the OCI spec in field 6; an empty Spec still encodes as a present message.
    let req = CreateContainerRequest {
        OCI: Some(grpc::Spec::new()).into(),
        ..Default::default()
    };
    assert_eq!(req.write_to_bytes()?, [tag(6, LEN), 0]);

    let req = CreateContainerRequest {
        sandbox_pidns: true,
        ..Default::default()
    };
    assert_eq!(req.write_to_bytes()?, [tag(7, VARINT), 1]);
    Ok(())
}

#[test]
fn spec_fields_use_kata_field_numbers() -> Result<(), protobuf::Error> {
    let spec = grpc::Spec {
        Hostname: "h".into(),
        ..Default::default()
    };
    assert_eq!(spec.write_to_bytes()?, [tag(4, LEN), 1, b'h']);

    let spec = grpc::Spec {
        Linux: Some(grpc::Linux::new()).into(),
        ..Default::default()
    };
    assert_eq!(spec.write_to_bytes()?, [tag(8, LEN), 0]);

    let mut syscall = grpc::LinuxSyscall::new();
    syscall.set_errnoret(0);
    // The oneof gives errno presence: 0 is still written, in field 3.
    assert_eq!(syscall.write_to_bytes()?, [tag(3, VARINT), 0]);
    Ok(())
}

#[test]
fn decodes_bytes_laid_out_like_a_kata_host_would() -> Result<(), protobuf::Error> {
    // ExecProcessRequest { container_id: "a" (1), exec_id: "b" (2), process (4) { Cwd (6): "/" } }
    let bytes = [
        tag(1, LEN),
        1,
        b'a',
        tag(2, LEN),
        1,
        b'b',
        tag(4, LEN),
        3,
        tag(6, LEN),
        1,
        b'/',
    ];
    let req = crate::agent::ExecProcessRequest::parse_from_bytes(&bytes)?;
    assert_eq!(
        (req.container_id.as_str(), req.exec_id.as_str()),
        ("a", "b")
    );
    assert_eq!(req.process.as_ref().map(|p| p.Cwd.as_str()), Some("/"));
    Ok(())
}

struct Unimplemented;

#[async_trait::async_trait]
impl crate::agent_ttrpc::AgentService for Unimplemented {}

#[async_trait::async_trait]
impl crate::health_ttrpc::Health for Unimplemented {}

#[test]
fn services_register_under_kata_names() {
    let agent = crate::agent_ttrpc::create_agent_service(Arc::new(Unimplemented));
    let methods = &agent
        .get("grpc.AgentService")
        .expect("service name")
        .methods;
    for name in [
        "CreateContainer",
        "ExecProcess",
        "WaitProcess",
        "ReadStdout",
        "OnlineCPUMem",
    ] {
        assert!(methods.contains_key(name), "{name} missing");
    }
    let health = crate::health_ttrpc::create_health(Arc::new(Unimplemented));
    let methods = &health.get("grpc.Health").expect("service name").methods;
    assert!(methods.contains_key("Check") && methods.contains_key("Version"));
}
