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

use crate::secure::{self, Handshake, Opener, Sealer, SecureError};
use crate::wire::{self, Finale, FrameDecoder, Hello, Intro, MAX_HELLO_LEN, Message, WireError};

/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a peer has to send its Hello: a slow or silent client cannot
/// hold the listener longer than this.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes the kernel may hold unsent before the socket stops being writable
/// (TCP_NOTSENT_LOWAT): enough to keep the link busy, small enough that the
/// sender chooses the next frame when the link has room, not seconds ahead.
const NOTSENT_LOWAT: u32 = 16 * 1024;

/// Largest encrypted message: the message cap plus Noise's tags.
pub const MAX_SEALED_LEN: u64 = secure::sealed_len(wire::MAX_MESSAGE_LEN as usize) as u64;

/// A peer with whom the encrypted handshake is done.
pub struct Peer {
    pub stream: TcpStream,
    pub addr: SocketAddr,
    pub intro: Intro,
    /// The code both people compare.
    pub sas: String,
    pub sealer: Sealer,
    pub opener: Opener,
    /// Bytes that arrived after the handshake, for the receiver to continue from.
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
    ours: &Intro,
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
        match handshake(stream, addr, ours, false) {
            Ok(peer) => return Ok(Some(peer)),
            Err(e) => eprintln!("refused connection from {addr}: {e:#}"),
        }
    }
}

/// Connects to `target` ("host:port", "1.2.3.4:port", "[::1]:port").
pub fn connect(target: &str, ours: &Intro) -> Result<Peer> {
    let addrs: Vec<SocketAddr> = target
        .to_socket_addrs()
        .with_context(|| {
            format!("cannot resolve {target:?}; expected HOST:PORT, e.g. 192.168.1.23:9999")
        })?
        .collect();
    let mut last_err = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, CONNECT_TIMEOUT) {
            Ok(stream) => return handshake(stream, *addr, ours, true),
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

/// Bytes of one handshake step on the socket: length-prefixed payloads in
/// and out, all before one deadline.
struct HandshakeIo<'a> {
    stream: &'a mut TcpStream,
    decoder: FrameDecoder,
    deadline: Instant,
}

impl HandshakeIo<'_> {
    fn send(&mut self, payload: &[u8]) -> Result<()> {
        let mut out = Vec::with_capacity(payload.len() + wire::LEN_PREFIX);
        wire::frame(payload, &mut out);
        self.stream
            .write_all(&out)
            .context("connection dropped during the handshake")
    }

    /// The next payload from the peer, before the deadline.
    fn recv(&mut self) -> Result<Vec<u8>> {
        read_payload(self.stream, &mut self.decoder, self.deadline, &HANDSHAKE)
    }
}

/// What a side waits for before a call runs, for the error lines.
struct Waiting {
    /// "no {what} within N s".
    what: &'static str,
    timeout: Duration,
    /// When the peer closes before sending anything.
    closed: &'static str,
}

const HANDSHAKE: Waiting = Waiting {
    what: "vidchat handshake",
    timeout: HANDSHAKE_TIMEOUT,
    closed: "closed the connection without a word",
};

/// Reads until one whole payload is in, or `deadline` passes. A length over
/// the cap names the protocol the peer seems to speak, when it is one.
fn read_payload(
    stream: &mut TcpStream,
    decoder: &mut FrameDecoder,
    deadline: Instant,
    waiting: &Waiting,
) -> Result<Vec<u8>> {
    let mut buf = [0u8; 4096];
    let timed_out = || anyhow!("no {} within {} s", waiting.what, waiting.timeout.as_secs());
    loop {
        match decoder.next_payload() {
            Ok(Some(payload)) => return Ok(payload.to_vec()),
            Ok(None) => {}
            Err(e @ WireError::TooLong { .. }) => match wire::known_protocol(decoder.buffered()) {
                Some(what) => bail!(WireError::NotVidchat(what.into())),
                None => bail!(e),
            },
            Err(e) => return Err(e.into()),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf) {
            Ok(0) if decoder.buffered().is_empty() => bail!(waiting.closed),
            Ok(0) => {
                decoder.finish()?;
                bail!("closed the connection during the {}", waiting.what)
            }
            Ok(n) => decoder.extend(buf.get(..n).unwrap_or_default()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timed_out());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(e).context(format!("connection dropped during the {}", waiting.what));
            }
        }
    }
}

