//! The command line in two steps: clap parses raw flags, then
//! [`Command::into_plan`] checks them and builds what to run, a [`Plan`]
//! with the config the rest of the program uses (nothing past this file
//! sees a clap type or a raw flag). Every value they
//! refuse is a [`UsageError`], which `main` turns into exit status 2, as
//! clap does for the flags it refuses itself.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::capture::{CameraChoice, CaptureConfig, SourceKind};
use crate::codec::CodecChoice;
use crate::net::DEFAULT_PORT;
use crate::session::{CallOptions, CallTarget, ListenOptions};
use crate::wire::{MAX_DIMENSION, safe_name};

const EXAMPLES: &str = "\
Examples, two laptops on the same Wi-Fi:
  laptop A$ vidchat listen
  laptop B$ vidchat connect                     (finds A on the network)
  laptop B$ vidchat connect laptop-a            (A by the name it announces)
  laptop B$ vidchat connect 192.168.1.23:9999   (where multicast does not pass)

  vidchat peers                     who is listening nearby
  vidchat peers --known             the peers confirmed in earlier calls
  vidchat loopback                  a call to yourself: check camera and window
  vidchat loopback --source test    the same with a test pattern
  vidchat devices                   list cameras and their formats

The code: both sides show the same six-digit code. Read it to each other;
if the two screens differ, hang up: someone is between you. The listener
accepts the call, then the caller confirms the code (y): no camera picture
leaves either side before its own person said yes. After that call, each
side knows the other's key: next time it shows 'known: NAME' and the caller
need not confirm again; the same name with another key is a loud warning.

In the window:
  Esc / q   hang up            v   pause/resume my video
  p         self-view on/off   m   mirror the self-view
  s         stats and code     h   key help
  Enter     type a line (or just start typing); Enter sends, Esc closes it
  l         the last 20 lines said
On a terminal, a line typed during a call is sent too; the other side's
lines are printed with the time (--chat-log PATH keeps them all as JSON).
Without a window (--no-window): Ctrl-C hangs up (a second one quits at once).

Exit status: 0 hung up (either side), 1 the call did not start or was not
taken, 2 bad usage, 3 the call failed after it started, 130 a second Ctrl-C.";

/// Two-peer video chat for the command line.
#[derive(Debug, Parser)]
#[command(version, about, after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Wait for one call, and print what the other side must type.
    Listen {
        /// TCP port to listen on (0 picks a free one).
        #[arg(long, default_value_t = DEFAULT_PORT)]
        port: u16,
        /// Address to listen on [default: all addresses of this machine].
        #[arg(long)]
        bind: Option<IpAddr>,
        /// Take calls without asking (asked on a terminal otherwise).
        #[arg(long)]
        yes: bool,
        /// Do not announce this listener on the local network (multicast DNS).
        #[arg(long)]
        no_announce: bool,
        #[command(flatten)]
        call: CallArgs,
    },
    /// Call a listening vidchat: found on the local network, by name, or at HOST:PORT.
    Connect {
        /// Nothing: the listener found nearby. NAME: the listener of that name
        /// (see `vidchat peers`), else the host of that name. Or where it
        /// listens: 192.168.1.23:9999, laptop.local:9999, [fe80::1%2]:9999,
        /// or a host or IP for port 9999.
        target: Option<String>,
        /// Port to call when TARGET gives none [default: 9999].
        #[arg(long)]
        port: Option<u16>,
        /// Send your video without asking you to confirm the code first
        /// (for scripts; asked in the window or on the terminal otherwise).
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        call: CallArgs,
    },
    /// Call yourself over 127.0.0.1 through the whole path (test pattern if no camera).
    Loopback {
        #[command(flatten)]
        call: CallArgs,
    },
    /// List the vidchat listeners on the local network, and exit.
    Peers {
        /// List the peers confirmed in earlier calls instead.
        #[arg(long, conflicts_with = "forget")]
        known: bool,
        /// Forget the known peer of this name: its next call is a stranger's,
        /// whose code is compared again (after it got a new key, say).
        #[arg(long, value_name = "NAME")]
        forget: Option<String>,
    },
    /// List cameras and the formats each offers.
    Devices,
}

/// What the command line asks for, checked: nothing raw goes further.
#[derive(Debug)]
pub enum Plan {
    Listen(ListenOptions, CallOptions),
    /// Whom to call, whether `--yes` was given, and the call's options.
    Connect(CallTarget, bool, CallOptions),
    Loopback(CallOptions),
    /// The peers nearby.
    Peers,
    /// The known peers, forgetting one if named.
    KnownPeers(Option<String>),
    Devices,
}

