//! The hybrid-vsock handshake against a fake VMM: a Unix listener that reads the CONNECT line
//! and answers as vhost-device-vsock or Firecracker would, or refuses.

use super::*;
use futures::StreamExt;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::UnixListener;

/// Accepts one connection, checks the CONNECT line, answers `reply` and hands the stream back.
async fn fake_vmm(listener: UnixListener, reply: &'static [u8]) -> (String, UnixStream) {
    let (stream, _) = listener.accept().await.unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).await.unwrap();
    let mut stream = reader.into_inner();
    stream.write_all(reply).await.unwrap();
    (line, stream)
}

fn listener() -> (tempfile::TempDir, PathBuf, UnixListener) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vm.vsock");
    let l = UnixListener::bind(&path).unwrap();
    (dir, path, l)
}

#[test]
fn addresses_parse() {
    assert_eq!(
        Addr::parse("hvsock:///run/vm/h.sock:1024").unwrap(),
        Addr::Hybrid {
            path: "/run/vm/h.sock".into(),
            port: 1024
        }
    );
    let same = |a: &str| assert_eq!(Addr::parse(a).unwrap(), Addr::Ttrpc(a.into()));
    same("unix:///run/z.sock");
    same("vsock://3:1024");
    for bad in [
        "hvsock:///x",
        "hvsock:///x:port",
        "hvsock://:1024",
        "hvsock:///x:-1",
    ] {
        let e = Addr::parse(bad).unwrap_err();
        assert!(matches!(e, ConnectError::HybridAddr { .. }), "{bad}: {e}");
    }
    let e = Addr::parse("tcp://1.2.3.4:5").unwrap_err();
    assert!(matches!(e, ConnectError::Scheme { .. }), "{e}");
}

#[tokio::test]
async fn the_handshake_leaves_the_guests_bytes_in_the_stream() {
    let (_dir, path, l) = listener();
    // The guest's first bytes arrive in the same write as the answer: none may be lost.
    let vmm = tokio::spawn(fake_vmm(l, b"OK 1024\nguest"));
    let mut s = hybrid_stream(&path, 1024, HANDSHAKE_TIMEOUT).await.unwrap();
    let (line, _peer) = vmm.await.unwrap();
    assert_eq!(line, "CONNECT 1024\n");
    let mut rest = [0u8; 5];
    s.read_exact(&mut rest).await.unwrap();
    assert_eq!(&rest, b"guest");
}

#[tokio::test]
async fn refusals_are_clear_errors() {
    let (_dir, path, l) = listener();
    let vmm = tokio::spawn(async move {
        let (_, s) = fake_vmm(l, b"").await;
        drop(s);
    });
    let e = hybrid_stream(&path, 1024, HANDSHAKE_TIMEOUT)
        .await
        .unwrap_err();
    vmm.await.unwrap();
    let msg = e.to_string();
    assert!(
        msg.contains("closed the connection") && msg.contains("agent up"),
        "{msg}"
    );

    let (_dir, path, l) = listener();
    tokio::spawn(fake_vmm(l, b"ERR no listener\n"));
    let msg = hybrid_stream(&path, 7, HANDSHAKE_TIMEOUT)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("ERR no listener") && msg.contains("port 7"),
        "{msg}"
    );

    let (_dir, path, l) = listener();
    let silent = tokio::spawn(async move { l.accept().await.unwrap() });
    let e = hybrid_stream(&path, 7, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no answer within"), "{e}");
    drop(silent);

    let (_dir, path, l) = listener();
    tokio::spawn(fake_vmm(l, &[b'x'; 200]));
    let e = hybrid_stream(&path, 7, HANDSHAKE_TIMEOUT)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("longer than"), "{e}");
}

#[tokio::test]
async fn no_vmm_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("hvsock://{}:1024", dir.path().join("absent").display());
    let e = connect(&addr).await.err().expect("no socket, no client");
    assert!(matches!(e, ConnectError::HybridSocket { .. }), "{e}");
    assert!(e.to_string().contains("VMM running"), "{e}");
}

struct Healthy;

#[async_trait::async_trait]
impl crate::health_ttrpc::Health for Healthy {
    async fn check(
        &self,
        _: &ttrpc::r#async::TtrpcContext,
        _: crate::health::CheckRequest,
    ) -> ttrpc::Result<crate::health::HealthCheckResponse> {
        let mut r = crate::health::HealthCheckResponse::new();
        r.status = crate::health::health_check_response::ServingStatus::SERVING.into();
        Ok(r)
    }
}

#[tokio::test]
async fn ttrpc_runs_over_the_handshaken_stream() {
    let (_dir, path, l) = listener();
    let vmm = tokio::spawn(fake_vmm(l, b"OK 1024\n"));
    let addr = format!("hvsock://{}:1024", path.display());
    let client = connect(&addr).await.unwrap();
    let (_, guest_side) = vmm.await.unwrap();
    // The guest's end of the stream is served by a ttrpc server, as the agent would.
    let conns = futures::stream::iter([Ok::<_, std::io::Error>(guest_side)])
        .chain(futures::stream::pending());
    let mut server = ttrpc::r#async::Server::new()
        .add_listener(ttrpc::r#async::transport::Listener::new(conns))
        .register_service(crate::health_ttrpc::create_health(Arc::new(Healthy)));
    server.start().await.unwrap();
    let health = crate::health_ttrpc::HealthClient::new(client);
    let ctx = ttrpc::context::with_timeout(5_000_000_000);
    let r = health.check(ctx, &Default::default()).await.unwrap();
    assert_eq!(
        r.status.enum_value(),
        Ok(crate::health::health_check_response::ServingStatus::SERVING)
    );
    server.shutdown().await.unwrap();
}
