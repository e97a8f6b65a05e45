//! The zygote's loop: one request at a time, each answered before the next is read. A request
//! that cannot be carried out is refused with its errno; the loop itself only ends when the
//! agent closes the channel (so the zygote never outlives the agent).

use crate::child;
use crate::error::ZygoteError;
use crate::fork::{self, Forked};
use crate::pool::{self, NsPool};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use wire::channel::{self, ChannelError};
use wire::zygote::{
    ContainerConfig, ExecConfig, ExecFds, LaunchFds, NamespaceKind, Reply, Request,
    PROTOCOL_VERSION,
};

/// How long the channel must be quiet before the zygote refills its warm pool.
const REFILL_AFTER_QUIET_MS: u16 = 3;

pub struct Server {
    channel: OwnedFd,
    opts: crate::Options,
    pool: NsPool,
    buf: Vec<u8>,
}

impl Server {
    pub fn new(channel: OwnedFd, opts: crate::Options) -> Result<Server, ZygoteError> {
        let pool = NsPool::new(opts.warm_pool).map_err(|errno| ZygoteError::Sanitize {
            what: "open own namespaces",
            errno,
        })?;
        let mut server = Server {
            channel,
            opts,
            pool,
            buf: channel::buffer(),
        };
        server.refill()?;
        Ok(server)
    }

    /// Serves until the agent closes the channel. The warm pool is refilled only while no
    /// request is waiting and the channel has been quiet for a moment: right after a reply the
    /// launched child is building its jail, and on a small machine a refill then would only
    /// take the CPU from it.
    pub fn run(mut self) -> Result<(), ZygoteError> {
        loop {
            while self.pool.wants_more() && self.quiet_for(REFILL_AFTER_QUIET_MS) {
                self.refill_one()?;
            }
            if !self.serve_next()? {
                return Ok(());
            }
        }
    }