impl Command {
    /// Checks every value and builds what to run.
    pub fn into_plan(self) -> Result<Plan, UsageError> {
        Ok(match self {
            Command::Listen {
                port,
                bind,
                yes,
                no_announce,
                call,
            } => {
                let how = ListenOptions {
                    bind,
                    port,
                    yes,
                    announce: !no_announce,
                };
                Plan::Listen(how, call.into_options()?)
            }
            Command::Connect {
                target,
                port,
                yes,
                call,
            } => Plan::Connect(
                call_target(target.as_deref(), port)?,
                yes,
                call.into_options()?,
            ),
            Command::Loopback { call } => Plan::Loopback(call.into_options()?),
            Command::Peers {
                known: false,
                forget: None,
            } => Plan::Peers,
            Command::Peers { forget, .. } => Plan::KnownPeers(forget),
            Command::Devices => Plan::Devices,
        })
    }
}

/// Options of every call.
#[derive(Debug, Args)]
pub struct CallArgs {
    /// The name the other side sees [default: this machine's name].
    #[arg(long)]
    name: Option<String>,
    /// Camera to use: its number, its device (/dev/video0) or part of its
    /// name, as `vidchat devices` lists them [default: the first].
    #[arg(long, value_name = "CAMERA")]
    camera: Option<String>,
    /// Video size to send, WIDTHxHEIGHT.
    #[arg(long, default_value = "640x480")]
    size: String,
    /// Frames per second to send.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Video codec: auto (H.264 when both sides have it), h264, or mjpeg.
    #[arg(long, default_value = "auto")]
    codec: String,
    /// What to send: camera, test (a moving test pattern), or a .y4m file.
    #[arg(long, default_value = "camera")]
    source: String,
    /// No window: decode and count frames, print a status line each second.
    #[arg(long)]
    no_window: bool,
    /// Hang up by itself after this many seconds.
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// Write one JSON line per frame received to this file (live figures:
    /// the s key in the window, or the status line without one).
    #[arg(long, value_name = "PATH")]
    stats: Option<PathBuf>,
    /// Keep the typed text: one JSON line appended per line sent or
    /// received (`at_us`, `from`, `who`, `text` as sent).
    #[arg(long, value_name = "PATH")]
    chat_log: Option<PathBuf>,
    /// Record the peer's video as the window shows it to this .y4m file
    /// (at the largest size it announced; for measuring quality).
    #[arg(long, value_name = "FILE.y4m")]
    record: Option<PathBuf>,
}

/// A value the command line gives that vidchat cannot use: bad usage, exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(String);

macro_rules! usage {
    ($($arg:tt)*) => {
        return Err(UsageError(format!($($arg)*)))
    };
}

fn parse_size(size: &str) -> Result<(u32, u32), UsageError> {
    let parsed = size
        .split_once(['x', 'X'])
        .and_then(|(w, h)| Some((w.trim().parse::<u32>().ok()?, h.trim().parse::<u32>().ok()?)));
    match parsed {
        Some((w, h))
            if !(16..=MAX_DIMENSION).contains(&w) || !(16..=MAX_DIMENSION).contains(&h) =>
        {
            usage!("--size {size}: each side must be 16..={MAX_DIMENSION} pixels")
        }
        Some((w, h)) if w % 2 == 1 || h % 2 == 1 => usage!(
            "--size {size}: each side must be even (video is 4:2:0); try {}x{}",
            w & !1,
            h & !1
        ),
        Some((w, h)) => Ok((w, h)),
        None => usage!("--size {size}: expected WIDTHxHEIGHT, e.g. 1280x720"),
    }
}

impl CallArgs {
    /// Checks the flags and builds the call's options.
    fn into_options(self) -> Result<CallOptions, UsageError> {
        let (width, height) = parse_size(&self.size)?;
        if !(1..=120).contains(&self.fps) {
            usage!("--fps {}: must be 1..=120", self.fps);
        }
        let kind = match (self.source.as_str(), self.camera) {
            ("camera", None) => SourceKind::Camera(CameraChoice::First),
            ("camera", Some(spec)) if spec.trim().is_empty() => {
                usage!("--camera: expected a number, a device or part of a name")
            }
            ("camera", Some(spec)) => SourceKind::Camera(CameraChoice::parse(spec.trim())),
            (_, Some(_)) => usage!("--camera is for --source camera"),
            ("test", None) => SourceKind::TestPattern,
            (path, None) if path.ends_with(".y4m") => SourceKind::Y4m(PathBuf::from(path)),
            (other, None) => usage!("--source {other}: expected camera, test, or a .y4m file"),
        };
        let codec = match self.codec.as_str() {
            "auto" | "h264" => CodecChoice::H264,
            "mjpeg" | "jpeg" => CodecChoice::Mjpeg,
            other => usage!("--codec {other}: expected auto, h264 or mjpeg"),
        };
        let duration = match self.duration {
            None => None,
            Some(secs) if secs.is_finite() && secs > 0.0 && secs < 1e9 => {
                Some(Duration::from_secs_f64(secs))
            }
            Some(secs) => usage!("--duration {secs}: must be a positive number of seconds"),
        };
        let name = match self.name {
            Some(name) => name,
            None => gethostname::gethostname().to_string_lossy().into_owned(),
        };
        Ok(CallOptions {
            name: safe_name(&name),
            capture: CaptureConfig {
                kind,
                width,
                height,
                fps: self.fps,
            },
            codec,
            window: !self.no_window,
            duration,
            stats: self.stats,
            chat_log: self.chat_log,
            record: match self.record {
                Some(path) if path.extension().is_none_or(|e| e != "y4m") => {
                    usage!("--record {}: expected a .y4m file", path.display())
                }
                record => record,
            },
        })
    }
}

