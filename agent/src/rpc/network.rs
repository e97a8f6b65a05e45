//! The network RPCs: each unwraps its request, calls `crate::net` and wraps the answer in
//! Kata's message. A request without its payload (no interface, no route list, no neighbour
//! list) is INVALID_ARGUMENT, as in Kata's agent; an empty list is a valid request.

use crate::error::AgentError;
use wire::agent;
use wire::types::Interface;

fn missing(what: &str) -> AgentError {
    AgentError::InvalidArgument(format!("request has no {what}"))
}

pub(super) async fn update_interface(
    req: &agent::UpdateInterfaceRequest,
) -> Result<Interface, AgentError> {
    let iface = req.interface.as_ref().ok_or_else(|| missing("interface"))?;
    Ok(crate::net::update_interface(iface).await?)
}

pub(super) async fn update_routes(
    req: &agent::UpdateRoutesRequest,
) -> Result<agent::Routes, AgentError> {
    let routes = req.routes.as_ref().ok_or_else(|| missing("routes"))?;
    let now = crate::net::update_routes(&routes.Routes).await?;
    Ok(agent::Routes {
        Routes: now,
        ..Default::default()
    })
}

pub(super) async fn list_interfaces() -> Result<agent::Interfaces, AgentError> {
    Ok(agent::Interfaces {
        Interfaces: crate::net::list_interfaces().await?,
        ..Default::default()
    })
}

pub(super) async fn list_routes() -> Result<agent::Routes, AgentError> {
    Ok(agent::Routes {
        Routes: crate::net::list_routes().await?,
        ..Default::default()
    })
}

pub(super) async fn add_arp_neighbors(
    req: &agent::AddARPNeighborsRequest,
) -> Result<(), AgentError> {
    let list = req.neighbors.as_ref().ok_or_else(|| missing("neighbors"))?;
    Ok(crate::net::add_neighbours(&list.ARPNeighbors).await?)
}
