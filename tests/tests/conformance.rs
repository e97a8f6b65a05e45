//! Tier 2 (root): the conformance suite (issue 8, "A side-by-side test of your own"). Every
//! variant (tests::conformance::variants) is an OCI spec run under runc and under zagent (both
//! launchers), each time in a fresh copy of the busybox rootfs with the probe
//! (tests/data/conformance/probe.sh) as the container's process; the probe prints what the
//! process sees (identity, capabilities, NoNewPrivs, seccomp, umask, rlimits, hostname, cwd,
//! env, namespaces, mountinfo, /dev, fds, oom_score_adj, cgroups and their limits, masked and
//! read-only paths, sysctls, lo). The
//! reports are normalised (tests::conformance::normalise) and compared line by line; every
//! difference must be in JUSTIFIED, with its reason, and every entry of JUSTIFIED must still
//! be needed (a stale entry fails the suite too).

use serde_json::json;
use std::time::Instant;
use tests::agent::{Launcher, TestAgent};
use tests::conformance::diff::{self, Hunk};
use tests::conformance::normalise::{host_namespaces, Normaliser};
use tests::conformance::variants::{variants, Variant};
use tests::conformance::{run_runc, run_zagent, runc, Base, Outcome, RunDir};
use tests::{leftovers, procs, unique_id};

/// Runs at once (each is a container; the machine has 2 cores and runc's Go start-up is
/// CPU-bound, so more would only queue).
const CONCURRENCY: usize = 6;

/// A difference between runc's report and zagent's that is known and justified, in `section`
/// of the named variants (empty: every variant; a `*` in a name matches any run of characters).
struct Justified {
    variants: &'static [&'static str],
    section: &'static str,
    accept: Accept,
    reason: &'static str,
}

enum Accept {
    /// One hunk of the diff: the lines only runc has and the lines only zagent has there,
    /// line for line (`*` in a pattern matches any run of characters, e.g. a host's device
    /// number). In section
    /// "outcome", a spec one runtime ran and the other refused (`ran` / `refused`).
    Lines(&'static [&'static str], &'static [&'static str]),
}

/// Differences that are NOT justified: zagent bugs found by this suite and not fixed yet
/// (issue 8 stays open for them). Listed apart from JUSTIFIED so that the rest of the suite
/// guards against new differences meanwhile; an entry whose bug is fixed goes stale and fails
/// the suite, so the list cannot outlive the bugs.
const KNOWN_BUGS: &[Justified] = &[];

