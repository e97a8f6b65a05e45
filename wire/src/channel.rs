//! Frames with fds over SOCK_SEQPACKET: one `sendmsg` per frame (message boundaries come from
//! the socket type), fds passed with SCM_RIGHTS. Received fds arrive O_CLOEXEC and owned, so
//! every error path closes them by dropping.

use crate::codec::{self, CodecError};
use crate::zygote::{MAX_FDS, MAX_FRAME};
use nix::errno::Errno;
use nix::sys::socket::{
    sendmsg, socketpair, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType,
};
use serde::{de::DeserializeOwned, Serialize};
use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("socket: {0}")]
    Io(#[from] Errno),
    #[error("peer closed the channel")]
    Closed,
    #[error("frame truncated (larger than {MAX_FRAME} bytes)")]
    Truncated,
    #[error("fds truncated (MSG_CTRUNC): the receiver could not take every fd sent")]
    FdsTruncated,
    #[error("expected {expected} fds, got {got}")]
    FdCount { expected: usize, got: usize },
    #[error("cannot send {0} fds (limit {MAX_FDS})")]
    TooManyFds(usize),
    #[error(transparent)]
    Codec(#[from] CodecError),
}

impl ChannelError {
    /// True when a non-blocking socket had nothing to give or take yet.
    pub fn is_would_block(&self) -> bool {
        matches!(self, ChannelError::Io(Errno::EAGAIN))
    }
}

/// A connected pair of SOCK_SEQPACKET sockets, both O_CLOEXEC.
pub fn pair() -> Result<(OwnedFd, OwnedFd), ChannelError> {
    Ok(socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?)
}

/// Sends one raw frame with `fds`. Retries on EINTR.
pub fn send_frame(
    sock: BorrowedFd<'_>,
    frame: &[u8],
    fds: &[BorrowedFd<'_>],
) -> Result<(), ChannelError> {
    if fds.len() > MAX_FDS {
        return Err(ChannelError::TooManyFds(fds.len()));
    }
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &cmsg };
    let iov = [IoSlice::new(frame)];
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => return Ok(()),
        }
    }
}

/// Receives one raw frame into `buf` (which must hold `MAX_FRAME` bytes). Returns the frame's
/// length and its fds. A truncated frame or fd list is an error, and the fds that did arrive are
/// closed on the way out.
pub fn recv_frame(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
) -> Result<(usize, Vec<OwnedFd>), ChannelError> {
    // u64 elements keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; CONTROL_WORDS];
    let (bytes, flags, fds) = loop {
        match recvmsg_raw(sock, buf, &mut control) {
            Err(Errno::EINTR) => continue,
            other => break other?,
        }
    };
    // Checked after the fds are owned, so that every error path closes them.
    if flags & libc::MSG_CTRUNC != 0 {
        return Err(ChannelError::FdsTruncated);
    }
    if flags & libc::MSG_TRUNC != 0 {
        return Err(ChannelError::Truncated);
    }
    if bytes == 0 {
        return Err(ChannelError::Closed);
    }
    Ok((bytes, fds))
}

/// Room for one SCM_RIGHTS message of MAX_FDS fds (CMSG_SPACE, rounded up to u64 words).
const CONTROL_WORDS: usize = (std::mem::size_of::<libc::cmsghdr>()
    + MAX_FDS * std::mem::size_of::<libc::c_int>())
.div_ceil(8)
    + 1;

/// recvmsg(2) with MSG_CMSG_CLOEXEC, taking ownership of every fd that arrived, also when the
/// kernel could not install all of them (MSG_CTRUNC; nix refuses to walk such a buffer).
fn recvmsg_raw(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    control: &mut [u64],
) -> Result<(usize, i32, Vec<OwnedFd>), Errno> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is valid (null name, no iov, no control) before we fill it.
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = control.as_mut_ptr().cast();
    hdr.msg_controllen = std::mem::size_of_val(control);
    // SAFETY: hdr points at `iov` (which points at `buf`) and at `control`, all alive and
    // writable for the call, with their true lengths.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut hdr, libc::MSG_CMSG_CLOEXEC) };
    let n = Errno::result(n)?;
    let mut fds = Vec::new();
    // SAFETY: the CMSG_* macros walk the control buffer the kernel just filled, bounded by
    // hdr.msg_controllen; each SCM_RIGHTS payload holds (cmsg_len - CMSG_LEN(0)) / 4 fds, read
    // unaligned, that the kernel installed for us and nothing else owns.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&hdr);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c).cast::<libc::c_int>();
                let len = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..len / std::mem::size_of::<libc::c_int>() {
                    fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                }
            }
            c = libc::CMSG_NXTHDR(&hdr, c);
        }
    }
    Ok((n as usize, hdr.msg_flags, fds))
}

