//! The Kata-style baseline: per launch, exec our (sealed) binary as `zagent init`, hand it the
//! Launch frame and fds, and let it clone the container child (CLONE_PARENT: the agent is the
//! child's parent) and exit. Same jail, same child code, same RPCs as the zygote: only the
//! launch mechanism differs, so the benchmark compares like with like.

use super::helper;
use super::{LaunchError, LaunchRequest, Launched, Launcher};
use std::os::fd::OwnedFd;
use std::sync::Arc;

pub struct ReexecLauncher {
    exe: Arc<OwnedFd>,
}

impl ReexecLauncher {
    pub fn new(exe: Arc<OwnedFd>) -> ReexecLauncher {
        ReexecLauncher { exe }
    }
}

#[async_trait::async_trait]
impl Launcher for ReexecLauncher {
    async fn launch(&self, req: LaunchRequest) -> Result<Launched, LaunchError> {
        let (child, channel) = helper::spawn(&self.exe, "init", &[])?;
        finish(child, channel.launch(req).await).await
    }

    fn name(&self) -> &'static str {
        "reexec"
    }
}

/// `init` exits right after replying; reap it before answering (or kill it if the reply never
/// came, so no helper outlives a failed launch).
async fn finish(
    mut child: tokio::process::Child,
    result: Result<Launched, LaunchError>,
) -> Result<Launched, LaunchError> {
    if result.is_err() {
        let _ = child.start_kill();
    }
    let _ = child.wait().await;
    result
}