/// Whom `vidchat connect [TARGET] [--port PORT]` calls, checked: a typo in
/// an address is bad usage here, not a search of the network.
fn call_target(target: Option<&str>, port: Option<u16>) -> Result<CallTarget, UsageError> {
    if port == Some(0) {
        usage!("--port 0: a listener's port is 1..=65535");
    }
    let Some(target) = target.map(str::trim) else {
        if port.is_some() {
            usage!("--port needs a host to call (a listener found nearby announces its own port)");
        }
        return Ok(CallTarget::Nearby);
    };
    let with_port = |explicit: Option<u16>| -> Result<u16, UsageError> {
        match (explicit, port) {
            (Some(_), Some(_)) => usage!("{target}: the port is given twice (here and in --port)"),
            (Some(p), None) | (None, Some(p)) => Ok(p),
            (None, None) => Ok(DEFAULT_PORT),
        }
    };
    if let Some(rest) = target.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or_else(|| UsageError(format!("{target}: a ']' is missing")))?;
        let ip: Ipv6Addr = inside
            .split('%')
            .next()
            .and_then(|ip| ip.parse().ok())
            .ok_or_else(|| UsageError(format!("{target}: {inside} is not an IPv6 address")))?;
        let explicit = match after.strip_prefix(':') {
            None if after.is_empty() => None,
            None => usage!("{target}: a ':' goes between the ']' and the port"),
            Some(port) => Some(port_number(target, port)?),
        };
        let port = with_port(explicit)?;
        return match inside.contains('%') {
            // Let the system read the interface ("%2", "%eth0").
            true => Ok(CallTarget::Host {
                host: inside.to_string(),
                port,
            }),
            false => Ok(CallTarget::Address {
                addr: SocketAddr::new(ip.into(), port),
                hint: None,
            }),
        };
    }
    if let Ok(ip) = target.parse::<IpAddr>() {
        return Ok(CallTarget::Address {
            addr: SocketAddr::new(ip, with_port(None)?),
            hint: bracket_hint(target),
        });
    }
    if let Some((host, tail)) = target.rsplit_once(':') {
        if host.contains(':') {
            usage!("{target}: an IPv6 address with a port goes in brackets, e.g. [{host}]:{tail}");
        }
        let explicit = port_number(target, tail)?;
        if let Ok(ip) = host.parse::<Ipv4Addr>() {
            return Ok(CallTarget::Address {
                addr: SocketAddr::new(ip.into(), with_port(Some(explicit))?),
                hint: None,
            });
        }
        check_host(host)?;
        return Ok(CallTarget::Host {
            host: host.to_string(),
            port: with_port(Some(explicit))?,
        });
    }
    check_host(target)?;
    Ok(CallTarget::Name {
        name: target.to_string(),
        port: with_port(None)?,
    })
}

fn port_number(target: &str, port: &str) -> Result<u16, UsageError> {
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => usage!("{target}: the port must be a number 1..=65535, not {port:?}"),
    }
}

/// A host name or IPv4 address as typed, or what was probably meant.
fn check_host(host: &str) -> Result<(), UsageError> {
    if host.is_empty() {
        usage!("the address has no host before its ':'");
    }
    let numbers: Vec<&str> = host.split('.').collect();
    if numbers
        .iter()
        .all(|n| n.chars().all(|c| c.is_ascii_digit()))
    {
        if let [a, b, c, d, port] = numbers.as_slice()
            && let Ok(ip) = format!("{a}.{b}.{c}.{d}").parse::<Ipv4Addr>()
        {
            usage!("{host} is not an address: did you mean {ip}:{port}?");
        }
        usage!("{host} is not an IP address (an IPv4 address is four numbers, e.g. 192.168.1.23)");
    }
    let bad = host
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')));
    if let Some(c) = bad {
        usage!("{host:?} is not a host name or address ({c:?} cannot be in one)");
    }
    Ok(())
}