/// THE list of justified differences, each with its reason.
const JUSTIFIED: &[Justified] = &[
    Justified {
        variants: &["seccomp-log-flag"],
        section: "outcome",
        accept: Accept::Lines(&["refused"], &["ran"]),
        reason: "runc 1.1.5 refuses every linux.seccomp.flags (\"seccomp flags are not yet \
                 supported by runc\"); runc 1.2 and the runtime spec (1.0.2+) support them, \
                 and so does zagent",
    },
    Justified {
        variants: &["maps-without-userns"],
        section: "outcome",
        accept: Accept::Lines(&["ran"], &["refused"]),
        reason: "runc 1.1.5 ignores linux.uidMappings/gidMappings when the spec has no user \
                 namespace and runs the container without one; zagent refuses the spec \
                 (INVALID_ARGUMENT naming the field) rather than drop what it asks for",
    },
    Justified {
        variants: &["userns*"],
        section: "dev",
        accept: Accept::Lines(
            &["/dev/mqueue directory 1777 0:65534 0:0"],
            &["/dev/mqueue directory 1777 0:0 0:0"],
        ),
        reason: "an IPC namespace's mqueue root belongs to the ids of the process that made \
                 the namespace: runc 1.1.5 unshares it after setresuid(0) but before \
                 setresgid(0), so its group is the unmapped host root (65534 inside); zagent \
                 makes it once it is root and group root inside the user namespace",
    },
    Justified {
        variants: &[],
        section: "identity",
        accept: Accept::Lines(&["SigIgn: 0000000080000004"], &["SigIgn: 0000000180000004"]),
        reason: "signals 32 and 33 are the C library's own (glibc's SIGCANCEL and SIGSETXID, \
                 below SIGRTMIN; musl reserves 32-34 too) and it installs its handlers for \
                 them itself: runc's process starts with 32 ignored (from runc's Go runtime), \
                 zagent's with 32 and 33 (the zygote resets only signals 1-31). Bit 3 is the \
                 probe's shell ignoring SIGQUIT",
    },
    Justified {
        variants: &["cgroupns-host", "cgroup-mount-no-cgroupns"],
        section: "cgroup",
        accept: Accept::Lines(&["0::/zagent/<id>"], &["0::/"]),
        reason: "on a hybrid host (cgroup v1 plus a controller-less cgroup2 mount) runc also \
                 puts the container in the cgroup2 hierarchy; zagent uses the v1 hierarchies \
                 only (README, \"Cgroups\"), so without a cgroup namespace the process shows \
                 the agent's cgroup2 path. No limit lives there (no controllers)",
    },
    Justified {
        variants: &[],
        section: "mountinfo",
        accept: Accept::Lines(
            &[
                "/sys/fs/cgroup/systemd /sys/fs/cgroup 0:</sys/fs/cgroup/systemd> / \
               /sys/fs/cgroup/systemd ro,nosuid,nodev,noexec,relatime - cgroup systemd \
               rw,name=systemd",
            ],
            &[
                "/sys/fs/cgroup/systemd /sys/fs/cgroup 0:</sys/fs/cgroup/systemd> / \
               /sys/fs/cgroup/systemd ro,nosuid,nodev,noexec,relatime - cgroup cgroup \
               rw,name=systemd",
            ],
        ),
        reason: "only the source name passed to mount(2) differs (runc names a named \
                 hierarchy's mount after it, zagent calls every one \"cgroup\"): same \
                 hierarchy, same options",
    },
    Justified {
        variants: &["cgroup-mount-rw"],
        section: "mountinfo",
        accept: Accept::Lines(
            &[
                "/sys/fs/cgroup/systemd /sys/fs/cgroup 0:</sys/fs/cgroup/systemd> / \
               /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime - cgroup systemd \
               rw,name=systemd",
            ],
            &[
                "/sys/fs/cgroup/systemd /sys/fs/cgroup 0:</sys/fs/cgroup/systemd> / \
               /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime - cgroup cgroup \
               rw,name=systemd",
            ],
        ),
        reason: "as above, for a cgroup mount without \"ro\"",
    },
    Justified {
        variants: &[],
        section: "mountinfo",
        accept: Accept::Lines(
            &["/sys/fs/cgroup /sys 0:</sys/fs/cgroup> / /sys/fs/cgroup \
               rw,nosuid,nodev,noexec,relatime - tmpfs tmpfs rw,mode=755"],
            &["/sys/fs/cgroup /sys 0:</sys/fs/cgroup> / /sys/fs/cgroup \
               ro,nosuid,nodev,noexec,relatime - tmpfs tmpfs rw,mode=755"],
        ),
        reason: "a cgroup mount with \"ro\" on a v1 host is a tmpfs with a read-only bind of \
                 each hierarchy in it: runc 1.1.5 leaves that tmpfs itself read-write, zagent \
                 makes it read-only too, as the mount's options ask (the hierarchies are \
                 read-only in both)",
    },
    Justified {
        variants: &[],
        section: "writable",
        accept: Accept::Lines(
            &["/sys/fs/cgroup not writable: Permission denied"],
            &["/sys/fs/cgroup not writable: Read-only file system"],
        ),
        reason: "the same read-only cgroup tmpfs (see above): EROFS under zagent",
    },
    Justified {
        variants: &["tmpfs-ro"],
        section: "mountinfo",
        accept: Accept::Lines(
            &["/mnt/a / 0:</mnt/a> / /mnt/a ro,relatime - tmpfs tmpfs rw,mode=755"],
            &["/mnt/a / 0:</mnt/a> / /mnt/a ro,relatime - tmpfs tmpfs ro,mode=755"],
        ),
        reason: "a tmpfs mount with \"ro\" is read-only in both: runc mounts it read-write \
                 and remounts the mount read-only, zagent mounts it read-only at once (so its \
                 superblock says ro as well); nothing can write to it either way",
    },
    Justified {
        variants: &["rootfs-propagation-shared"],
        section: "mountinfo",
        accept: Accept::Lines(
            &["/ - * <bundle>/rootfs / ro,relatime - *"],
            &["/ - * <bundle>/rootfs / ro,relatime shared:</> - *"],
        ),
        reason: "linux.rootfsPropagation \"shared\": zagent's root is shared, as the runtime \
                 spec asks; runc 1.1.5's root ends up private (it binds the rootfs under a \
                 parent it made private). The host's / is private here, so the peer group \
                 has no host mount in it",
    },
];
/// The three sides of a variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Runc,
    Zagent(Launcher),
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Runc => "runc",
            Side::Zagent(l) => l.arg(),
        }
    }
}

struct Ctx {
    base: Base,
    runc: std::path::PathBuf,
    runc_root: tempfile::TempDir,
    zygote: TestAgent,
    reexec: TestAgent,
    host_ns: Vec<String>,
    permits: tokio::sync::Semaphore,
    ids: std::sync::Mutex<Vec<String>>,
}

