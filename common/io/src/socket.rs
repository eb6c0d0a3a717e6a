//! UDP sockets with buffers sized for media.

use std::net::SocketAddr;
use tokio::net::UdpSocket;

/// Receive and send buffer size requested. The default receive buffer holds fewer than a
/// hundred 1316-byte datagrams, so a relay sharing its core with a busy process would drop.
pub const SOCKET_BUFFER: usize = 4 << 20;

/// Binds a non-blocking UDP socket on `addr` with large buffers.
pub fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let domain = socket2::Domain::for_address(addr);
    let s = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    // Best effort: the kernel caps these at net.core.{r,w}mem_max.
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}