/// Exchanges Hellos, runs the Noise handshake (we are the `caller` or the
/// callee) and the intros inside it, all within [`HANDSHAKE_TIMEOUT`].
fn handshake(mut stream: TcpStream, addr: SocketAddr, ours: &Intro, caller: bool) -> Result<Peer> {
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    stream.set_nonblocking(false)?;
    tune(&stream)?;
    stream.set_write_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let nonce = secure::random_nonce()?;
    let hello = Hello::new(if caller {
        secure::commitment(&nonce)
    } else {
        [0; 32]
    });
    let mut our_hello = Vec::new();
    wire::encode_payload(&hello, MAX_HELLO_LEN, &mut our_hello)?;
    let mut io = HandshakeIo {
        stream: &mut stream,
        decoder: FrameDecoder::new(MAX_HELLO_LEN),
        deadline,
    };
    io.send(&our_hello)?;
    let their_hello = io.recv()?;
    let theirs = wire::decode_hello(&their_hello)?;
    let (first, second) = if caller {
        (&our_hello, &their_hello)
    } else {
        (&their_hello, &our_hello)
    };
    let prologue = [b"vidchat prologue v1".as_slice(), first, second].concat();
    let mut noise = Handshake::new(caller, &prologue)?;
    io.decoder.set_max_len(secure::NOISE_MAX as u64);
    let mut payload = Vec::new();
    let (intro, nonce) = if caller {
        io.send(&noise.write(&[])?)?;
        let intro: Intro = wire::decode(&noise.read(&io.recv()?)?, MAX_HELLO_LEN)?;
        wire::encode_payload(
            &Finale {
                nonce,
                intro: ours.clone(),
            },
            MAX_HELLO_LEN,
            &mut payload,
        )?;
        io.send(&noise.write(&payload)?)?;
        (intro, nonce)
    } else {
        noise.read(&io.recv()?)?;
        wire::encode_payload(ours, MAX_HELLO_LEN, &mut payload)?;
        io.send(&noise.write(&payload)?)?;
        let finale: Finale = wire::decode(&noise.read(&io.recv()?)?, MAX_HELLO_LEN)?;
        if secure::commitment(&finale.nonce) != theirs.commitment {
            bail!(SecureError::Commitment);
        }
        (finale.intro, finale.nonce)
    };
    let (hash, sealer, opener) = noise.finish()?;
    let mut decoder = io.decoder;
    decoder.set_max_len(MAX_SEALED_LEN);
    stream.set_read_timeout(None)?;
    stream.set_write_timeout(None)?;
    let sas = secure::sas(&hash, &nonce);
    Ok(Peer {
        stream,
        addr,
        intro,
        sas,
        sealer,
        opener,
        decoder,
    })
}

impl Peer {
    /// Sends one encrypted message (the callee's answer).
    pub fn send(&mut self, msg: &Message) -> Result<()> {
        let mut plain = Vec::new();
        wire::encode_payload(msg, wire::MAX_MESSAGE_LEN, &mut plain)?;
        let mut sealed = Vec::new();
        self.sealer.seal(&plain, &mut sealed)?;
        let mut out = Vec::new();
        wire::frame(&sealed, &mut out);
        self.stream.write_all(&out).context("connection dropped")
    }

    /// Waits up to `timeout` for the callee's answer: true when accepted.
    pub fn await_answer(&mut self, timeout: Duration) -> Result<bool> {
        let waiting = Waiting {
            what: "answer",
            timeout,
            closed: "the peer closed the connection before answering",
        };
        let deadline = Instant::now() + timeout;
        let sealed = read_payload(&mut self.stream, &mut self.decoder, deadline, &waiting)?;
        let mut plain = Vec::new();
        self.opener.open(&sealed, &mut plain)?;
        match wire::decode_message(&plain)? {
            Message::Answer { accepted } => Ok(accepted),
            _ => bail!("peer did not answer the call"),
        }
    }
}
