//! The agent's library target: what other crates use of the agent. Only the launch sequence,
//! which the fuzz bodies in `tests` drive with decoded frames; the rest of the agent is the
//! `zagent` binary.

pub mod sequence;
