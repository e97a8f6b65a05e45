//! The few raw system calls the jail needs that nix 0.29 does not offer in a usable form:
//! openat2, fd-returning opens as `OwnedFd`, capset, the capability prctls, close_range,
//! setrlimit with a numeric resource, setdomainname, the pty ioctls (unlockpt, pty number,
//! TIOCGPTPEER, window size, controlling terminal) and the interface-flags ioctls that bring a
//! network link up. This module owns every `libc` call and
//! every `unsafe` block of the jail's child side (only the test harness forks elsewhere); each
//! wrapper returns the kernel's errno.

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `struct open_how` of openat2(2). libc's version is `#[non_exhaustive]`, so we mirror the
/// (stable, versioned-by-size) kernel ABI ourselves.
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

pub const RESOLVE_NO_MAGICLINKS: u64 = libc::RESOLVE_NO_MAGICLINKS;
pub const RESOLVE_NO_SYMLINKS: u64 = libc::RESOLVE_NO_SYMLINKS;
pub const RESOLVE_BENEATH: u64 = libc::RESOLVE_BENEATH;
pub const RESOLVE_IN_ROOT: u64 = libc::RESOLVE_IN_ROOT;

/// A path as a C string; an interior NUL can never name a real file, so it is EINVAL.
pub fn cpath(path: &Path) -> Result<CString, Errno> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)
}

/// The magic link through which mount(2) and chmod(2) reach exactly the inode behind `fd`.
pub fn fd_path(fd: BorrowedFd<'_>) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: every caller passes an fd that a successful fd-creating call (open, openat2,
    // TIOCGPTPEER, pidfd_open) has just returned to us; nothing else refers to it, so this
    // `OwnedFd` is its only owner.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// openat2(2); O_CLOEXEC is always added.
pub fn openat2(
    dir: BorrowedFd<'_>,
    path: &Path,
    flags: OFlag,
    mode: u32,
    resolve: u64,
) -> Result<OwnedFd, Errno> {
    let path = cpath(path)?;
    let how = OpenHow {
        flags: (flags | OFlag::O_CLOEXEC).bits() as u64,
        mode: u64::from(mode),
        resolve,
    };
    // With RESOLVE_IN_ROOT/BENEATH the kernel answers EAGAIN when any mount or rename happened
    // anywhere during the walk (other containers mount all the time): retry, bounded.
    let mut attempts = 0;
    loop {
        // SAFETY: `path` is a NUL-terminated string and `how` a fully initialised open_how
        // whose size we pass; the kernel only reads both during the call.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        match Errno::result(ret) {
            Err(Errno::EAGAIN | Errno::EINTR) if attempts < OPENAT2_RETRIES => attempts += 1,
            Err(e) => return Err(e),
            Ok(fd) => return Ok(owned(fd as RawFd)),
        }
    }
}

/// How often openat2 is retried on EAGAIN before the error is reported.
const OPENAT2_RETRIES: u32 = 1000;

/// openat(2) relative to `dir`; O_CLOEXEC is always added.
pub fn openat(dir: BorrowedFd<'_>, path: &Path, flags: OFlag, mode: u32) -> Result<OwnedFd, Errno> {
    let mode = Mode::from_bits_truncate(mode as libc::mode_t);
    let fd = nix::fcntl::openat(Some(dir.as_raw_fd()), path, flags | OFlag::O_CLOEXEC, mode)?;
    Ok(owned(fd))
}

/// open(2) of an absolute path; O_CLOEXEC is always added.
pub fn open(path: &Path, flags: OFlag) -> Result<OwnedFd, Errno> {
    let fd = nix::fcntl::open(path, flags | OFlag::O_CLOEXEC, Mode::empty())?;
    Ok(owned(fd))
}