/// For an IPv6 address typed without brackets whose last group may have
/// been meant as the port ("::1:9998"), how to write that.
fn bracket_hint(target: &str) -> Option<String> {
    let (ip, tail) = target.rsplit_once(':')?;
    let port: u16 = tail.parse().ok().filter(|p| *p > 0)?;
    ip.parse::<Ipv6Addr>().ok()?;
    Some(format!("if {port} is the port, write [{ip}]:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1280x720").unwrap(), (1280, 720));
        assert_eq!(parse_size("640X480").unwrap(), (640, 480));
        assert!(parse_size("15x480").is_err());
        assert!(parse_size("4097x480").is_err());
        assert!(parse_size("640").is_err());
        assert!(parse_size("x").is_err());
        let odd = parse_size("641x480").unwrap_err().to_string();
        assert!(odd.contains("even") && odd.contains("640x480"), "{odd}");
    }

    fn target(t: &str) -> CallTarget {
        call_target(Some(t), None).unwrap_or_else(|e| panic!("{t}: {e}"))
    }

    fn refused(t: Option<&str>, port: Option<u16>) -> String {
        match call_target(t, port) {
            Ok(ok) => panic!("{t:?} {port:?} was taken as {ok:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn names_and_host_names_are_called_at_port_9999_or_the_one_given() {
        let name = |name: &str, port| CallTarget::Name {
            name: name.into(),
            port,
        };
        assert_eq!(target("localhost"), name("localhost", 9999));
        assert_eq!(target("vm.local"), name("vm.local", 9999));
        assert_eq!(
            call_target(Some("laptop-a"), Some(1234)).unwrap(),
            name("laptop-a", 1234)
        );
        assert_eq!(
            target("laptop.local:9998"),
            CallTarget::Host {
                host: "laptop.local".into(),
                port: 9998
            }
        );
        assert_eq!(call_target(None, None).unwrap(), CallTarget::Nearby);
    }

    #[test]
    fn addresses_are_called_as_they_are() {
        let at = |addr: &str| CallTarget::Address {
            addr: addr.parse().unwrap(),
            hint: None,
        };
        assert_eq!(target("192.168.1.23"), at("192.168.1.23:9999"));
        assert_eq!(target("192.168.1.23:9998"), at("192.168.1.23:9998"));
        assert_eq!(target("[::1]:9998"), at("[::1]:9998"));
        assert_eq!(target("[::1]"), at("[::1]:9999"));
        assert_eq!(
            call_target(Some("10.0.0.1"), Some(4000)).unwrap(),
            at("10.0.0.1:4000")
        );
        assert!(matches!(
            target("[fe80::1%2]:9999"),
            CallTarget::Host { host, port: 9999 } if host == "fe80::1%2"
        ));
    }

    #[test]
    fn an_unbracketed_ipv6_address_with_a_port_gets_the_bracket_hint() {
        let CallTarget::Address { addr, hint } = target("::1:9998") else {
            panic!("not an address");
        };
        assert_eq!(addr, "[::1:9998]:9999".parse().unwrap());
        assert_eq!(
            hint.as_deref(),
            Some("if 9998 is the port, write [::1]:9998")
        );
        let scoped = refused(Some("fe80::1%eth0:9999"), None);
        assert!(scoped.contains("[fe80::1%eth0]:9999"), "{scoped}");
    }

    #[test]
    fn address_typos_are_bad_usage_with_what_was_meant() {
        let dot = refused(Some("127.0.0.1.9999"), None);
        assert!(dot.contains("did you mean 127.0.0.1:9999?"), "{dot}");
        assert!(refused(Some("192.168.1"), None).contains("not an IP address"));
        assert!(refused(Some("host:99999"), None).contains("1..=65535"));
        assert!(refused(Some("host:"), None).contains("1..=65535"));
        assert!(refused(Some(":9999"), None).contains("no host"));
        assert!(refused(Some("a b"), None).contains("not a host name"));
        assert!(refused(Some("host:9999"), Some(9999)).contains("twice"));
        assert!(refused(None, Some(9999)).contains("--port needs a host"));
        assert!(refused(Some("host"), Some(0)).contains("--port 0"));
        assert!(refused(Some("[::1]9999"), None).contains("':'"));
    }

    #[test]
    fn cameras_are_named_by_number_device_or_name() {
        assert_eq!(CameraChoice::parse("2"), CameraChoice::Index(2));
        assert_eq!(
            CameraChoice::parse("/dev/video0"),
            CameraChoice::Path("/dev/video0".into())
        );
        assert_eq!(
            CameraChoice::parse("FaceTime"),
            CameraChoice::Name("FaceTime".into())
        );
    }
}
