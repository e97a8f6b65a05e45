//! The fuzz targets' bodies, one `fn(&[u8])` each, shared by the cargo-fuzz targets in `fuzz/`
//! and by the corpus replay test (`tests/tests/fuzz_corpus.rs`), so that a corpus file replays
//! exactly what the fuzzer ran. Each body feeds the bytes to the decoder the agent or the zygote
//! runs on untrusted input, then to the pure steps that follow it, and panics only on a bug:
//! whatever a decoder accepts must survive re-encoding unchanged, and whatever validation
//! accepts must keep the promises the child relies on (checked in `invariants`).

mod invariants;
pub mod seeds;

use agent_lib::sequence::{Hooks, Kind, LaunchEvent, LaunchState};
use protobuf::Message;
use serde::{de::DeserializeOwned, Serialize};
use std::fmt::Debug;
use wire::codec::{self, CodecError};
use wire::zygote::{ChildEvent, Reply, Request};
use wire::{agent, health, oci, zagent};

/// One fuzz target: its name (the cargo-fuzz target and the corpus directory) and its body.
pub struct Target {
    pub name: &'static str,
    pub body: fn(&[u8]),
}

pub const TARGETS: &[Target] = &[
    Target {
        name: "zygote_frame",
        body: zygote_frame,
    },
    Target {
        name: "oci_spec",
        body: oci_spec,
    },
    Target {
        name: "ttrpc_request",
        body: ttrpc_request,
    },
];

// ---------------------------------------------------------------------------------------------
// Target 1: zygote frames.

/// One frame as the zygote (`Request`) and the agent (`Reply`, `ChildEvent`) decode it; the same
/// bytes are tried as all three, since every side reads frames from a peer it does not trust.
pub fn zygote_frame(data: &[u8]) {
    if let Ok(req) = codec::decode::<Request>(data) {
        frame_round_trip(&req);
        if let Request::Launch(cfg) = &req {
            invariants::zygote_launch_plan(cfg);
        }
    }
    if let Ok(reply) = codec::decode::<Reply>(data) {
        frame_round_trip(&reply);
        for kind in [Kind::Container, Kind::Exec] {
            step(
                LaunchState::Requested(kind),
                LaunchEvent::Zygote(reply.clone()),
            );
        }
    }
    if let Ok(event) = codec::decode::<ChildEvent>(data) {
        frame_round_trip(&event);
        for state in states_awaiting_the_child() {
            step(state, LaunchEvent::Child(event.clone()));
        }
    }
}

/// A decoded frame re-encodes and decodes back to the same message: what one side accepted,
/// the other side can be sent and reads the same.
pub fn frame_round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(msg: &T) {
    let frame = codec::encode(msg).expect("a decoded message re-encodes");
    let back: T = codec::decode(&frame).expect("a re-encoded message decodes");
    assert_eq!(&back, msg, "message changed across a codec round trip");
}

const PID: i32 = 4242;

fn states_awaiting_the_child() -> [LaunchState; 8] {
    [
        LaunchState::Cloned {
            pid: PID,
            kind: Kind::Container,
        },
        LaunchState::Cloned {
            pid: PID,
            kind: Kind::Exec,
        },
        LaunchState::Announced {
            pid: PID,
            kind: Kind::Container,
            spawns: 0,
            console: false,
            hooks: Hooks::NotYet,
        },
        LaunchState::Announced {
            pid: PID,
            kind: Kind::Container,
            spawns: 1,
            console: true,
            hooks: Hooks::Due,
        },
        LaunchState::Announced {
            pid: PID,
            kind: Kind::Exec,
            spawns: 0,
            console: false,
            hooks: Hooks::NotYet,
        },
        LaunchState::Announced {
            pid: PID,
            kind: Kind::Exec,
            spawns: 1,
            console: false,
            hooks: Hooks::NotYet,
        },
        LaunchState::Ready { pid: PID },
        LaunchState::Released { pid: PID },
    ]
}

