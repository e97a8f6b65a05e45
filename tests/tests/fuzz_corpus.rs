//! Replays the fuzz corpora (`fuzz/corpus/<target>/`) through the same bodies the cargo-fuzz
//! targets run, as ordinary tests without root: a regression input that panics again fails
//! here. Also checks that the committed seeds are current and still reach the stage they were
//! made for, and that every RPC the agent serves has a fuzz entry.

use std::path::PathBuf;
use tests::fuzz_bodies::{self, seeds, TARGETS};

fn corpus_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

/// Runs `body` on `data`, turning a panic into the name of the input that caused it.
fn replay(target: &str, name: &str, body: fn(&[u8]), data: &[u8]) -> Result<(), String> {
    std::panic::catch_unwind(|| body(data)).map_err(|e| {
        let msg = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        format!("{target}/{name}: {msg}")
    })
}

#[test]
fn every_corpus_file_replays_clean() {
    let mut failures = Vec::new();
    for target in TARGETS {
        let dir = corpus_root().join(target.name);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus {} is missing: {e}", dir.display()));
        let mut count = 0;
        for entry in entries {
            let path = entry.expect("corpus entry").path();
            let data = std::fs::read(&path).expect("read corpus file");
            let name = path.file_name().expect("file name").to_string_lossy();
            if let Err(e) = replay(target.name, &name, target.body, &data) {
                failures.push(e);
            }
            count += 1;
        }
        assert!(count > 0, "corpus {} is empty", dir.display());
        println!("{}: {count} inputs replayed", target.name);
    }
    assert!(failures.is_empty(), "inputs that panic: {failures:#?}");
}

#[test]
fn seeds_replay_clean() {
    let all = seeds::all();
    for target in TARGETS {
        let mine: Vec<_> = all.iter().filter(|s| s.target == target.name).collect();
        assert!(!mine.is_empty(), "no seeds for {}", target.name);
        for s in mine {
            replay(target.name, &s.name, target.body, &s.data).unwrap();
        }
    }
    for s in &all {
        assert!(
            TARGETS.iter().any(|t| t.name == s.target),
            "seed {} names no target",
            s.name
        );
    }
}

/// The committed seed files are the seeds as they are made today: after a change to a message
/// (a new field in a zygote frame, say) the old files would stop decoding and the replay would
/// quietly test only the decoders' error paths.
#[test]
fn committed_seeds_are_current() {
    let mut stale = Vec::new();
    for s in seeds::all() {
        let path = corpus_root().join(s.target).join(&s.name);
        if std::fs::read(&path).ok().as_deref() != Some(&s.data[..]) {
            stale.push(format!("{}/{}", s.target, s.name));
        }
    }
    assert!(
        stale.is_empty(),
        "seed files missing or stale (run `cargo run -p tests --example fuzz_seeds -- \
         fuzz/corpus`): {stale:?}"
    );
}

/// The seeds are only worth having if they get past the decoders: the specs validate, the
/// processes convert, every frame decodes, every RPC payload parses.
#[test]
fn seeds_reach_the_stage_they_were_made_for() {
    for spec in [
        seeds::default_spec(),
        seeds::rich_spec(),
        seeds::seccomp_spec(),
    ] {
        let g = wire::oci::spec_to_grpc(&spec);
        let back = wire::oci::spec_from_grpc(&g).expect("seed spec converts");
        let v = jail::validate::validate("seed", &back).expect("seed spec validates");
        assert!(!v.config.mounts.is_empty());
    }
    let rich = seeds::rich_spec();
    let v = jail::validate::validate("seed", &rich).unwrap();
    assert!(v.config.process.terminal && !v.join_namespaces.is_empty());
    assert!(!v.resources.devices.is_empty() && v.resources.memory_limit.is_some());
    let v = jail::validate::validate("seed", &seeds::seccomp_spec()).unwrap();
    assert!(v.config.process.seccomp.is_some(), "seed profile compiles");
    let p = wire::oci::process_from_grpc(&wire::oci::process_to_grpc(&seeds::rich_process()));
    jail::validate::process_config(&p.expect("seed process converts")).expect("validates");

    for s in seeds::all().iter().filter(|s| s.target == "zygote_frame") {
        let ok = if s.name.starts_with("seed-request") {
            wire::codec::decode::<wire::zygote::Request>(&s.data).is_ok()
        } else if s.name.starts_with("seed-reply") {
            wire::codec::decode::<wire::zygote::Reply>(&s.data).is_ok()
        } else {
            wire::codec::decode::<wire::zygote::ChildEvent>(&s.data).is_ok()
        };
        assert!(ok, "{} does not decode", s.name);
    }
    let ttrpc: Vec<_> = seeds::all()
        .into_iter()
        .filter(|s| s.target == "ttrpc_request")
        .collect();
    for rpc in fuzz_bodies::RPCS {
        let tag = seeds::rpc_tag(rpc.path);
        assert!(
            ttrpc.iter().any(|s| s.data.first() == Some(&tag)),
            "no seed for {}",
            rpc.path
        );
    }
    let envelopes = ttrpc
        .iter()
        .filter(|s| s.data.first() == Some(&seeds::envelope_tag()));
    for s in envelopes {
        let env = fuzz_bodies::parse::<ttrpc::Request>(&s.data[1..]).expect("envelope parses");
        let path = format!("/{}/{}", env.service, env.method);
        assert!(fuzz_bodies::RPCS.iter().any(|r| r.path == path), "{path}");
    }
}

/// `agent::rpc::SERVED` lives in a binary crate, so it is read from its source: a newly served
/// RPC without a fuzz entry fails here.
#[test]
fn every_served_rpc_is_fuzzed() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../agent/src/rpc/mod.rs");
    let text = std::fs::read_to_string(&src).expect("agent/src/rpc/mod.rs");
    let start = text
        .find("pub const SERVED")
        .expect("SERVED in agent/src/rpc/mod.rs");
    let list = &text[start..start + text[start..].find("];").expect("end of SERVED")];
    let served: Vec<&str> = list.split('"').skip(1).step_by(2).collect();
    assert!(served.len() >= 13, "SERVED parsed as {served:?}");
    for name in served {
        let path = format!("/grpc.AgentService/{name}");
        assert!(
            fuzz_bodies::RPCS.iter().any(|r| r.path == path),
            "{path} is served but not fuzzed"
        );
    }
    for path in [
        "/grpc.Health/Check",
        "/grpc.Health/Version",
        "/zagent.Admin/ListContainers",
    ] {
        assert!(fuzz_bodies::RPCS.iter().any(|r| r.path == path), "{path}");
    }
}
