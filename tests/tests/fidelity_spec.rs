//! Tier 2 (root): the rest of issue 8's fidelity work, checked from inside the container or from
//! the host: exec'd processes get their own oom_score_adj and their container's umask,
//! scheduler, I/O priority and personality; the scheduler, I/O priority and personality of a spec apply; recursive mount
//! options reach the mounts under a bind; relative and ".." mount destinations stay inside the
//! root; an empty cgroup at cgroupsPath is joined and removed, a busy or frozen one refused and
//! left alone; fields zagent does not implement are INVALID_ARGUMENT naming them, and
//! zagent-ctl refuses what the Kata protocol cannot carry and carries what zagent implements.

use oci_spec::runtime::Spec;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tests::agent::{code, message, Launcher, TestAgent};
use tests::rootfs_copy::RootfsCopy;
use tests::{bundle, leftovers, procs, unique_id};
use ttrpc::Code;

fn patched(spec: &Spec, patch: impl FnOnce(&mut Value)) -> Spec {
    let mut value = serde_json::to_value(spec).expect("spec to JSON");
    patch(&mut value);
    serde_json::from_value(value).expect("patched spec parses")
}

fn sh(script: &str) -> Spec {
    bundle::spec(&["sh", "-c", script])
}

/// Runs `script` as exec `exec_id` in the running container `id`; (status, stdout).
async fn exec_sh(
    a: &TestAgent,
    id: &str,
    exec_id: &str,
    script: &str,
    oom: Option<i32>,
) -> (i32, String) {
    let mut process = sh(script).process().clone().expect("process");
    process.set_oom_score_adj(oom);
    a.exec(id, exec_id, &process).await.expect("exec");
    let out = a.read_all_exec(id, exec_id, false).await.expect("stdout");
    let status = a.wait_exec(id, exec_id).await.expect("wait exec");
    (status, String::from_utf8_lossy(&out).into_owned())
}

