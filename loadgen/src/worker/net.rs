//! Opening client sockets: non-blocking connect, TCP_NODELAY, and the source-address spread.
//!
//! One source address has about 28,000 ephemeral ports (`ip_local_port_range`), and every
//! connection to the same broker address needs its own. Binding connection `i` to
//! `127.0.0.(1 + i % K)` multiplies that by K on loopback, where every 127/8 address is ours.
//! `IP_BIND_ADDRESS_NO_PORT` defers the port to `connect`, so a port is unique per
//! (source, destination) pair. For a target that is not IPv4 loopback no source is bound.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, Socket, Type};

use crate::sys;

/// The source address for the `global`-th connection of a run, if any is to be bound.
pub(crate) fn source_ip(target: SocketAddr, global: usize, spread: u8) -> Option<IpAddr> {
    match target.ip() {
        IpAddr::V4(ip) if ip.is_loopback() && spread > 0 => {
            let last = 1 + (global % usize::from(spread)) as u8;
            Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        }
        _ => None,
    }
}

/// Starts a non-blocking connect. The connection is usable once the socket turns writable
/// with no pending error.
pub(crate) fn connect(
    target: SocketAddr,
    source: Option<IpAddr>,
) -> io::Result<mio::net::TcpStream> {
    let socket = Socket::new(
        Domain::for_address(target),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_nonblocking(true)?;
    // We batch our writes per loop turn ourselves; Nagle would only add delay.
    socket.set_nodelay(true)?;
    if let Some(ip) = source {
        sys::set_bind_address_no_port(socket.as_raw_fd())?;
        socket.bind(&SocketAddr::new(ip, 0).into())?;
    }
    match socket.connect(&target.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(mio::net::TcpStream::from_std(std::net::TcpStream::from(
        socket,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_over_loopback_only() {
        let local: SocketAddr = "127.0.0.1:1883".parse().expect("addr");
        let got: Vec<_> = (0..5).map(|i| source_ip(local, i, 3)).collect();
        let want = [1, 2, 3, 1, 2].map(|d| Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, d))));
        assert_eq!(got, want);
        assert_eq!(source_ip(local, 7, 0), None);
        assert_eq!(source_ip("[::1]:1883".parse().expect("addr"), 0, 16), None);
        assert_eq!(
            source_ip("192.0.2.1:1883".parse().expect("addr"), 0, 16),
            None
        );
    }

    #[test]
    fn connects_from_a_spread_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
        let target = listener.local_addr().expect("addr");
        let source = source_ip(target, 4, 16);
        let _stream = connect(target, source).expect("connect starts");
        let (_, peer) = listener.accept().expect("accepted");
        assert_eq!(Some(peer.ip()), source);
    }
}
