//! The zygote: a single-threaded, privileged fork server exec'd once by the agent
//! (`zagent zygote`). Per request it checks the frame and fds, clones the container child with
//! CLONE_PARENT and replies with the pid and a pidfd; the child (see `child`) builds the jail.
//! The zygote never waits for a child's setup and never reaps. `zagent init`, the re-exec
//! baseline, runs the same code for exactly one request.

pub mod child;
pub mod error;
pub mod exec;
pub mod fork;
pub mod pidns_init;
pub mod pool;
pub mod sanitize;
pub mod server;

pub use error::ZygoteError;

/// Entry point of `zagent init`, the re-exec baseline: the same hygiene and request handling
/// as the zygote, for exactly one request, then exit.
pub fn serve_one(inherited: std::os::fd::RawFd) -> Result<(), ZygoteError> {
    let channel = sanitize::sanitize(inherited)?;
    server::Server::new(channel, Options::default())?
        .serve_next()
        .map(|_| ())
}

/// Knobs of `zagent zygote`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Options {
    /// How many sets of fresh namespaces to keep ready (see `pool`); 0 disables the pool.
    pub warm_pool: usize,
    /// Test hook: sleep between a clone and its reply, so tests can kill the zygote then.
    pub pause_after_clone: Option<std::time::Duration>,
}

impl Options {
    /// Parses the arguments after `zygote`: `--warm-pool N`, `--test-pause-after-clone-ms N`.
    pub fn parse(args: &[String]) -> Result<Options, ZygoteError> {
        let mut opts = Options::default();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let value = it.next().and_then(|v| v.parse::<u64>().ok());
            match (a.as_str(), value) {
                ("--warm-pool", Some(n)) => opts.warm_pool = n as usize,
                ("--test-pause-after-clone-ms", Some(ms)) => {
                    opts.pause_after_clone = Some(std::time::Duration::from_millis(ms))
                }
                _ => return Err(ZygoteError::Usage(format!("unexpected argument {a:?}"))),
            }
        }
        Ok(opts)
    }
}

/// Entry point of `zagent zygote`: the channel to the agent arrives as fd `inherited` (stdin).
/// Returns when the agent closes the channel.
pub fn serve(inherited: std::os::fd::RawFd, opts: Options) -> Result<(), ZygoteError> {
    let channel = sanitize::sanitize(inherited)?;
    server::Server::new(channel, opts)?.run()
}