tests::both_launchers!(an_exec_gets_its_own_oom_score_and_the_rest_from_its_container);
async fn an_exec_gets_its_own_oom_score_and_the_rest_from_its_container(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    // The agent's and zygote's own score: an exec must never keep it.
    for pid in std::iter::once(a.pid()).chain(procs::zygote_of(a.pid())) {
        std::fs::write(format!("/proc/{pid}/oom_score_adj"), "100").expect("oom_score_adj");
    }
    let id = unique_id("execfid");
    let spec = patched(&bundle::spec(&["sleep", "100"]), |s| {
        s["process"]["user"]["umask"] = json!(0o077);
        s["process"]["oomScoreAdj"] = json!(200);
        s["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 4});
        s["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 6});
        s["linux"]["personality"] = json!({"domain": "LINUX32"});
    });
    a.create(&id, &spec).await.unwrap();
    a.start_container(&id).await.unwrap();
    let script = "cat /proc/self/oom_score_adj; umask; uname -m";
    let (status, out) = exec_sh(&a, &id, "e1", script, None).await;
    assert_eq!(status, 0);
    assert_eq!(
        out, "0\n0077\ni686\n",
        "no oomScoreAdj: 0, not the agent's 100"
    );
    let (status, out) = exec_sh(&a, &id, "e2", script, Some(300)).await;
    assert_eq!(status, 0);
    assert_eq!(out, "300\n0077\ni686\n");
    a.signal(&id, libc::SIGKILL as u32).await.unwrap();
    assert_eq!(a.wait(&id).await.unwrap(), 137);
    a.remove(&id).await.unwrap();
    leftovers::assert_nothing_left(&a, &id, &[]).await;
}

tests::both_launchers!(scheduler_io_priority_and_personality_apply);
async fn scheduler_io_priority_and_personality_apply(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    // stat fields 19 (nice), 40 (rt_priority), 41 (policy).
    let script = "cut -d' ' -f19,40,41 /proc/self/stat; ionice -p $$; cat /proc/self/personality";
    let cases = [
        (
            json!({"policy": "SCHED_BATCH", "nice": 7}),
            json!({"class": "IOPRIO_CLASS_BE", "priority": 3}),
            "7 0 3\nbest-effort: prio 3\n00000008\n",
        ),
        // (SCHED_FIFO and SCHED_RR need real-time bandwidth in the container's cpu cgroup on
        // a kernel with RT group scheduling, as this one: EPERM without, for any runtime.)
        (
            json!({"policy": "SCHED_IDLE"}),
            json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0}),
            "0 0 5\nidle\n00000008\n",
        ),
    ];
    for (scheduler, io, want) in cases {
        let spec = patched(&sh(script), |s| {
            s["process"]["scheduler"] = scheduler.clone();
            s["process"]["ioPriority"] = io.clone();
            s["linux"]["personality"] = json!({"domain": "LINUX32"});
        });
        let (status, out, err) = a.run(&unique_id("sched"), &spec).await;
        assert_eq!(status, 0, "stderr: {err}");
        assert_eq!(out, want, "{scheduler} {io}");
    }
    // A reset-on-fork scheduler: kept by the container's process (pid 1 of a new pid
    // namespace, never cloned after the step), refused for an exec, whose process is spawned
    // into the pid namespace after it.
    let id = unique_id("sched");
    let reset = patched(&bundle::spec(&["sleep", "100"]), |s| {
        s["process"]["scheduler"] =
            json!({"policy": "SCHED_BATCH", "flags": ["SCHED_RESET_ON_FORK"]});
    });
    a.create(&id, &reset).await.unwrap();
    a.start_container(&id).await.unwrap();
    let process = sh("true").process().clone().unwrap();
    let r = a.exec(&id, "x", &process).await;
    assert_eq!(code(&r), Code::INVALID_ARGUMENT, "{}", message(&r));
    assert!(
        message(&r).contains("SCHED_RESET_ON_FORK"),
        "{}",
        message(&r)
    );
    assert_eq!(a.info(&id).await.unwrap().0, "running");
    a.signal(&id, libc::SIGKILL as u32).await.unwrap();
    a.wait(&id).await.unwrap();
    a.remove(&id).await.unwrap();
    leftovers::assert_nothing_left(&a, &id, &[]).await;
    let bad = patched(&sh("true"), |s| {
        s["process"]["scheduler"] = json!({"policy": "SCHED_RR"});
    });
    let id = unique_id("sched");
    let r = a.create(&id, &bad).await;
    assert_eq!(code(&r), Code::INVALID_ARGUMENT, "{}", message(&r));
    assert!(
        message(&r).contains("scheduler.priority"),
        "{}",
        message(&r)
    );
    leftovers::assert_nothing_left(&a, &id, &[]).await;
}

tests::both_launchers!(recursive_options_reach_submounts_and_destinations_stay_inside);
async fn recursive_options_reach_submounts_and_destinations_stay_inside(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let copy = RootfsCopy::new();
    let source = copy.path().join("mnt/src");
    let tmpfs = |dest: &str| json!({"destination": dest, "type": "tmpfs", "source": "tmpfs"});
    let script = "grep -E ' /(mnt|tmp)/' /proc/self/mountinfo | cut -d' ' -f5,6";
    let spec = patched(&copy.spec(&["sh", "-c", script]), |s| {
        let mounts = s["mounts"].as_array_mut().unwrap();
        mounts.push(tmpfs("/mnt/src"));
        mounts.push(tmpfs("/mnt/src/sub"));
        mounts.push(
            json!({"destination": "/mnt/a", "type": "bind", "source": source,
                           "options": ["rbind", "rro", "rnoexec"]}),
        );
        mounts.push(tmpfs("mnt/rel"));
        mounts.push(tmpfs("../../../tmp/up"));
    });
    let id = unique_id("rec");
    let (status, out, err) = a.run(&id, &spec).await;
    assert_eq!(status, 0, "stderr: {err}");
    let lines: Vec<&str> = out.lines().collect();
    let opts = |point: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(&format!("{point} ")))
            .unwrap_or_else(|| panic!("no mount at {point}: {out}"))
    };
    assert!(opts("/mnt/a").starts_with("ro,") && opts("/mnt/a").contains("noexec"));
    assert!(opts("/mnt/a/sub").starts_with("ro,"), "{out}");
    assert!(opts("/mnt/a/sub").contains("noexec"), "{out}");
    assert!(
        opts("/mnt/src/sub").starts_with("rw,"),
        "only under the bind: {out}"
    );
    assert!(opts("/mnt/rel").starts_with("rw,"), "{out}");
    assert!(opts("/tmp/up").starts_with("rw,"), "{out}");
    leftovers::assert_nothing_left(&a, &id, &[copy.dir()]).await;
}

