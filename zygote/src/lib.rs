//! The zygote: a single-threaded, privileged fork server exec'd once by the agent
//! (`zagent zygote`). Per request it checks the frame and fds, clones the container child with
//! CLONE_PARENT and replies with the pid and a pidfd; the child (see `child`) builds the jail.
//! The zygote never waits for a child's setup and never reaps. `zagent init`, the re-exec
//! baseline, runs the same code for exactly one request.

pub mod child;
pub mod error;
pub mod fork;
pub mod sanitize;
pub mod sequence;
pub mod server;

pub use error::ZygoteError;

/// Entry point of `zagent init`, the re-exec baseline: the same hygiene and request handling
/// as the zygote, for exactly one request, then exit.
pub fn serve_one(inherited: std::os::fd::RawFd) -> Result<(), ZygoteError> {
    let channel = sanitize::sanitize(inherited)?;
    server::Server::new(channel)?.serve_next().map(|_| ())
}

/// Entry point of `zagent zygote`: the channel to the agent arrives as fd `inherited` (stdin).
/// Returns when the agent closes the channel.
pub fn serve(inherited: std::os::fd::RawFd) -> Result<(), ZygoteError> {
    let channel = sanitize::sanitize(inherited)?;
    server::Server::new(channel)?.run()
}