const CAP_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// capset(2) of the calling thread with all three sets at once, as 64-bit masks.
pub fn capset(effective: u64, permitted: u64, inheritable: u64) -> Result<(), Errno> {
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let split = |m: u64| [m as u32, (m >> 32) as u32];
    let (e, p, i) = (split(effective), split(permitted), split(inheritable));
    let data = [
        CapData {
            effective: e[0],
            permitted: p[0],
            inheritable: i[0],
        },
        CapData {
            effective: e[1],
            permitted: p[1],
            inheritable: i[1],
        },
    ];
    // SAFETY: version 3 takes a header and an array of exactly two data structs, which is what
    // we pass; the kernel may write the preferred version into `header`, which is ours.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    };
    Errno::result(ret).map(drop)
}

fn prctl(option: libc::c_int, arg2: libc::c_ulong, arg3: libc::c_ulong) -> Result<i32, Errno> {
    // SAFETY: only called with options whose extra arguments are plain integers (capability
    // numbers and sub-commands), never pointers.
    let ret = unsafe { libc::prctl(option, arg2, arg3, 0 as libc::c_ulong, 0 as libc::c_ulong) };
    Errno::result(ret)
}

/// PR_CAPBSET_READ: Ok(true/false), or EINVAL when `cap` is beyond the kernel's last cap.
pub fn capbset_read(cap: u32) -> Result<bool, Errno> {
    prctl(libc::PR_CAPBSET_READ, cap.into(), 0).map(|v| v == 1)
}

pub fn capbset_drop(cap: u32) -> Result<(), Errno> {
    prctl(libc::PR_CAPBSET_DROP, cap.into(), 0).map(drop)
}

pub fn ambient_clear_all() -> Result<(), Errno> {
    prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as _, 0).map(drop)
}

pub fn ambient_raise(cap: u32) -> Result<(), Errno> {
    prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_RAISE as _,
        cap.into(),
    )
    .map(drop)
}

/// close_range(first, ~0, CLOSE_RANGE_CLOEXEC), by syscall number so that it does not depend
/// on the C library's version.
pub fn cloexec_from(first: u32) -> Result<(), Errno> {
    // SAFETY: close_range takes three integers; with CLOSE_RANGE_CLOEXEC it only sets flags.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    Errno::result(ret).map(drop)
}

/// setrlimit(2) with the numeric `RLIMIT_*` resource of the launch config.
pub fn setrlimit(resource: u32, soft: u64, hard: u64) -> Result<(), Errno> {
    let limit = libc::rlimit64 {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `limit` is an initialised rlimit64 the kernel only reads; the old-limit pointer is
    // null, which prlimit64 accepts.
    let ret = unsafe { libc::prlimit64(0, resource as _, &limit, std::ptr::null_mut()) };
    Errno::result(ret).map(drop)
}

pub fn setdomainname(name: &str) -> Result<(), Errno> {
    // SAFETY: the pointer and length describe `name`'s bytes, which the kernel only reads.
    let ret = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    Errno::result(ret).map(drop)
}

/// ioctl(2) with an integer argument (not a pointer).
fn ioctl_int(fd: BorrowedFd<'_>, request: libc::Ioctl, arg: libc::c_ulong) -> Result<i32, Errno> {
    // SAFETY: only called with requests whose argument is a plain integer (TIOCGPTPEER's open
    // flags, TIOCSCTTY's "steal" flag); the kernel reads nothing through it.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), request, arg) };
    Errno::result(ret)
}

/// unlockpt(3): TIOCSPTLCK with 0, so that the slave can be opened.
pub fn unlockpt(master: BorrowedFd<'_>) -> Result<(), Errno> {
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int through the pointer, which points at `unlock`, alive for
    // the whole call.
    let ret = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCSPTLCK,
            &unlock as *const libc::c_int,
        )
    };
    Errno::result(ret).map(drop)
}

/// TIOCGPTN: the number N of the master's slave, /dev/pts/N in the master's devpts instance.
pub fn pty_number(master: BorrowedFd<'_>) -> Result<u32, Errno> {
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int through the pointer, which points at `n`.
    let ret = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTN,
            &mut n as *mut libc::c_uint,
        )
    };
    Errno::result(ret).map(|_| n)
}

