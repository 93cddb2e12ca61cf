//! Sockets: listening (and telling the person what the other side must
//! type), connecting, socket tuning, and [`Peer`], a connection's state
//! machine on its socket, pumped without blocking until a call is answered.
//! The listener's side of that is in `door` (and, once it is in a call,
//! `busy`); the threads that run a call in `link`, around its one owner,
//! the `driver`; the protocol itself, with no I/O, in `connection`; the
//! sender's view of the link from the peer's reports in `feedback`;
//! finding a listener without its address in
//! `nearby`.

pub mod budget;
pub mod busy;
pub mod connection;
pub mod door;
pub mod driver;
pub mod feedback;
pub mod guessing;
pub mod link;
pub mod nearby;
pub mod reconnect;
pub mod resume;

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use socket2::{Domain, Socket, Type};

use crate::call::{EndReason, Lost, unix_us};
use crate::secure::StaticKey;
use crate::wire::Intro;
use connection::{Connection, Event, PeerInfo, Role};

/// The port `listen` takes, and `connect` assumes for a bare IP address.
pub const DEFAULT_PORT: u16 = 9999;
/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes the kernel may hold unsent before the socket stops being writable
/// (TCP_NOTSENT_LOWAT): enough to keep the link busy, small enough that the
/// sender chooses the next frame when the link has room, not seconds ahead.
#[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
const NOTSENT_LOWAT: u32 = 16 * 1024;
/// Connections queued by the kernel before `accept` (handshakes run
/// concurrently at the door, so this only absorbs bursts).
const BACKLOG: i32 = 128;
/// How often a waiting side looks at its socket and the window.
pub const PUMP_INTERVAL: Duration = Duration::from_millis(5);
/// Bytes read at a time before a call runs: its messages are small (a
/// handshake message is at most 64 KiB and arrives over several reads).
const PUMP_CHUNK: usize = 4096;

/// Who we are to a peer: what we tell it, and the key we prove.
#[derive(Debug, Clone)]
pub struct Us {
    pub intro: Intro,
    pub key: StaticKey,
}

/// A connection's state machine on its socket (non-blocking until the call
/// runs), with the bytes it has produced but the socket not yet taken.
pub struct Peer {
    pub stream: TcpStream,
    pub addr: SocketAddr,
    pub conn: Connection,
    unsent: Vec<u8>,
    written: usize,
}

impl Peer {
    /// Starts the protocol as `role` on a connected `stream`.
    pub fn new(stream: TcpStream, addr: SocketAddr, role: Role, us: &Us) -> Result<Peer> {
        stream.set_nonblocking(true)?;
        tune(&stream)?;
        let conn = Connection::new(role, us.intro.clone(), &us.key, Instant::now(), unix_us())
            .map_err(|e| anyhow!("{e}"))?;
        Ok(Peer {
            stream,
            addr,
            conn,
            unsent: Vec::new(),
            written: 0,
        })
    }

    /// The peer, once the handshake is done.
    pub fn info(&self) -> Option<&PeerInfo> {
        self.conn.peer()
    }

    /// The peer's address as people write it (IPv4 without its IPv6 mapping).
    pub fn address(&self) -> SocketAddr {
        canonical(self.addr)
    }

    /// "code 123 456 - laptop (192.168.1.23:9999)": the code first, then the
    /// (safe) name; "(192.168.1.23:9999)" alone before the handshake.
    pub fn describe(&self) -> String {
        let addr = self.address();
        match self.info() {
            Some(info) => format!("code {} - {} ({addr})", info.code, info.name),
            None => format!("({addr})"),
        }
    }