/// Encodes and sends `msg` with `fds`.
pub fn send<T: Serialize>(
    sock: BorrowedFd<'_>,
    msg: &T,
    fds: &[BorrowedFd<'_>],
) -> Result<(), ChannelError> {
    send_frame(sock, &codec::encode(msg)?, fds)
}

/// Receives and decodes one message, checking that exactly `expected_fds` came with it (None:
/// any number up to `MAX_FDS`; the caller checks).
pub fn recv<T: DeserializeOwned>(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    expected_fds: Option<usize>,
) -> Result<(T, Vec<OwnedFd>), ChannelError> {
    let (len, fds) = recv_frame(sock, buf)?;
    if let Some(expected) = expected_fds {
        if fds.len() != expected {
            return Err(ChannelError::FdCount {
                expected,
                got: fds.len(),
            });
        }
    }
    Ok((codec::decode(&buf[..len])?, fds))
}

/// A receive buffer of `MAX_FRAME` bytes.
pub fn buffer() -> Vec<u8> {
    vec![0u8; MAX_FRAME]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zygote::Reply;
    use std::os::fd::AsFd;

    fn cloexec(fd: BorrowedFd<'_>) -> bool {
        let flags = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFD).unwrap();
        flags & libc::FD_CLOEXEC != 0
    }

    #[test]
    fn passes_fds_that_arrive_cloexec_and_usable() {
        let (a, b) = pair().unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        send(a.as_fd(), &Reply::Launched { pid: 42 }, &[w.as_fd()]).unwrap();
        drop(w);
        let mut buf = buffer();
        let (msg, fds) = recv::<Reply>(b.as_fd(), &mut buf, Some(1)).unwrap();
        assert_eq!(msg, Reply::Launched { pid: 42 });
        assert!(cloexec(fds[0].as_fd()));
        nix::unistd::write(&fds[0], b"x").unwrap();
        drop(fds);
        let mut got = [0u8; 2];
        assert_eq!(nix::unistd::read(r.as_raw_fd(), &mut got).unwrap(), 1);
        // every write end is closed now, so the pipe reports EOF
        assert_eq!(nix::unistd::read(r.as_raw_fd(), &mut got).unwrap(), 0);
    }

    #[test]
    fn wrong_fd_count_is_an_error_and_closes_what_arrived() {
        let (a, b) = pair().unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        send(a.as_fd(), &Reply::Launched { pid: 1 }, &[w.as_fd()]).unwrap();
        drop(w);
        let mut buf = buffer();
        let err = recv::<Reply>(b.as_fd(), &mut buf, Some(0)).unwrap_err();
        assert!(matches!(
            err,
            ChannelError::FdCount {
                expected: 0,
                got: 1
            }
        ));
        let mut got = [0u8; 1];
        assert_eq!(
            nix::unistd::read(r.as_raw_fd(), &mut got).unwrap(),
            0,
            "fd leaked"
        );
    }

    #[test]
    fn closed_peer_is_reported() {
        let (a, b) = pair().unwrap();
        drop(a);
        let mut buf = buffer();
        assert!(matches!(
            recv_frame(b.as_fd(), &mut buf),
            Err(ChannelError::Closed)
        ));
    }

    #[test]
    fn oversized_frame_is_truncated_error() {
        let (a, b) = pair().unwrap();
        nix::sys::socket::setsockopt(&a, nix::sys::socket::sockopt::SndBuf, &(1 << 20)).unwrap();
        let big = vec![1u8; MAX_FRAME + 10];
        send_frame(a.as_fd(), &big, &[]).unwrap();
        let mut buf = buffer();
        assert!(matches!(
            recv_frame(b.as_fd(), &mut buf),
            Err(ChannelError::Truncated)
        ));
    }
}
