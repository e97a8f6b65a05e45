//! The guest's network, configured through rtnetlink as Kata's agent does it with what the
//! shim sends: interfaces found by MAC (`link`), the main routing table (`route`), ARP/NDP
//! neighbours (`neigh`). Inputs are checked in `parse` before the first netlink call, so a bad
//! request changes nothing.
//!
//! One netlink socket per call: `Netlink::open` spawns the connection's task and its drop
//! aborts it, so no socket or task outlives the RPC. Calls that change the network are
//! serialised (`CHANGES`): two UpdateRoutes must not interleave their deletes and adds.

mod link;
mod neigh;
pub mod parse;
mod route;

pub use link::{list_interfaces, update_interface};
pub use neigh::add_neighbours;
pub use route::{list_routes, update_routes};

use ttrpc::Code;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("no network link {0}")]
    LinkNotFound(String),
    #[error("netlink socket: {0}")]
    Connect(#[source] std::io::Error),
    #[error("{what}: {source}")]
    Netlink {
        what: String,
        #[source]
        source: rtnetlink::Error,
    },
}

impl NetError {
    pub fn netlink(what: impl Into<String>, source: rtnetlink::Error) -> NetError {
        NetError::Netlink {
            what: what.into(),
            source,
        }
    }

    /// The errno the kernel answered with, if it refused a request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetError::Netlink {
                source: rtnetlink::Error::NetlinkError(m),
                ..
            } => m.code.map(|c| -c.get()),
            _ => None,
        }
    }

    pub fn code(&self) -> Code {
        match self {
            NetError::InvalidArgument(_) => Code::INVALID_ARGUMENT,
            NetError::LinkNotFound(_) => Code::NOT_FOUND,
            NetError::Connect(_) => Code::INTERNAL,
            NetError::Netlink { .. } => match self.errno() {
                // A value the kernel will not take (an MTU above the driver's maximum, an
                // IPv6 MTU below 1280, a route whose prefix it refuses).
                Some(libc::EINVAL) | Some(libc::ERANGE) => Code::INVALID_ARGUMENT,
                Some(libc::EEXIST) => Code::ALREADY_EXISTS,
                Some(libc::ENODEV) | Some(libc::ESRCH) => Code::NOT_FOUND,
                // A gateway no link route reaches, a link busy being renamed.
                Some(libc::ENETUNREACH) | Some(libc::EBUSY) | Some(libc::EADDRNOTAVAIL) => {
                    Code::FAILED_PRECONDITION
                }
                Some(libc::EPERM) | Some(libc::EACCES) => Code::PERMISSION_DENIED,
                _ => Code::INTERNAL,
            },
        }
    }
}

/// Changes to the network, one at a time.
static CHANGES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One rtnetlink connection, for the length of one call.
pub(crate) struct Netlink {
    pub handle: rtnetlink::Handle,
    task: tokio::task::JoinHandle<()>,
}

impl Netlink {
    pub fn open() -> Result<Netlink, NetError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(NetError::Connect)?;
        Ok(Netlink {
            handle,
            task: tokio::spawn(conn),
        })
    }
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_core::ErrorMessage;

    fn kernel(errno: i32) -> NetError {
        let mut m = ErrorMessage::default();
        m.code = std::num::NonZeroI32::new(-errno);
        NetError::netlink("x", rtnetlink::Error::NetlinkError(m))
    }

    #[test]
    fn kernel_refusals_map_to_codes() {
        assert_eq!(kernel(libc::EINVAL).code(), Code::INVALID_ARGUMENT);
        assert_eq!(kernel(libc::EEXIST).code(), Code::ALREADY_EXISTS);
        assert_eq!(kernel(libc::ENODEV).code(), Code::NOT_FOUND);
        assert_eq!(kernel(libc::ENETUNREACH).code(), Code::FAILED_PRECONDITION);
        assert_eq!(kernel(libc::ENOMEM).code(), Code::INTERNAL);
        assert_eq!(kernel(libc::EINVAL).errno(), Some(libc::EINVAL));
        assert_eq!(NetError::LinkNotFound("x".into()).code(), Code::NOT_FOUND);
        let bad = NetError::InvalidArgument("x".into());
        assert_eq!(bad.code(), Code::INVALID_ARGUMENT);
    }
}