    /// Moves what is there both ways without blocking, and runs the timers.
    pub fn pump(&mut self, now: Instant) {
        let mut buf = [0u8; PUMP_CHUNK];
        loop {
            self.write_some();
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.conn.handle_closed();
                    break;
                }
                Ok(n) => self
                    .conn
                    .handle_bytes(now, buf.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    self.conn
                        .close(EndReason::ConnectionLost(Lost::Io(e.into())));
                    break;
                }
            }
        }
        self.conn.handle_timeout(now);
        self.write_some();
    }

    /// Writes what the socket takes now.
    fn write_some(&mut self) {
        loop {
            if self.written == self.unsent.len() {
                if !self.conn.has_outgoing() {
                    return;
                }
                self.conn.take_outgoing(&mut self.unsent);
                self.written = 0;
            }
            match self
                .stream
                .write(self.unsent.get(self.written..).unwrap_or_default())
            {
                Ok(0) => return,
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    // Nothing more can go out; the read side reports the end.
                    self.written = self.unsent.len();
                    if self.conn.end_reason().is_none() {
                        self.conn
                            .close(EndReason::ConnectionLost(Lost::Io(e.into())));
                    }
                    return;
                }
            }
        }
    }

    /// True while bytes wait to be written.
    pub fn is_flushing(&self) -> bool {
        self.written < self.unsent.len() || self.conn.has_outgoing()
    }

    /// Pumps until an event that `wanted` picks, or the end of the call.
    /// `keep_waiting` runs between pumps (the window); false hangs up.
    pub fn wait_for(
        &mut self,
        wanted: impl Fn(&Event) -> bool,
        keep_waiting: &mut dyn FnMut() -> bool,
    ) -> Result<Event, EndReason> {
        loop {
            self.pump(Instant::now());
            while let Some(event) = self.conn.poll_event() {
                match event {
                    Event::Ended(reason) => return Err(reason),
                    event if wanted(&event) => return Ok(event),
                    _ => {}
                }
            }
            if !keep_waiting() {
                self.conn.close(EndReason::HungUp);
                self.flush(Instant::now() + PUMP_INTERVAL * 20);
                return Err(EndReason::HungUp);
            }
            std::thread::sleep(PUMP_INTERVAL);
        }
    }

    /// Writes what is pending (an answer, a Bye), until `deadline` at most.
    pub fn flush(&mut self, deadline: Instant) {
        while self.is_flushing() && Instant::now() < deadline {
            self.write_some();
            if self.is_flushing() {
                std::thread::sleep(PUMP_INTERVAL);
            }
        }
    }
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
    socket.listen(BACKLOG)?;
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

/// `addr` as people write it: an IPv4 address in IPv6 clothing
/// (`::ffff:1.2.3.4`) is the IPv4 address; an IPv6 one keeps its
/// interface ("%2").
pub(crate) fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr.ip().to_canonical() {
        ip @ IpAddr::V4(_) => SocketAddr::new(ip, addr.port()),
        IpAddr::V6(_) => addr,
    }
}

/// Connects to the first of `addrs` that answers and starts the handshake
/// as the caller.
pub fn connect(addrs: &[SocketAddr], us: &Us) -> Result<Peer> {
    let (stream, addr) = first_to_answer(addrs)?;
    Peer::new(stream, addr, Role::Caller, us)
}

/// Addresses of one listener tried at once at most (it announces 4).
const MAX_ATTEMPTS: usize = 4;
/// How long each attempt has before the next address is tried beside it
/// (RFC 8305's connection attempt delay).
const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// Happy eyeballs (RFC 8305): the addresses are tried in order, a new one
/// every [`ATTEMPT_DELAY`] while the earlier ones are still out (or at once
/// when one fails), and the first to connect wins; so four dead addresses
/// cost 5 s, not 20. The losers' threads end on their own within
/// [`CONNECT_TIMEOUT`], closing what they connected.
fn first_to_answer(addrs: &[SocketAddr]) -> Result<(TcpStream, SocketAddr)> {
    let addrs = &addrs[..addrs.len().min(MAX_ATTEMPTS)];
    let (tx, rx) = crossbeam_channel::bounded(addrs.len().max(1));
    let mut started = 0;
    let mut failed = 0;
    let mut last_err = None;
    while failed < addrs.len() {
        if let Some(&addr) = addrs.get(started) {
            let tx = tx.clone();
            let attempt = std::thread::Builder::new()
                .name("connect".into())
                .spawn(move || {
                    let _ = tx.send((addr, TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)));
                });
            started += 1;
            if let Err(e) = attempt {
                failed += 1;
                last_err = Some((addr, e));
                continue;
            }
        }
        // Wait for an outcome; with addresses left, no longer than the delay.
        let outcome = if started < addrs.len() {
            rx.recv_timeout(ATTEMPT_DELAY).ok()
        } else {
            rx.recv().ok()
        };
        match outcome {
            Some((addr, Ok(stream))) => return Ok((stream, addr)),
            Some((addr, Err(e))) => {
                failed += 1;
                last_err = Some((addr, e));
            }
            None if started >= addrs.len() => break,
            None => {}
        }
    }
    let Some((addr, e)) = last_err else {
        bail!("no address to call")
    };
    let addr = &addr;
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