    /// True when nothing arrives on the channel within `ms` milliseconds.
    fn quiet_for(&self, ms: u16) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut fds = [PollFd::new(self.channel.as_fd(), PollFlags::POLLIN)];
        matches!(poll(&mut fds, PollTimeout::from(ms)), Ok(0))
    }

    /// Serves one request; false once the agent has closed the channel.
    pub fn serve_next(&mut self) -> Result<bool, ZygoteError> {
        let received = channel::recv::<Request>(self.channel.as_fd(), &mut self.buf, None);
        let (msg, fds) = match received {
            Err(ChannelError::Closed) => return Ok(false),
            Err(ChannelError::Io(nix::errno::Errno::EINTR)) => return Ok(true),
            Err(ChannelError::Io(e)) => return Err(ChannelError::Io(e).into()),
            Err(e) => self.refuse(&ZygoteError::from(e)),
            Ok((req, fds)) => self.handle(req, fds),
        };
        // The pidfd (if any) is closed once sent.
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
        channel::send(self.channel.as_fd(), &msg, &borrowed)?;
        Ok(true)
    }

    fn refill(&mut self) -> Result<(), ZygoteError> {
        while self.pool.wants_more() {
            self.refill_one()?;
        }
        Ok(())
    }

    fn refill_one(&mut self) -> Result<(), ZygoteError> {
        self.pool.fill_one().map_err(|errno| ZygoteError::Sanitize {
            what: "step back into our own namespaces",
            errno,
        })
    }

    /// Fds a child closes first: what the zygote holds for itself and for other launches.
    fn child_closes(&self) -> Vec<RawFd> {
        let mut fds = self.pool.raw_fds();
        fds.extend(self.pool.own_fds());
        fds
    }

    fn refuse(&self, err: &ZygoteError) -> (Reply, Vec<OwnedFd>) {
        (
            Reply::Refused {
                errno: err.errno(),
                message: err.to_string(),
            },
            Vec::new(),
        )
    }

    fn handle(&mut self, req: Request, fds: Vec<OwnedFd>) -> (Reply, Vec<OwnedFd>) {
        match req {
            Request::Hello { version } if version == PROTOCOL_VERSION => (
                Reply::Hello {
                    version: PROTOCOL_VERSION,
                },
                Vec::new(),
            ),
            Request::Hello { version } => self.refuse(&ZygoteError::Version {
                got: version,
                want: PROTOCOL_VERSION,
            }),
            Request::Launch(cfg) => match self.launch(&cfg, fds) {
                Ok((pid, pidfd)) => (Reply::Launched { pid }, vec![pidfd]),
                Err(e) => self.refuse(&e),
            },
            Request::Exec(cfg) => match self.exec(&cfg, fds) {
                Ok((pid, pidfd)) => (Reply::Launched { pid }, vec![pidfd]),
                Err(e) => self.refuse(&e),
            },
        }
    }

    /// Clones the child; our copies of `fds` are closed when this returns, on every path.
    fn launch(
        &mut self,
        cfg: &ContainerConfig,
        fds: Vec<OwnedFd>,
    ) -> Result<(i32, OwnedFd), ZygoteError> {
        let joined: Vec<NamespaceKind> = cfg
            .namespaces
            .iter()
            .filter(|n| n.join)
            .map(|n| n.kind)
            .collect();
        let expected = LaunchFds::FIXED + joined.len();
        if fds.len() != expected {
            return Err(ZygoteError::FdCount {
                expected,
                got: fds.len(),
            });
        }
        let pooled = if pool::eligible(&cfg.namespaces) {
            self.pool.take()
        } else {
            None
        };
        // Only the mount and pid namespaces are new at clone time when the rest are pooled. A
        // joined pid namespace is entered by the child itself, last (see `child::spawn_inside`).
        // With a user namespace every namespace is made by the child's own clone, once it has
        // done what needs the host's privileges (see `child::enter_userns`).
        let flags = match &pooled {
            Some(_) => pool::CLONE_FLAGS,
            None if jail::userns::in_use(cfg) => 0,
            None => fork::namespace_flags(&cfg.namespaces),
        };
        let closes = self.child_closes();
        match self.clone_child(flags)? {
            Forked::Child => {
                let launch = child::Launch {
                    cfg,
                    joined: &joined,
                    pooled: pooled.as_ref(),
                    closes: &closes,
                };
                child::run(launch, fds, self.channel.as_fd())
            }
            // Our copies of the pooled set are closed here: the child holds them now.
            Forked::Parent { pid, pidfd } => Ok((pid.as_raw(), pidfd)),
        }
    }

    /// Clones a child with `ns_flags`, always in our own pid namespace: nothing the zygote
    /// clones is ever born inside a container's pid namespace, where the container's processes
    /// could reach it before its jail is built. In the child this returns `Forked::Child` at once.
    fn clone_child(&self, ns_flags: u64) -> Result<Forked, ZygoteError> {
        let forked = fork::clone_child(ns_flags).map_err(ZygoteError::Clone)?;
        if let (Forked::Parent { .. }, Some(pause)) = (&forked, self.opts.pause_after_clone) {
            std::thread::sleep(pause);
        }
        Ok(forked)
    }

    /// Clones a child that joins a running container (through its init's pidfd) for an exec;
    /// our copies of `fds` are closed when this returns, on every path.
    fn exec(&self, cfg: &ExecConfig, fds: Vec<OwnedFd>) -> Result<(i32, OwnedFd), ZygoteError> {
        if fds.len() != ExecFds::COUNT {
            return Err(ZygoteError::FdCount {
                expected: ExecFds::COUNT,
                got: fds.len(),
            });
        }
        let closes = self.child_closes();
        match self.clone_child(0)? {
            Forked::Child => crate::exec::run(cfg, fds, self.channel.as_fd(), &closes),
            Forked::Parent { pid, pidfd } => Ok((pid.as_raw(), pidfd)),
        }
    }
}
