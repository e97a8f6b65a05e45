//! What every phase of a run needs: the plan, the start of the run's time line, the spec the
//! lifecycles use, the agents and one connection to each for the sequential phases. Made by
//! `setup`, used by the phases, so that no phase depends on the module that runs it.

use super::clock::T0;
use super::driver::{Agent, Client};
use super::Plan;
use std::sync::Arc;

pub struct Ctx {
    pub t0: T0,
    pub plan: Plan,
    pub spec: Arc<wire::oci::Spec>,
    pub agents: Vec<Agent>,
    /// One connection per agent for the sequential phases.
    pub clients: Vec<Client>,
}

impl Ctx {
    pub fn new(t0: T0, plan: &Plan, spec: wire::oci::Spec) -> Ctx {
        Ctx {
            t0,
            plan: plan.clone(),
            spec: Arc::new(spec),
            agents: vec![],
            clients: vec![],
        }
    }
}
