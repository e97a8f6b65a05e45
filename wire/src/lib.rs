//! zagent's wire formats. `zygote`, `codec` and `channel` carry the agent <-> zygote <-> child
//! protocol and have no protobuf in them; the Kata agent ttrpc protocol is generated into
//! OUT_DIR behind the `ttrpc` feature so that `jail` never sees protobuf.

pub mod channel;
pub mod codec;
pub mod zygote;

/// Everything generated from `protos/*.proto` by build.rs. Private so that the public
/// paths are the re-exports below; the generated files refer to each other as
/// `super::<file>::Type`, which is why they must stay siblings in one parent module.
#[cfg(feature = "ttrpc")]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/wire_protocols.rs"));
}

#[cfg(feature = "ttrpc")]
pub use generated::{agent, agent_ttrpc, csi, health, health_ttrpc, types, zagent, zagent_ttrpc};

#[cfg(feature = "ttrpc")]
pub mod oci;

#[cfg(feature = "ttrpc")]
pub mod connect;