/// One run of `variant` on `side`: (normalised report, outcome).
async fn run(ctx: &Ctx, variant: &Variant, side: Side) -> (String, Outcome) {
    let _permit = ctx.permits.acquire().await.expect("semaphore");
    let dir = RunDir::new(&ctx.base);
    let id = unique_id(&format!("zagent-conf-{}", side.name()));
    ctx.ids.lock().unwrap().push(id.clone());
    let mut spec = dir.spec();
    spec["linux"]["cgroupsPath"] = json!(format!("/zagent/{id}"));
    (variant.patch)(&mut spec, dir.bundle());
    let outcome = match side {
        Side::Runc => run_runc(&ctx.runc, ctx.runc_root.path(), dir.bundle(), &id, &spec).await,
        Side::Zagent(Launcher::Zygote) => run_zagent(&ctx.zygote, &id, &spec).await,
        Side::Zagent(Launcher::Reexec) => run_zagent(&ctx.reexec, &id, &spec).await,
    };
    let mounts = leftovers::host_mounts_at_or_under(dir.bundle());
    assert!(
        mounts.is_empty(),
        "{} on {}: host mounts left under the bundle: {mounts:?}",
        variant.name,
        side.name()
    );
    let n = Normaliser {
        bundle: dir.bundle().to_string_lossy().into_owned(),
        id,
        host_ns: ctx.host_ns.clone(),
    };
    (outcome.report(&n), outcome)
}

/// `line` against `pattern`, in which each `*` matches any run of characters.
fn matches(pattern: &str, line: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = line.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

fn all_match(patterns: &[&str], lines: &[String]) -> bool {
    patterns.len() == lines.len() && patterns.iter().zip(lines).all(|(p, l)| matches(p, l))
}

/// JUSTIFIED, then KNOWN_BUGS: every difference the suite accepts, in one index space.
fn entries() -> impl Iterator<Item = &'static Justified> {
    JUSTIFIED.iter().chain(KNOWN_BUGS)
}

fn applies(j: &Justified, variant: &str, section: &str) -> bool {
    let named = |v: &&str| matches(v, variant);
    (j.variants.is_empty() || j.variants.iter().any(named)) && j.section == section
}

/// The `Accept::Lines` entry of JUSTIFIED that accepts `hunk` of `variant`, if any.
fn justified(variant: &str, hunk: &Hunk) -> Option<usize> {
    entries().position(|j| {
        applies(j, variant, &hunk.section)
            && match j.accept {
                Accept::Lines(runc, zagent) => {
                    all_match(runc, &hunk.left) && all_match(zagent, &hunk.right)
                }
            }
    })
}

/// The hunks of one side's report against runc's that no entry of JUSTIFIED accepts, noting
/// the entries used in `used`. A spec one side ran and the other refused is one hunk in
/// section "outcome", with each side's message.
fn unjustified(
    variant: &str,
    runc: &(String, Outcome),
    other: &(String, Outcome),
    used: &mut [bool],
) -> Vec<Hunk> {
    let outcome = |o: &Outcome| match o {
        Outcome::Ran { .. } => "ran",
        Outcome::Refused(_) => "refused",
    };
    let hunks = if outcome(&runc.1) != outcome(&other.1) {
        vec![Hunk {
            section: "outcome".into(),
            left: vec![outcome(&runc.1).into()],
            right: vec![outcome(&other.1).into()],
        }]
    } else {
        diff::hunks(&runc.0, &other.0)
    };
    let mut out = Vec::new();
    for h in &hunks {
        match justified(variant, h) {
            Some(i) => used[i] = true,
            None if h.section == "outcome" => out.push(Hunk {
                left: vec![format!("{}: {}", h.left[0], runc.1.detail().trim())],
                right: vec![format!("{}: {}", h.right[0], other.1.detail().trim())],
                ..h.clone()
            }),
            None => out.push(h.clone()),
        }
    }
    out
}

