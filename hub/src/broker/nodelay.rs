//! `TCP_NODELAY` on the broker's side of its loopback connections.
//!
//! rumqttd 0.20 does not set `TCP_NODELAY` on the sockets it accepts. Every client of the
//! internal listeners (the front door's loopback legs, the hub's own bus client, the driver
//! adapters) lives in this process, so a small broker → client write (a PUBACK) followed by the
//! next one (an unlock command) waits for the client's delayed ACK: up to 40 ms on Linux, which
//! was the whole p99 of an unlock (`docs/performance.md`, Drivers).
//!
//! The accepted sockets are file descriptors of this very process, so instead of patching the
//! broker we find them — TCP sockets whose local address is one of the internal listener ports
//! and that have a peer (so not the listeners themselves) — and set the option on them. Setting
//! a socket option on a descriptor another component owns is harmless: it changes no state the
//! broker relies on, and if a descriptor is closed and reused between the check and the call, the
//! worst outcome is `TCP_NODELAY` on some other loopback socket.
//!
//! A sweep runs right after the front door connects a loopback leg (retrying until the broker
//! has accepted it) and periodically, which catches the in-process clients that connect without
//! the front door.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::RawFd;
use std::time::Duration;

use super::InternalPorts;

/// How often the background sweep looks for new broker-side sockets.
const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// Set `TCP_NODELAY` on every connected socket of this process whose local address is one of
/// the broker's internal listener ports. Returns how many sockets it changed.
pub fn sweep(ports: &InternalPorts) -> usize {
    sweep_for(ports, None).0
}

/// Like [`sweep`]; also says whether the broker has accepted the connection whose client end
/// is `peer` (so a caller can retry until it has).
fn sweep_for(ports: &InternalPorts, peer: Option<SocketAddr>) -> (usize, bool) {
    let wanted = listener_ports(ports);
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return (0, false);
    };
    let (mut changed, mut found) = (0, false);
    for entry in dir.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RawFd>().ok())
        else {
            continue;
        };
        // A cheap filter first: only descriptors that are sockets.
        match std::fs::read_link(entry.path()) {
            Ok(target) if target.to_string_lossy().starts_with("socket:") => {}
            _ => continue,
        }
        let Some(local) = sock_addr(fd, libc::getsockname) else {
            continue;
        };
        if !local.ip().is_loopback() || !wanted.contains(&local.port()) {
            continue;
        }
        let Some(remote) = sock_addr(fd, libc::getpeername) else {
            continue; // a listener
        };
        found |= peer == Some(remote);
        if !nodelay(fd) && set_nodelay(fd) {
            changed += 1;
        }
    }
    (changed, found)
}

/// After the front door has connected its loopback leg from `client_end`: wait (briefly, off
/// the async runtime) until the broker has accepted it, and give the broker's end
/// `TCP_NODELAY`. The periodic sweep is the fallback if the broker is slow to accept.
pub async fn after_connect(ports: InternalPorts, client_end: SocketAddr) {
    let _ = tokio::task::spawn_blocking(move || {
        for _ in 0..50 {
            if sweep_for(&ports, Some(client_end)).1 {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    })
    .await;
}

/// Sweep now and then every [`SWEEP_EVERY`] on a small thread of its own (the sweep does
/// blocking system calls; it must not sit on the async runtime).
pub fn spawn_periodic(ports: InternalPorts) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("broker-nodelay".into())
        .spawn(move || loop {
            let n = sweep(&ports);
            if n > 0 {
                tracing::trace!(sockets = n, "TCP_NODELAY set on broker connections");
            }
            std::thread::sleep(SWEEP_EVERY);
        })
        .map(|_| ())
}

fn listener_ports(ports: &InternalPorts) -> Vec<u16> {
    [ports.v5].into_iter().map(|a| a.port()).collect()
}

type AddrCall =
    unsafe extern "C" fn(libc::c_int, *mut libc::sockaddr, *mut libc::socklen_t) -> libc::c_int;

/// The socket's own (`getsockname`) or peer (`getpeername`) IPv4 address.
fn sock_addr(fd: RawFd, call: AddrCall) -> Option<SocketAddr> {
    // SAFETY: `addr` is a zeroed sockaddr_in of the size we pass; both calls write at most
    // `len` bytes and fail harmlessly (EBADF, ENOTSOCK, ENOTCONN) on a descriptor that went
    // away or is not connected.
    unsafe {
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let rc = call(fd, (&mut addr as *mut libc::sockaddr_in).cast(), &mut len);
        if rc != 0 || i32::from(addr.sin_family) != libc::AF_INET {
            return None;
        }
        let ip = Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr));
        Some(SocketAddr::from((ip, u16::from_be(addr.sin_port))))
    }
}

fn nodelay(fd: RawFd) -> bool {
    let mut on: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `on` is a c_int and `len` its size.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&mut on as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    rc == 0 && on != 0
}

fn set_nodelay(fd: RawFd) -> bool {
    let on: libc::c_int = 1;
    // SAFETY: `on` is a c_int and we pass its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rc == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    #[test]
    fn sets_nodelay_on_accepted_side_only_of_listener_ports() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let ports = InternalPorts { v5: addr };
        let client = TcpStream::connect(addr).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let bystander = TcpStream::connect(other.local_addr().unwrap()).unwrap();
        let (bystander_accepted, _) = other.accept().unwrap();
        assert!(!nodelay(accepted.as_raw_fd()));

        let client_end = client.local_addr().unwrap();
        assert_eq!(sweep_for(&ports, Some(client_end)), (1, true));
        assert!(
            nodelay(accepted.as_raw_fd()),
            "the broker side gets TCP_NODELAY"
        );
        assert!(
            !nodelay(client.as_raw_fd()),
            "the client side is the client's business"
        );
        assert!(
            !nodelay(bystander_accepted.as_raw_fd()),
            "other ports are left alone"
        );
        assert!(!nodelay(bystander.as_raw_fd()));
        assert!(!nodelay(listener.as_raw_fd()));
        assert_eq!(sweep(&ports), 0, "a second sweep changes nothing");
    }
}
