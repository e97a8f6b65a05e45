//! Bounds what one ttrpc connection can make the agent hold.
//!
//! ttrpc 0.10's async server reads frames as fast as they arrive and spawns one task per frame,
//! whose reply then waits for a 100-slot channel to the connection's writer: a client that
//! pipelines requests and never reads its replies makes tasks (and their requests and replies)
//! pile up without bound, and its API has no knob for it. `Metered` sits between the socket and
//! ttrpc and follows the ttrpc frames both ways (10-byte header: length, stream id, type,
//! flags): each frame that gets a reply is pending from its header until its reply frame has
//! been written, and at a frame boundary `Metered` stops reading while `MAX_PENDING` frames or
//! `MAX_PENDING_BYTES` of their payload are pending. The socket then fills up and the client
//! blocks (back-pressure); nothing is dropped.
//!
//! While it does not read for ttrpc it still reads up to `STASH` bytes ahead, only to see the
//! client hang up (ttrpc then drops the connection and cancels its handlers, as it would have).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Frames awaiting their reply, per connection. A shim keeps a few long calls pending per
/// process (WaitProcess, ReadStdout, ReadStderr), so this must be well above that.
pub const MAX_PENDING: usize = 1024;
/// Request payload awaiting its reply, per connection: ttrpc frames are at most 4 MiB, so at
/// most this plus 4 MiB is admitted.
pub const MAX_PENDING_BYTES: u64 = 8 << 20;
/// How far ahead `Metered` reads (and holds) while it withholds data from ttrpc.
const STASH: usize = 4096;
const HEADER_LEN: usize = 10;
/// ttrpc's MESSAGE_LENGTH_MAX: ttrpc discards a longer body and answers with an error.
const FRAME_MAX: u32 = 4 << 20;
const TYPE_REQUEST: u8 = 1;
const TYPE_RESPONSE: u8 = 2;
const TYPE_DATA: u8 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    len: u32,
    stream: u32,
    kind: u8,
}

enum Event {
    Start(Header),
    End(Header),
}

/// Follows frame boundaries in a byte stream.
#[derive(Default)]
struct Frames {
    buf: [u8; HEADER_LEN],
    have: usize,
    current: Option<Header>,
    body_left: u32,
}

impl Frames {
    fn at_boundary(&self) -> bool {
        self.have == 0 && self.current.is_none()
    }

    fn feed(
        &mut self,
        mut data: &[u8],
        mut on: impl FnMut(Event) -> io::Result<()>,
    ) -> io::Result<()> {
        while !data.is_empty() || self.current.is_some_and(|_| self.body_left == 0) {
            if let Some(h) = self.current {
                let n = (self.body_left as usize).min(data.len());
                self.body_left -= n as u32;
                data = &data[n..];
                if self.body_left == 0 {
                    self.current = None;
                    on(Event::End(h))?;
                }
                continue;
            }
            let n = (HEADER_LEN - self.have).min(data.len());
            self.buf[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have == HEADER_LEN {
                let b = self.buf;
                let h = Header {
                    len: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
                    stream: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
                    kind: b[8],
                };
                self.have = 0;
                self.current = Some(h);
                self.body_left = h.len;
                on(Event::Start(h))?;
            }
        }
        Ok(())
    }
}

/// A connection as ttrpc sees it: `inner` with the pending-request bound applied.
pub struct Metered<S> {
    inner: S,
    read: Frames,
    written: Frames,
    /// (stream id, payload bytes) of each frame awaiting its reply.
    pending: Vec<(u32, u32)>,
    pending_bytes: u64,
    reader: Option<Waker>,
    stash: Vec<u8>,
    hung_up: bool,
}

impl<S> Metered<S> {
    pub fn new(inner: S) -> Metered<S> {
        Metered {
            inner,
            read: Frames::default(),
            written: Frames::default(),
            pending: Vec::new(),
            pending_bytes: 0,
            reader: None,
            stash: Vec::new(),
            hung_up: false,
        }
    }

    fn full(&self) -> bool {
        self.pending.len() >= MAX_PENDING || self.pending_bytes >= MAX_PENDING_BYTES
    }
}

/// Books a frame ttrpc is about to receive. Every frame ttrpc answers is pending: requests,
/// DATA (we serve no streams, so ttrpc answers each with an error) and oversized frames of any
/// type (discarded by ttrpc, answered with an error, holding nothing). Any other frame type is
/// not something a client sends; ttrpc would log it and go on, so it ends the connection.
fn admit(pending: &mut Vec<(u32, u32)>, bytes: &mut u64, h: Header) -> io::Result<()> {
    if h.len > FRAME_MAX {
        pending.push((h.stream, 0));
    } else if h.kind == TYPE_REQUEST || h.kind == TYPE_DATA {
        pending.push((h.stream, h.len));
        *bytes += u64::from(h.len);
    } else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a client sent a ttrpc frame of type {}", h.kind),
        ));
    }
    Ok(())
}