/// Low latency over throughput: no Nagle delay, a small unsent queue in the
/// kernel so a frame is picked when the link can take it, and, where the
/// kernel allows, loss repaired in tens of milliseconds.
fn tune(stream: &TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    // The kernel's small unsent queue is part of its view: without it (the
    // diagnostic switch) the call runs as on a system that has none, on the
    // peer's reports alone.
    if feedback::kernel_view_allowed() {
        small_unsent_queue(stream)?;
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fast_loss_recovery(stream);
    Ok(())
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn small_unsent_queue(stream: &TcpStream) -> io::Result<()> {
    socket2::SockRef::from(stream).set_tcp_notsent_lowat(NOTSENT_LOWAT)
}

/// XNU's `TCP_NOTSENT_LOWAT` (netinet/tcp.h; not in `libc` for Apple).
#[cfg(target_vendor = "apple")]
const TCP_NOTSENT_LOWAT: libc::c_int = 0x201;

#[cfg(target_vendor = "apple")]
fn small_unsent_queue(stream: &TcpStream) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let value = libc::c_int::try_from(NOTSENT_LOWAT).unwrap_or(libc::c_int::MAX);
    // SAFETY: an int option, passed by pointer with its size, on an open socket.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            TCP_NOTSENT_LOWAT,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Windows has no unsent low-water mark. What bounds the backlog there is
/// the call's own window: the peer's reports tell which frame bytes it has
/// not yet received, and the sender drops a frame before encoding it while
/// those would take more than 100 ms at the link's pace, so however large
/// the send buffer grows, it never holds more.
#[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
fn small_unsent_queue(_stream: &TcpStream) -> io::Result<()> {
    Ok(())
}

/// Linux's `TCP_RTO_MIN_US` and `TCP_DELACK_MAX_US` (6.15+, not yet in `libc`).
#[cfg(any(target_os = "linux", target_os = "android"))]
const TCP_RTO_MIN_US: libc::c_int = 45;
#[cfg(any(target_os = "linux", target_os = "android"))]
const TCP_DELACK_MAX_US: libc::c_int = 46;
/// Shortest retransmission timeout: a LAN's round trip is milliseconds, so
/// Linux's default 200 ms floor is what a lost tail packet costs otherwise.
pub const RTO_MIN: Duration = Duration::from_millis(20);
/// Longest an ACK may be delayed (the peer's losses are found sooner).
pub const DELACK_MAX: Duration = Duration::from_millis(10);

/// Best effort, per socket and without privileges: a short minimum RTO and
/// delayed ACK where the kernel has the options (Linux 6.15+), and linear
/// rather than exponential backoff while few packets are in flight (the
/// tail of a frame). Older kernels refuse the first two and keep 200 ms.
/// True when the short RTO took.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn fast_loss_recovery(stream: &TcpStream) -> bool {
    use std::os::fd::AsRawFd;
    let set = |option: libc::c_int, value: libc::c_int| {
        // SAFETY: an int option, passed by pointer with its size, on an open socket.
        let rc = unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::IPPROTO_TCP,
                option,
                (&raw const value).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        rc == 0
    };
    let micros = |d: Duration| d.as_micros().try_into().unwrap_or(libc::c_int::MAX);
    let _ = socket2::SockRef::from(stream).set_tcp_thin_linear_timeouts(true);
    set(TCP_DELACK_MAX_US, micros(DELACK_MAX));
    set(TCP_RTO_MIN_US, micros(RTO_MIN))
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn tcp_option(stream: &TcpStream, option: libc::c_int) -> libc::c_int {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: an int option read into an int of the given size.
        let rc = unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                libc::IPPROTO_TCP,
                option,
                (&raw mut value).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0);
        value
    }

    #[test]
    fn a_connection_repairs_loss_in_tens_of_milliseconds_where_the_kernel_can() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        tune(&stream).unwrap();
        assert!(
            socket2::SockRef::from(&stream)
                .tcp_thin_linear_timeouts()
                .unwrap()
        );
        if !fast_loss_recovery(&stream) {
            println!("skipped: this kernel has no TCP_RTO_MIN_US (Linux 6.15+)");
            return;
        }
        // The kernel rounds to its clock tick.
        let rto = tcp_option(&stream, TCP_RTO_MIN_US);
        assert!((20_000..=24_000).contains(&rto), "{rto} us");
        let delack = tcp_option(&stream, TCP_DELACK_MAX_US);
        assert!((10_000..=12_000).contains(&delack), "{delack} us");
    }
}

#[cfg(test)]
mod connecting {
    use super::*;

    fn closed_port() -> SocketAddr {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    }

    #[test]
    fn the_first_address_that_answers_wins_and_dead_ones_cost_no_turn() {
        let live = TcpListener::bind("127.0.0.1:0").unwrap();
        let at = live.local_addr().unwrap();
        let (_, winner) = first_to_answer(&[closed_port(), closed_port(), at]).unwrap();
        assert_eq!(winner, at);
        let (_, first) = first_to_answer(&[at, closed_port()]).unwrap();
        assert_eq!(first, at);
        let none = first_to_answer(&[closed_port(), closed_port()]).unwrap_err();
        assert!(none.to_string().contains("connection refused"), "{none}");
        assert!(first_to_answer(&[]).is_err());
    }
}