/// Feeds one event to the agent's launch state machine. A step that keeps the launch alive
/// keeps the child's pid, unless the event names a new one (the zygote's `Launched`, or the
/// child's `Spawned` for the process it cloned into a joined pid namespace).
fn step(state: LaunchState, event: LaunchEvent) {
    let before = state.pid();
    let named = match &event {
        LaunchEvent::Zygote(Reply::Launched { pid })
        | LaunchEvent::Child(ChildEvent::Spawned { pid }) => Some(*pid),
        _ => None,
    };
    let Ok(next) = state.on(event) else { return };
    if !matches!(next, LaunchState::Failed { .. }) {
        assert_eq!(next.pid(), named.or(before), "pid changed: {next:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Target 2: the OCI spec and process carried by CreateContainer and ExecProcess.

/// The first byte picks what the rest is: even, a `grpc.Spec`; odd, a `grpc.Process`.
pub fn oci_spec(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    if which & 1 == 0 {
        if let Some(spec) = parse::<oci::Spec>(rest) {
            check_spec("fuzz", &spec);
        }
    } else if let Some(process) = parse::<oci::Process>(rest) {
        check_process(&process);
    }
}

/// What CreateContainer does with its spec short of launching: convert it, then validate it for
/// container `id`; what validation accepts goes to the zygote as a `Request::Launch`.
pub fn check_spec(id: &str, g: &oci::Spec) {
    let Ok(spec) = oci::spec_from_grpc(g) else {
        return;
    };
    // The protocol is lossy, but only once: a converted spec is in the normal form and survives
    // the trip to protobuf and back unchanged.
    let again = oci::spec_from_grpc(&oci::spec_to_grpc(&spec))
        .expect("a converted spec converts again after spec_to_grpc");
    assert_eq!(
        again, spec,
        "spec changed across spec_to_grpc/spec_from_grpc"
    );
    if let Ok(v) = jail::validate::validate(id, &spec) {
        invariants::validated(&v);
    }
}

/// What ExecProcess does with its process short of launching.
pub fn check_process(g: &oci::Process) {
    let Ok(process) = oci::process_from_grpc(g) else {
        return;
    };
    let again = oci::process_from_grpc(&oci::process_to_grpc(&process))
        .expect("a converted process converts again after process_to_grpc");
    assert_eq!(
        again, process,
        "process changed across the protobuf round trip"
    );
    let console_size = jail::validate::console_size(&process);
    if let Ok(pc) = jail::validate::process_config(&process) {
        invariants::process(&pc);
        let req = Request::Exec(Box::new(wire::zygote::ExecConfig {
            container_id: "fuzz".into(),
            exec_id: "exec".into(),
            process: pc,
            console_size,
            ..Default::default()
        }));
        encodes_or_too_large(&req);
    }
}

/// What the agent sends the zygote either fits a frame and survives the codec, or is refused
/// as too large; nothing else may go wrong.
pub fn encodes_or_too_large(req: &Request) {
    match codec::encode(req) {
        Ok(frame) => {
            let back: Request = codec::decode(&frame).expect("an encoded request decodes");
            assert_eq!(&back, req, "request changed across the codec");
        }
        Err(CodecError::TooLarge(_)) => {}
        Err(e) => panic!("encoding a validated request failed: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Target 3: the ttrpc payload of every served RPC.

/// A served RPC: its ttrpc path and what its handler does with the payload short of acting.
pub struct Rpc {
    pub path: &'static str,
    pub body: fn(&[u8]),
}

/// Every RPC the agent serves: `agent::rpc::SERVED`, grpc.Health and zagent.Admin.
pub const RPCS: &[Rpc] = &[
    Rpc {
        path: "/grpc.AgentService/CreateContainer",
        body: create_container,
    },
    Rpc {
        path: "/grpc.AgentService/StartContainer",
        body: plain::<agent::StartContainerRequest>,
    },
    Rpc {
        path: "/grpc.AgentService/SignalProcess",
        body: plain::<agent::SignalProcessRequest>,
    },
    Rpc {
        path: "/grpc.AgentService/WaitProcess",
        body: plain::<agent::WaitProcessRequest>,
    },
    Rpc {
        path: "/grpc.AgentService/RemoveContainer",
        body: plain::<agent::RemoveContainerRequest>,
    },
    Rpc {
        path: "/grpc.AgentService/WriteStdin",
        body: plain::<agent::WriteStreamRequest>,
    },
    Rpc {
        path: "/grpc.AgentService/ReadStdout",
        body: plain::<agent::ReadStreamRequest>,
    },
    Rpc {
        path: "/grpc.AgentService/ReadStderr",
        body: plain::<agent::ReadStreamRequest>,
    },
    Rpc {
        path: "/grpc.AgentService/CloseStdin",
        body: plain::<agent::CloseStdinRequest>,
    },
    Rpc {
        path: "/grpc.AgentService/CreateSandbox",
        body: plain::<agent::CreateSandboxRequest>,
    },
    Rpc {
        path: "/grpc.AgentService/DestroySandbox",
        body: plain::<agent::DestroySandboxRequest>,
    },
    Rpc {
        path: "/grpc.AgentService/ExecProcess",
        body: exec_process,
    },
    Rpc {
        path: "/grpc.AgentService/TtyWinResize",
        body: plain::<agent::TtyWinResizeRequest>,
    },
    Rpc {
        path: "/grpc.Health/Check",
        body: plain::<health::CheckRequest>,
    },
    Rpc {
        path: "/grpc.Health/Version",
        body: plain::<health::CheckRequest>,
    },
    Rpc {
        path: "/zagent.Admin/ListContainers",
        body: plain::<zagent::ListContainersRequest>,
    },
    // Served later than the ones above: appended, so that the selector bytes of the committed
    // corpus keep naming the same RPCs.
    Rpc {
        path: "/grpc.AgentService/GetGuestDetails",
        body: plain::<agent::GuestDetailsRequest>,
    },
    Rpc {
        path: "/grpc.AgentService/PauseContainer",
        body: plain::<agent::PauseContainerRequest>,
    },
    Rpc {
        path: "/grpc.AgentService/ResumeContainer",
        body: plain::<agent::ResumeContainerRequest>,
    },
    Rpc {
        path: "/grpc.AgentService/StatsContainer",
        body: plain::<agent::StatsContainerRequest>,
    },
    Rpc {
        path: "/grpc.AgentService/UpdateContainer",
        body: update_container,
    },
    Rpc {
        path: "/grpc.AgentService/GetOOMEvent",
        body: plain::<agent::GetOOMEventRequest>,
    },
    Rpc {
        path: "/grpc.AgentService/GetMetrics",
        body: plain::<agent::GetMetricsRequest>,
    },
    Rpc {
        path: "/grpc.AgentService/UpdateInterface",
        body: plain::<agent::UpdateInterfaceRequest>,
    },
    Rpc {
        path: "/grpc.AgentService/UpdateRoutes",
        body: plain::<agent::UpdateRoutesRequest>,
    },
    Rpc {
        path: "/grpc.AgentService/ListInterfaces",
        body: plain::<agent::ListInterfacesRequest>,
    },
    Rpc {
        path: "/grpc.AgentService/ListRoutes",
        body: plain::<agent::ListRoutesRequest>,
    },
    Rpc {
        path: "/grpc.AgentService/AddARPNeighbors",
        body: plain::<agent::AddARPNeighborsRequest>,
    },
    Rpc {
        path: "/grpc.AgentService/OnlineCPUMem",
        body: plain::<agent::OnlineCPUMemRequest>,
    },
    Rpc {
        path: "/grpc.AgentService/MemHotplugByProbe",
        body: plain::<agent::MemHotplugByProbeRequest>,
    },
    Rpc {
        path: "/grpc.AgentService/SetGuestDateTime",
        body: plain::<agent::SetGuestDateTimeRequest>,
    },
    Rpc {
        path: "/grpc.AgentService/ReseedRandomDev",
        body: plain::<agent::ReseedRandomDevRequest>,
    },
    Rpc {
        path: "/grpc.AgentService/CopyFile",
        body: plain::<agent::CopyFileRequest>,
    },
    Rpc {
        path: "/grpc.AgentService/GetVolumeStats",
        body: plain::<agent::VolumeStatsRequest>,
    },
    Rpc {
        path: "/grpc.AgentService/UpdateEphemeralMounts",
        body: plain::<agent::UpdateEphemeralMountsRequest>,
    },
    Rpc {
        path: "/grpc.AgentService/GetIPTables",
        body: plain::<agent::GetIPTablesRequest>,
    },
    Rpc {
        path: "/grpc.AgentService/SetIPTables",
        body: plain::<agent::SetIPTablesRequest>,
    },
    Rpc {
        path: "/grpc.AgentService/AddSwap",
        body: plain::<agent::AddSwapRequest>,
    },
    Rpc {
        path: "/grpc.AgentService/RemoveStaleVirtiofsShareMounts",
        body: plain::<agent::RemoveStaleVirtiofsShareMountsRequest>,
    },
];

/// The first byte picks the RPC (index into `RPCS`); one value past the last means the rest is
/// a whole ttrpc `Request` envelope, dispatched by its service and method like the server does.
pub fn ttrpc_request(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let which = usize::from(which) % (RPCS.len() + 1);
    match RPCS.get(which) {
        Some(rpc) => (rpc.body)(rest),
        None => envelope(rest),
    }
}

fn envelope(data: &[u8]) {
    let Some(req) = parse::<ttrpc::Request>(data) else {
        return;
    };
    let path = format!("/{}/{}", req.service, req.method);
    if let Some(rpc) = RPCS.iter().find(|r| r.path == path) {
        (rpc.body)(&req.payload);
    }
}

/// Decodes a message as the ttrpc server does; what decodes re-encodes to the same message.
pub fn parse<M: Message + PartialEq + Debug>(data: &[u8]) -> Option<M> {
    let msg = M::parse_from_bytes(data).ok()?;
    let bytes = msg.write_to_bytes().expect("a decoded message re-encodes");
    let back = M::parse_from_bytes(&bytes).expect("a re-encoded message decodes");
    assert_eq!(back, msg, "message changed across a protobuf round trip");
    Some(msg)
}

/// RPCs whose handlers take the decoded fields as they are.
fn plain<M: Message + PartialEq + Debug>(data: &[u8]) {
    parse::<M>(data);
}

fn create_container(data: &[u8]) {
    let Some(req) = parse::<agent::CreateContainerRequest>(data) else {
        return;
    };
    if let Some(spec) = req.OCI.as_ref() {
        check_spec(&req.container_id, spec);
    }
}

/// What UpdateContainer does with its resources short of writing them: converted and checked.
fn update_container(data: &[u8]) {
    let Some(req) = parse::<agent::UpdateContainerRequest>(data) else {
        return;
    };
    if let Some(r) = req.resources.as_ref() {
        if let Ok(r) = oci::resources_from_grpc(r) {
            let _ = jail::validate::update_resources(&r);
        }
    }
}

fn exec_process(data: &[u8]) {
    let Some(req) = parse::<agent::ExecProcessRequest>(data) else {
        return;
    };
    if let Some(process) = req.process.as_ref() {
        check_process(process);
    }
}