/// TIOCGPTPEER (Linux 4.13): opens the master's own slave without any path lookup, so no
/// mount or symlink can hand us a different file. O_CLOEXEC is always added.
pub fn open_pty_peer(master: BorrowedFd<'_>, flags: OFlag) -> Result<OwnedFd, Errno> {
    let flags = (flags | OFlag::O_CLOEXEC).bits() as libc::c_ulong;
    ioctl_int(master, libc::TIOCGPTPEER, flags).map(|fd| owned(fd as RawFd))
}

/// TIOCSWINSZ: the terminal's size in rows and columns (pixels left 0).
pub fn set_window_size(tty: BorrowedFd<'_>, rows: u16, cols: u16) -> Result<(), Errno> {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `struct winsize` through the pointer, which points at the
    // fully initialised `size`, alive for the whole call.
    let ret = unsafe {
        libc::ioctl(
            tty.as_raw_fd(),
            libc::TIOCSWINSZ,
            &size as *const libc::winsize,
        )
    };
    Errno::result(ret).map(drop)
}

/// TIOCSCTTY with 0 ("do not steal"): makes `tty` the controlling terminal of the calling
/// session leader; fails if it already belongs to another session.
pub fn set_controlling_tty(tty: BorrowedFd<'_>) -> Result<(), Errno> {
    ioctl_int(tty, libc::TIOCSCTTY, 0).map(drop)
}

/// `struct ifreq` of netdevice(7) with the `ifr_flags` member of its union. libc's version is
/// a union we would have to fill through unsafe field writes; the kernel ABI is stable, and the
/// padding makes this as large as the kernel's struct (40 bytes), which it copies in whole.
#[repr(C)]
struct IfreqFlags {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// SIOCGIFFLAGS then, unless it is up already, SIOCSIFFLAGS with IFF_UP added, on interface
/// `name` of the calling process's network namespace (through a throwaway datagram socket, as
/// ip(8) does).
pub fn set_link_up(name: &str) -> Result<(), Errno> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    let bytes = name.as_bytes();
    if bytes.len() >= libc::IFNAMSIZ {
        return Err(Errno::EINVAL);
    }
    let mut req = IfreqFlags {
        name: [0; libc::IFNAMSIZ],
        flags: 0,
        _pad: [0; 22],
    };
    req.name[..bytes.len()].copy_from_slice(bytes);
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    for request in [libc::SIOCGIFFLAGS, libc::SIOCSIFFLAGS] {
        if request == libc::SIOCSIFFLAGS {
            if req.flags & libc::IFF_UP as libc::c_short != 0 {
                break; // a pooled namespace: the zygote brought it up off the launch path
            }
            req.flags |= libc::IFF_UP as libc::c_short;
        }
        // SAFETY: both requests read (and SIOCGIFFLAGS writes) one `struct ifreq` through the
        // pointer, which points at `req`: NUL-terminated name, kernel-sized, alive for the call.
        let ret = unsafe {
            libc::ioctl(
                sock.as_raw_fd(),
                request as libc::Ioctl,
                &mut req as *mut IfreqFlags,
            )
        };
        Errno::result(ret)?;
    }
    Ok(())
}

/// pidfd_open(2): for the hooks the child runs, and the root tests that join a running jailed
/// process.
pub fn pidfd_open(pid: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_open takes a pid and flags (0), both integers; on success the returned fd
    // is new and ours alone.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    Errno::result(ret).map(|fd| owned(fd as RawFd))
}

/// _exit(2), for forked children (a hook that could not exec, the test harness's): no atexit
/// handlers, no flushing of buffers that belong to the parent.
pub fn exit_immediately(status: i32) -> ! {
    // SAFETY: _exit takes an integer, touches none of our memory and never returns.
    unsafe { libc::_exit(status) }
}

/// Sets O_NONBLOCK on `fd` (a pipe end of ours).
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    use nix::fcntl::{fcntl, FcntlArg};
    let flags = OFlag::from_bits_truncate(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map(drop)
}