impl<S: AsyncRead + Unpin> Metered<S> {
    /// While ttrpc must wait: reads ahead into the stash until it is full or the socket has
    /// nothing, and reports a hang-up.
    fn poll_hang_up(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut chunk = [0u8; 512];
        while !self.hung_up && self.stash.len() < STASH {
            let room = (STASH - self.stash.len()).min(chunk.len());
            let mut rb = ReadBuf::new(&mut chunk[..room]);
            match Pin::new(&mut self.inner).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => self.hung_up = true,
                Poll::Ready(Ok(())) => self.stash.extend_from_slice(rb.filled()),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => break,
            }
        }
        if self.hung_up {
            return Poll::Ready(Ok(()));
        }
        Poll::Pending
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.read.at_boundary() && this.full() {
            this.reader = Some(cx.waker().clone());
            // A hang-up reads as end of stream at a frame boundary: ttrpc then disconnects.
            return this.poll_hang_up(cx);
        }
        let start = buf.filled().len();
        if !this.stash.is_empty() {
            let n = this.stash.len().min(buf.remaining());
            buf.put_slice(&this.stash[..n]);
            this.stash.drain(..n);
        } else if !this.hung_up {
            match Pin::new(&mut this.inner).poll_read(cx, buf) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
        }
        let Metered {
            read,
            pending,
            pending_bytes,
            ..
        } = this;
        read.feed(&buf.filled()[start..], |ev| match ev {
            Event::Start(h) => admit(pending, pending_bytes, h),
            Event::End(_) => Ok(()),
        })?;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = match Pin::new(&mut this.inner).poll_write(cx, data) {
            Poll::Ready(Ok(n)) => n,
            other => return other,
        };
        let Metered {
            written,
            pending,
            pending_bytes,
            reader,
            ..
        } = this;
        let mut answered = false;
        let _ = written.feed(&data[..n], |ev| {
            if let Event::End(h) = ev {
                if h.kind == TYPE_RESPONSE {
                    if let Some(i) = pending.iter().position(|&(s, _)| s == h.stream) {
                        let (_, len) = pending.swap_remove(i);
                        *pending_bytes -= u64::from(len);
                        answered = true;
                    }
                }
            }
            Ok(())
        });
        if answered {
            if let Some(w) = reader.take() {
                w.wake();
            }
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn frame(stream: u32, kind: u8, len: u32) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&len.to_be_bytes());
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(&[kind, 0]);
        f.extend(std::iter::repeat_n(7u8, len as usize));
        f
    }

    #[test]
    fn frames_split_anywhere_are_followed() {
        let mut bytes = frame(1, TYPE_REQUEST, 5);
        bytes.extend(frame(3, TYPE_REQUEST, 0));
        bytes.extend(frame(5, TYPE_DATA, 2));
        for split in 0..bytes.len() {
            let mut f = Frames::default();
            let mut seen = Vec::new();
            for part in [&bytes[..split], &bytes[split..]] {
                f.feed(part, |ev| {
                    if let Event::End(h) = ev {
                        seen.push(h.stream);
                    }
                    Ok(())
                })
                .unwrap();
            }
            assert_eq!(seen, [1, 3, 5], "split at {split}");
            assert!(f.at_boundary());
        }
    }

    #[tokio::test]
    async fn reading_stops_when_full_and_resumes_on_a_reply() {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let mut m = Metered::new(server);
        for i in 0..MAX_PENDING as u32 + 1 {
            client
                .write_all(&frame(2 * i + 1, TYPE_REQUEST, 1))
                .await
                .unwrap();
        }
        let mut one = [0u8; 11];
        for _ in 0..MAX_PENDING {
            m.read_exact(&mut one).await.unwrap();
        }
        let stalled = tokio::time::timeout(
            std::time::Duration::from_millis(100),
            m.read_exact(&mut one),
        );
        assert!(
            stalled.await.is_err(),
            "read on while MAX_PENDING are pending"
        );
        m.write_all(&frame(1, TYPE_RESPONSE, 3)).await.unwrap();
        m.read_exact(&mut one).await.unwrap();
        assert_eq!(u32::from_be_bytes([one[4], one[5], one[6], one[7]]), 2049);
    }

    #[tokio::test]
    async fn a_hang_up_while_full_reads_as_end_of_stream() {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let mut m = Metered::new(server);
        // Two frames of the largest size fill MAX_PENDING_BYTES; then the client hangs up.
        let writer = tokio::spawn(async move {
            for stream in [1, 3] {
                client
                    .write_all(&frame(stream, TYPE_REQUEST, FRAME_MAX))
                    .await
                    .unwrap();
            }
            client.write_all(b"more").await.unwrap();
        });
        let mut body = vec![0u8; FRAME_MAX as usize + HEADER_LEN];
        for _ in 0..2 {
            m.read_exact(&mut body).await.unwrap();
        }
        writer.await.unwrap();
        assert!(m.full());
        let mut rest = Vec::new();
        let r = tokio::time::timeout(std::time::Duration::from_secs(5), m.read_to_end(&mut rest));
        assert_eq!(r.await.expect("hang-up seen").unwrap(), 0);
    }

    #[tokio::test]
    async fn unexpected_frame_types_end_the_connection() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut m = Metered::new(server);
        client.write_all(&frame(1, TYPE_RESPONSE, 0)).await.unwrap();
        let mut h = [0u8; HEADER_LEN];
        let e = m.read_exact(&mut h).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}
