//! Connections: listening (and telling the person what the other side must
//! type), connecting, socket tuning, and the Hello exchange that turns a
//! TCP connection into a call. The threads that run a call live in `link`.

pub mod link;
pub mod rate;

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use socket2::{Domain, Socket, Type};

use crate::wire::{self, FrameDecoder, Hello, MAX_HELLO_LEN, WireError};

/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a peer has to send its Hello: a slow or silent client cannot
/// hold the listener longer than this.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes the kernel may hold unsent before the socket stops being writable
/// (TCP_NOTSENT_LOWAT): enough to keep the link busy, small enough that the
/// sender chooses the next frame when the link has room, not seconds ahead.
const NOTSENT_LOWAT: u32 = 16 * 1024;

/// A peer that said Hello.
pub struct Peer {
    pub stream: TcpStream,
    pub addr: SocketAddr,
    pub hello: Hello,
    /// Bytes that arrived after the Hello, for the receiver to continue from.
    pub decoder: FrameDecoder,
}

/// Listens on `bind` (all interfaces, IPv6 and IPv4, when None).
pub fn bind(bind: Option<IpAddr>, port: u16) -> Result<TcpListener> {
    let addr = SocketAddr::new(bind.unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED)), port);
    let listener = bind_socket(addr).or_else(|e| match (bind, e.kind()) {
        (_, io::ErrorKind::AddrInUse | io::ErrorKind::PermissionDenied) | (Some(_), _) => Err(e),
        // No IPv6 on this machine: IPv4 only.
        (None, _) => bind_socket(SocketAddr::new(IpAddr::from([0, 0, 0, 0]), port)),
    });
    listener.map_err(|e| match e.kind() {
        io::ErrorKind::AddrInUse => {
            anyhow!("port {port} is already in use (another vidchat listening?); choose another with --port")
        }
        io::ErrorKind::AddrNotAvailable => anyhow!("{addr} is not an address of this machine (check --bind)"),
        io::ErrorKind::PermissionDenied => anyhow!("not allowed to listen on port {port}; use a port above 1023"),
        _ => anyhow!("cannot listen on {addr}: {e}"),
    })
}

fn bind_socket(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4)?;
    Ok(socket.into())
}

/// The lines the other person can type to reach this listener.
pub fn connect_hints(listener: &TcpListener) -> Vec<String> {
    let Ok(local) = listener.local_addr() else {
        return Vec::new();
    };
    let port = local.port();
    let addrs: Vec<IpAddr> = if local.ip().is_unspecified() {
        if_addrs::get_if_addrs()
            .unwrap_or_default()
            .into_iter()
            .map(|i| i.ip())
            .filter(|ip| {
                !ip.is_loopback() && !is_link_local_v6(ip) && (local.is_ipv6() || ip.is_ipv4())
            })
            .collect()
    } else {
        vec![local.ip()]
    };
    addrs
        .into_iter()
        .map(|ip| format!("vidchat connect {}", SocketAddr::new(ip, port)))
        .collect()
}

fn is_link_local_v6(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
}

/// Waits for a connection that completes the handshake. Connections that do
/// not (port scanners, browsers, other programs) get one line on stderr and
/// listening goes on. `keep_waiting` is called about every 50 ms while no
/// one connects; returning false stops waiting.
pub fn accept_call(
    listener: &TcpListener,
    ours: &Hello,
    keep_waiting: &mut dyn FnMut() -> bool,
) -> Result<Option<Peer>> {
    listener.set_nonblocking(true)?;
    loop {
        let (stream, addr) = match listener.accept() {
            Ok(conn) => conn,
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                if !keep_waiting() {
                    return Ok(None);
                }
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(e) => return Err(e).context("cannot accept connections"),
        };
        match handshake(stream, addr, ours) {
            Ok(peer) => return Ok(Some(peer)),
            Err(e) => eprintln!("refused connection from {addr}: {e:#}"),
        }
    }
}

/// Connects to `target` ("host:port", "1.2.3.4:port", "[::1]:port").
pub fn connect(target: &str, ours: &Hello) -> Result<Peer> {
    let addrs: Vec<SocketAddr> = target
        .to_socket_addrs()
        .with_context(|| {
            format!("cannot resolve {target:?}; expected HOST:PORT, e.g. 192.168.1.23:9999")
        })?
        .collect();
    let mut last_err = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, CONNECT_TIMEOUT) {
            Ok(stream) => return handshake(stream, *addr, ours),
            Err(e) => last_err = Some((addr, e)),
        }
    }
    let Some((addr, e)) = last_err else {
        bail!("{target} resolves to no address")
    };
    Err(match e.kind() {
        io::ErrorKind::ConnectionRefused => anyhow!(
            "nobody is listening at {addr} (connection refused): start `vidchat listen` there, and check the port"
        ),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => anyhow!(
            "no answer from {addr} within {} s: check the address, that both machines share a network, and that a firewall lets the port in",
            CONNECT_TIMEOUT.as_secs()
        ),
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
            anyhow!("{addr} is unreachable from here ({e}): check the address and your network")
        }
        _ => anyhow!("cannot connect to {addr}: {e}"),
    })
}

/// Low latency over throughput: no Nagle delay, and a small unsent queue in
/// the kernel so a frame is picked when the link can take it.
fn tune(stream: &TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    socket2::SockRef::from(stream).set_tcp_notsent_lowat(NOTSENT_LOWAT)?;
    Ok(())
}

/// Sends our Hello and reads the peer's, within [`HANDSHAKE_TIMEOUT`].
fn handshake(mut stream: TcpStream, addr: SocketAddr, ours: &Hello) -> Result<Peer> {
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    stream.set_nonblocking(false)?;
    tune(&stream)?;
    let mut out = Vec::new();
    wire::encode(ours, MAX_HELLO_LEN, &mut out)?;
    stream.set_write_timeout(Some(HANDSHAKE_TIMEOUT))?;
    stream
        .write_all(&out)
        .context("connection dropped during the handshake")?;
    let mut decoder = FrameDecoder::new(MAX_HELLO_LEN);
    let mut buf = [0u8; 4096];
    let hello = loop {
        let hello = match decoder.next_payload() {
            Ok(Some(payload)) => Some(wire::decode_hello(payload)?),
            Ok(None) => None,
            Err(WireError::TooLong { .. }) => {
                return Err(
                    WireError::NotVidchat(wire::describe_foreign(decoder.buffered())).into(),
                );
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(hello) = hello {
            break hello;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("no vidchat hello within {} s", HANDSHAKE_TIMEOUT.as_secs());
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf) {
            Ok(0) if decoder.buffered().is_empty() => bail!("closed the connection without a word"),
            Ok(0) => bail!(WireError::NotVidchat(wire::describe_foreign(
                decoder.buffered()
            ))),
            Ok(n) => decoder.extend(buf.get(..n).unwrap_or_default()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                bail!("no vidchat hello within {} s", HANDSHAKE_TIMEOUT.as_secs())
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("connection dropped during the handshake"),
        }
    };
    stream.set_read_timeout(None)?;
    stream.set_write_timeout(None)?;
    decoder.set_max_len(wire::MAX_MESSAGE_LEN);
    Ok(Peer {
        stream,
        addr,
        hello,
        decoder,
    })
}
