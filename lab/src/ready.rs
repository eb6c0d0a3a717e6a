//! Readiness without protocol knowledge: a process is up once its socket is bound, which the
//! kernel shows in `/proc/net/{udp,udp6,tcp,tcp6}`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Whether some socket of this network namespace is bound to `addr` (UDP in any state, TCP
/// listening), either exactly or as the wildcard address of the same family on the same port.
pub fn is_bound(addr: SocketAddr) -> bool {
    bound_in("/proc/net", addr)
}

/// Whether some socket of the network namespace of process `pid` is bound to `addr` (as
/// [`is_bound`]): for processes in other namespaces, whose sockets `/proc/net` does not show.
pub fn is_bound_in_ns_of(pid: u32, addr: SocketAddr) -> bool {
    bound_in(&format!("/proc/{pid}/net"), addr)
}

fn bound_in(dir: &str, addr: SocketAddr) -> bool {
    let tables: [(&str, bool); 4] = [
        ("udp", false),
        ("udp6", false),
        ("tcp", true),
        ("tcp6", true),
    ];
    tables.iter().any(|(table, listening_only)| {
        std::fs::read_to_string(format!("{dir}/{table}"))
            .is_ok_and(|text| bound_addrs(&text, *listening_only).any(|bound| covers(bound, addr)))
    })
}

/// Whether a socket bound to `bound` receives what is sent to `addr`.
fn covers(bound: SocketAddr, addr: SocketAddr) -> bool {
    bound.port() == addr.port()
        && (bound.ip() == addr.ip()
            || bound.ip().is_unspecified() && bound.is_ipv4() == addr.is_ipv4()
            || bound.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED))
}

/// Local addresses in the text of a `/proc/net/{udp,tcp}[6]` table; with `listening_only`,
/// only sockets in state LISTEN (`0A`).
fn bound_addrs(text: &str, listening_only: bool) -> impl Iterator<Item = SocketAddr> + '_ {
    text.lines().skip(1).filter_map(move |line| {
        let mut fields = line.split_whitespace();
        let local = fields.nth(1)?;
        let state = fields.nth(1)?;
        if listening_only && state != "0A" {
            return None;
        }
        parse_hex_addr(local)
    })
}

/// Parses `0100007F:1B58` (IPv4) or 32 hex digits `:PORT` (IPv6). The kernel prints each
/// 32-bit word of the address as a native-endian integer.
fn parse_hex_addr(text: &str) -> Option<SocketAddr> {
    let (ip_hex, port_hex) = text.split_once(':')?;
    let port = u16::from_str_radix(port_hex, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let hex = ip_hex.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
    };
    let ip = match ip_hex.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut octets = [0u8; 16];
            for i in 0..4 {
                octets[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_endian = "little")]
    #[test]
    fn proc_net_tables_parse_on_little_endian() {
        let udp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
                   \x20 12: 0300007F:1B58 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0000 0\n\
                   \x20 13: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0000 0\n";
        let addrs: Vec<SocketAddr> = bound_addrs(udp, false).collect();
        assert_eq!(
            addrs,
            vec![
                "127.0.0.3:7000".parse().unwrap(),
                "0.0.0.0:53".parse().unwrap()
            ]
        );
        let tcp6 = "  sl  local_address                         remote_address                        st\n\
                    \x20 0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A\n\
                    \x20 1: 00000000000000000000000001000000:1F91 00000000000000000000000001000000:D431 01\n";
        let addrs: Vec<SocketAddr> = bound_addrs(tcp6, true).collect();
        assert_eq!(addrs, vec!["[::1]:8080".parse().unwrap()]);
    }

    #[test]
    fn wildcard_binds_cover_specific_addresses_of_their_family() {
        let a = |s: &str| -> SocketAddr { s.parse().unwrap() };
        assert!(covers(a("127.0.0.3:7000"), a("127.0.0.3:7000")));
        assert!(covers(a("0.0.0.0:7000"), a("127.0.0.3:7000")));
        assert!(covers(a("[::]:7000"), a("127.0.0.3:7000")));
        assert!(!covers(a("127.0.0.2:7000"), a("127.0.0.3:7000")));
        assert!(!covers(a("127.0.0.3:7001"), a("127.0.0.3:7000")));
        assert!(!covers(a("0.0.0.0:7000"), a("[::1]:7000")));
    }

    #[test]
    fn a_socket_bound_here_is_seen() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        assert!(is_bound(addr));
        drop(socket);
        // Our socket is gone from the table. (`is_bound` itself may still be true if another
        // process happens to hold a wildcard socket on the same ephemeral port.)
        let table = std::fs::read_to_string("/proc/net/udp").unwrap();
        assert!(!bound_addrs(&table, false).any(|bound| bound == addr));
    }
}