/// A cgroup at `zagent/<id>` made beforehand in every v1 hierarchy (or the unified root on a
/// pure v2 host), with a guard that takes back what the test put there: the sleeper it moved
/// in (killed and reaped), a frozen state, and the dirs if the agent left them.
struct PreCgroup {
    dirs: Vec<PathBuf>,
    sleeper: Option<std::process::Child>,
}

impl PreCgroup {
    fn new(id: &str) -> PreCgroup {
        let root = Path::new("/sys/fs/cgroup");
        let dirs: Vec<PathBuf> = if root.join("cgroup.controllers").exists() {
            vec![root.join("zagent").join(id)]
        } else {
            std::fs::read_dir(root)
                .expect("read /sys/fs/cgroup")
                .flatten()
                .filter(|e| e.file_name() != "unified")
                .map(|e| e.path().join("zagent").join(id))
                .collect()
        };
        for d in &dirs {
            std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        }
        PreCgroup {
            dirs,
            sleeper: None,
        }
    }

    fn dir(&self, controller: &str) -> &Path {
        let found = self
            .dirs
            .iter()
            .find(|d| d.starts_with(Path::new("/sys/fs/cgroup").join(controller)));
        found.unwrap_or(&self.dirs[0])
    }

    /// A host `sleep` moved into the cgroup.
    fn occupy(&mut self) {
        let child = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .unwrap();
        let procs = self.dir("pids").join("cgroup.procs");
        std::fs::write(procs, child.id().to_string()).expect("move the sleeper");
        self.sleeper = Some(child);
    }

    fn all_exist(&self) -> bool {
        self.dirs.iter().all(|d| d.exists())
    }
}

impl Drop for PreCgroup {
    fn drop(&mut self) {
        if let Some(mut child) = self.sleeper.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::write(self.dir("freezer").join("freezer.state"), "THAWED");
        for d in &self.dirs {
            let _ = std::fs::remove_dir(d);
        }
    }
}

tests::both_launchers!(an_empty_existing_cgroup_is_joined_a_busy_or_frozen_one_refused);
async fn an_empty_existing_cgroup_is_joined_a_busy_or_frozen_one_refused(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let spec = |id: &str| {
        patched(&bundle::spec(&["sleep", "100"]), |s| {
            s["linux"]["cgroupsPath"] = json!(format!("/zagent/{id}"));
        })
    };
    let id = unique_id("precg");
    let pre = PreCgroup::new(&id);
    a.create(&id, &spec(&id)).await.unwrap();
    let procs = std::fs::read_to_string(pre.dir("pids").join("cgroup.procs")).unwrap();
    let (_, pid, _) = a.info(&id).await.expect("registered");
    assert!(
        procs.split_whitespace().any(|p| p == pid.to_string()),
        "{procs}"
    );
    a.remove(&id).await.unwrap();
    // Removed with the container, as runc's delete removes a cgroup it joined.
    leftovers::assert_nothing_left(&a, &id, &[]).await;
    drop(pre);

    let id = unique_id("precg");
    let mut busy = PreCgroup::new(&id);
    busy.occupy();
    let r = a.create(&id, &spec(&id)).await;
    assert_eq!(code(&r), Code::ALREADY_EXISTS, "{}", message(&r));
    assert!(message(&r).contains("1 process(es)"), "{}", message(&r));
    assert!(busy.all_exist(), "a busy cgroup is left as it was");
    assert!(a.info(&id).await.is_none());
    drop(busy);

    let id = unique_id("precg");
    let frozen = PreCgroup::new(&id);
    let state = frozen.dir("freezer").join("freezer.state");
    if state.exists() {
        std::fs::write(&state, "FROZEN").unwrap();
        let r = a.create(&id, &spec(&id)).await;
        assert_eq!(code(&r), Code::FAILED_PRECONDITION, "{}", message(&r));
        assert!(message(&r).contains("frozen"), "{}", message(&r));
        assert!(frozen.all_exist(), "a frozen cgroup is left as it was");
    }
    drop(frozen);
    leftovers::assert_nothing_left(&a, &id, &[]).await;
}

