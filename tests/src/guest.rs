//! A guest VM with zagent as its agent, for the guest tier: booted by `scripts/guest.sh up`
//! into a temp dir (with this build's zagent and zagent-ctl) and taken down on drop, so a test
//! leaves no QEMU, vhost-device-vsock, socket or temp dir. A guest that cannot boot fails the
//! test with the script's own words (the console's tail), never a pass.

use crate::agent::TestAgent;
use oci_spec::runtime::Spec;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Guest {
    /// `up`'s DIR, inside `_parent` (removed by `down`).
    dir: PathBuf,
    _parent: tempfile::TempDir,
    /// The agent's address, `hvsock://DIR/vm.vsock:1024`.
    pub addr: String,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/guest.sh")
}

impl Guest {
    /// Boots a guest (TCG; `ZAGENT_GUEST_KVM=1` for KVM) of 512 MiB with this build's
    /// binaries, and waits until its agent answers; panics with the script's words if not.
    pub fn boot() -> Guest {
        crate::require_root();
        let bins = crate::bin("zagent");
        let bins = bins.parent().expect("target dir");
        Guest::try_boot(bins, 512, "").unwrap_or_else(|e| panic!("{e}"))
    }

    /// Boots a guest of `mem_mib` MiB with the zagent and zagent-ctl in `bins` and `append` on
    /// the kernel command line (e.g. `agent.launcher=reexec`).
    pub fn try_boot(bins: &Path, mem_mib: u32, append: &str) -> Result<Guest, String> {
        let parent = tempfile::Builder::new()
            .prefix("zagent-guest-test")
            .tempdir()
            .map_err(|e| format!("tempdir: {e}"))?;
        let dir = parent.path().join("g");
        let mut cmd = Command::new("bash");
        cmd.arg(script())
            .arg("up")
            .arg(&dir)
            .args(["--mem", &mem_mib.to_string()])
            .env("ZAGENT_BIN", bins)
            .env("GUEST_APPEND", append);
        if std::env::var_os("ZAGENT_GUEST_KVM").is_some() {
            cmd.arg("--kvm");
        }
        let out = cmd
            .output()
            .map_err(|e| format!("running scripts/guest.sh up: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "the guest did not boot ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let addr = std::fs::read_to_string(dir.join("addr"))
            .map_err(|e| format!("DIR/addr after up: {e}"))?;
        Ok(Guest {
            dir,
            _parent: parent,
            addr: addr.trim().to_owned(),
        })
    }

    /// A client of the guest's agent (the TestAgent's agent process is not ours: dropping it
    /// stops nothing; its `state_dir` is the guest's, not readable from here).
    pub async fn agent(&self) -> TestAgent {
        TestAgent::attach(&self.addr).await
    }

    /// The guest's bundle spec: root.path is the guest's /bundle/rootfs, with `args`.
    pub fn spec(&self, args: &[&str]) -> Spec {
        let text = std::fs::read_to_string(self.dir.join("bundle/config.json"))
            .expect("DIR/bundle/config.json after up");
        let mut spec: Spec = serde_json::from_str(&text).expect("guest bundle config.json");
        let mut process = spec.process().clone().expect("process");
        process.set_args(Some(args.iter().map(|a| a.to_string()).collect()));
        spec.set_process(Some(process));
        spec
    }

    /// What the guest printed on its console (kernel and agent log).
    pub fn console(&self) -> String {
        std::fs::read_to_string(self.dir.join("console.log")).unwrap_or_default()
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let out = Command::new("bash")
            .arg(script())
            .arg("down")
            .arg(&self.dir)
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!("guest.sh down: {}", String::from_utf8_lossy(&o.stderr)),
            Err(e) => eprintln!("guest.sh down: {e}"),
        }
    }
}