/// Each distinct unjustified hunk once, with the variants and launchers it came up in.
fn render_failures(found: &[(String, Hunk)]) -> Vec<String> {
    let mut by_hunk: Vec<(&Hunk, Vec<&str>)> = Vec::new();
    for (where_, h) in found {
        match by_hunk.iter_mut().find(|(k, _)| *k == h) {
            Some((_, places)) => places.push(where_),
            None => by_hunk.push((h, vec![where_])),
        }
    }
    by_hunk
        .into_iter()
        .map(|(h, places)| {
            let mut text = format!(
                "in section {:?} of {} run(s): {}\n",
                h.section,
                places.len(),
                places.join(", ")
            );
            for l in &h.left {
                text.push_str(&format!("  - {l}\n"));
            }
            for l in &h.right {
                text.push_str(&format!("  + {l}\n"));
            }
            text
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runc_and_zagent_show_the_process_the_same_world() {
    tests::require_root();
    let started = Instant::now();
    // ZAGENT_CONFORMANCE=name,name runs only those variants, printing their whole diffs.
    let only = std::env::var("ZAGENT_CONFORMANCE").ok();
    let variants: Vec<Variant> = variants()
        .into_iter()
        .filter(|v| {
            only.as_deref()
                .is_none_or(|o| o.split(',').any(|n| n == v.name))
        })
        .collect();
    let ctx = Ctx {
        base: Base::new(),
        runc: runc(),
        runc_root: tempfile::Builder::new()
            .prefix("zagent-conf-runc")
            .tempdir()
            .expect("tempdir"),
        zygote: TestAgent::start_with(Launcher::Zygote).await,
        reexec: TestAgent::start_with(Launcher::Reexec).await,
        host_ns: host_namespaces(),
        permits: tokio::sync::Semaphore::new(CONCURRENCY),
        ids: Default::default(),
    };
    let results = futures::future::join_all(variants.iter().map(|variant| {
        let ctx = &ctx;
        async move {
            tokio::join!(
                run(ctx, variant, Side::Runc),
                run(ctx, variant, Side::Zagent(Launcher::Zygote)),
                run(ctx, variant, Side::Zagent(Launcher::Reexec)),
            )
        }
    }))
    .await;

    let mut failures = Vec::new();
    let mut found = Vec::new();
    let mut used = vec![false; JUSTIFIED.len() + KNOWN_BUGS.len()];
    for (variant, (runc, zygote, reexec)) in variants.iter().zip(&results) {
        let ran = matches!(runc.1, Outcome::Ran { .. });
        if ran != variant.runs {
            failures.push(format!(
                "{}: runc {} it (the variant says it {}): {}",
                variant.name,
                if ran { "ran" } else { "refused" },
                if variant.runs { "runs" } else { "is refused" },
                runc.1.detail().trim()
            ));
        }
        for (side, other) in [(Launcher::Zygote, zygote), (Launcher::Reexec, reexec)] {
            if only.is_some() {
                // Working on a few variants: the whole diff, justified lines included.
                eprintln!(
                    "{} ({} vs runc):\n{}",
                    variant.name,
                    side.arg(),
                    diff::render(&runc.0, &other.0)
                );
            }
            for h in unjustified(variant.name, runc, other, &mut used) {
                found.push((format!("{}/{}", variant.name, side.arg()), h));
            }
        }
    }
    if !found.is_empty() {
        failures.push(format!(
            "differences from runc that JUSTIFIED does not list (- runc, + zagent):\n\n{}",
            render_failures(&found).join("\n")
        ));
    }
    for (j, used) in entries().zip(&used) {
        if !used {
            failures.push(format!(
                "stale entry in JUSTIFIED or KNOWN_BUGS (no variant needs it any more): {:?} in {}: {}",
                j.variants, j.section, j.reason
            ));
        }
    }

    // Nothing of any run may be left: runc's and the agents' cgroups, the agents' zombies.
    for id in ctx.ids.lock().unwrap().iter() {
        let left = leftovers::cgroups_left(id);
        assert!(left.is_empty(), "cgroups of {id} left: {left:?}");
    }
    for a in [&ctx.zygote, &ctx.reexec] {
        assert_eq!(procs::zombies_of(a.pid()), Vec::<i32>::new(), "zombies");
    }
    // runc (not zagent) makes the `zagent` parent in the hybrid host's cgroup2 hierarchy
    // too; remove it once empty (rmdir fails on a non-empty one, so nobody else's goes).
    let _ = std::fs::remove_dir("/sys/fs/cgroup/unified/zagent");

    eprintln!(
        "conformance: {} variants x (runc, zygote, reexec) in {:.1?}, {} justified differences, \
         {} known bugs",
        variants.len(),
        started.elapsed(),
        JUSTIFIED.len(),
        KNOWN_BUGS.len()
    );
    assert!(
        failures.is_empty(),
        "{} conformance failures:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn patterns_match_with_stars() {
    assert!(matches("a*c", "abbc"));
    assert!(matches("a*", "a"));
    assert!(matches("/ - * x - *", "/ - 254:0 x - ext4 y"));
    assert!(!matches("a*c", "abcd"));
    assert!(!matches("abc", "abcd"));
    assert!(matches("abc", "abc"));
}