tests::both_launchers!(unimplemented_fields_are_invalid_argument_naming_them);
async fn unimplemented_fields_are_invalid_argument_naming_them(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let cases = [
        (
            "/process/apparmorProfile",
            json!("docker-default"),
            "process.apparmorProfile",
        ),
        (
            "/process/selinuxLabel",
            json!("system_u:r:t:s0"),
            "process.selinuxLabel",
        ),
        (
            "/linux/mountLabel",
            json!("system_u:object_r:t:s0"),
            "linux.mountLabel",
        ),
        (
            "/linux/intelRdt",
            json!({"l3CacheSchema": "L3:0=ff"}),
            "linux.intelRdt",
        ),
        (
            "/linux/resources/network",
            json!({"classID": 7}),
            "linux.resources.network",
        ),
        (
            "/linux/resources/memory",
            json!({"kernel": 1 << 24}),
            "memory.kernel",
        ),
        (
            "/linux/resources/hugepageLimits",
            json!([{"pageSize": "2MB", "limit": 1 << 21}]),
            "linux.resources.hugepageLimits",
        ),
    ];
    for (pointer, value, field) in cases {
        let spec = patched(&sh("true"), |s| {
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            let mut at = s;
            for part in parent.trim_start_matches('/').split('/') {
                if at.get(part).is_none() {
                    at[part] = json!({});
                }
                at = &mut at[part];
            }
            at[key] = value.clone();
        });
        let id = unique_id("refuse");
        let r = a.create(&id, &spec).await;
        assert_eq!(code(&r), Code::INVALID_ARGUMENT, "{field}: {}", message(&r));
        assert!(message(&r).contains(field), "{}", message(&r));
        leftovers::assert_nothing_left(&a, &id, &[]).await;
    }
    // An exec's process is checked the same way.
    let id = unique_id("refuse");
    a.create(&id, &bundle::spec(&["sleep", "100"]))
        .await
        .unwrap();
    a.start_container(&id).await.unwrap();
    let mut process = sh("true").process().clone().unwrap();
    process.set_apparmor_profile(Some("p".into()));
    let r = a.exec(&id, "x", &process).await;
    assert_eq!(code(&r), Code::INVALID_ARGUMENT, "{}", message(&r));
    assert!(
        message(&r).contains("process.apparmorProfile"),
        "{}",
        message(&r)
    );
    a.signal(&id, libc::SIGKILL as u32).await.unwrap();
    a.wait(&id).await.unwrap();
    a.remove(&id).await.unwrap();
    leftovers::assert_nothing_left(&a, &id, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_refuses_what_kata_cannot_carry_and_carries_what_zagent_implements() {
    tests::require_root();
    let a = TestAgent::start_with(Launcher::Zygote).await;
    let refused = patched(&sh("true"), |s| {
        s["linux"]["netDevices"] = json!({"dummy0": {"name": "eth1"}});
    });
    let b = bundle::bundle_dir(&refused);
    let id = unique_id("ctlspec");
    let out = a.ctl(&[
        "create",
        "--id",
        &id,
        "--bundle",
        b.path().to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "created despite netDevices");
    assert!(stderr.contains("linux.netDevices"), "{stderr}");
    leftovers::assert_nothing_left(&a, &id, &[]).await;

    let script = "cat /proc/sys/kernel/domainname; uname -m; umask";
    let carried = patched(&sh(script), |s| {
        s["domainname"] = json!("example.org");
        s["linux"]["personality"] = json!({"domain": "LINUX32"});
        s["process"]["user"]["umask"] = json!(0o027);
    });
    let b = bundle::bundle_dir(&carried);
    let out = a.ctl(&["run", "--bundle", b.path().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, "example.org\ni686\n0027\n");
}
