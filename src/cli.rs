//! The command line in two steps: clap parses raw flags, then `into_options`
//! checks them and builds the config the rest of the program uses (nothing
//! past this file sees a clap type).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand};

use crate::capture::{CaptureConfig, SourceKind};
use crate::codec::CodecChoice;
use crate::net::DEFAULT_PORT;
use crate::session::CallOptions;
use crate::wire::{MAX_DIMENSION, safe_name};

const EXAMPLES: &str = "\
Examples, two laptops on the same Wi-Fi:
  laptop A$ vidchat listen
  laptop B$ vidchat connect                     (finds A on the network)
  laptop B$ vidchat connect 192.168.1.23:9999   (where multicast does not pass)

  vidchat peers                     who is listening nearby
  vidchat loopback                  a call to yourself: check camera and window
  vidchat loopback --source test    the same with a test pattern
  vidchat devices                   list cameras and their formats

In a call: Esc or q hangs up.";

/// Two-peer video chat for the command line.
#[derive(Debug, Parser)]
#[command(version, about, after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Wait for a call, and print what the other side must type.
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
        /// (see `vidchat peers`). Or where it listens: 192.168.1.23:9999,
        /// laptop.local:9999, [fe80::1%2]:9999, or an IP for port 9999.
        target: Option<String>,
        #[command(flatten)]
        call: CallArgs,
    },
    /// Call yourself over 127.0.0.1 through the whole path (test pattern if no camera).
    Loopback {
        #[command(flatten)]
        call: CallArgs,
    },
    /// List the vidchat listeners on the local network, and exit.
    Peers,
    /// List cameras and the formats each offers.
    Devices,
}

/// Options of every call.
#[derive(Debug, Args)]
pub struct CallArgs {
    /// The name the other side sees [default: this machine's name].
    #[arg(long)]
    name: Option<String>,
    /// Camera to use, as numbered by `vidchat devices`.
    #[arg(long, default_value_t = 0)]
    camera: u32,
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
    /// Write one JSON line per frame received to this file.
    #[arg(long, value_name = "PATH")]
    stats: Option<PathBuf>,
}

fn parse_size(size: &str) -> Result<(u32, u32)> {
    let parsed = size
        .split_once(['x', 'X'])
        .and_then(|(w, h)| Some((w.trim().parse::<u32>().ok()?, h.trim().parse::<u32>().ok()?)));
    match parsed {
        Some((w, h))
            if !(16..=MAX_DIMENSION).contains(&w) || !(16..=MAX_DIMENSION).contains(&h) =>
        {
            bail!("--size {size}: each side must be 16..={MAX_DIMENSION} pixels")
        }
        Some((w, h)) if w % 2 == 1 || h % 2 == 1 => bail!(
            "--size {size}: each side must be even (video is 4:2:0); try {}x{}",
            w & !1,
            h & !1
        ),
        Some((w, h)) => Ok((w, h)),
        None => bail!("--size {size}: expected WIDTHxHEIGHT, e.g. 1280x720"),
    }
}

impl CallArgs {
    /// Checks the flags and builds the call's options.
    pub fn into_options(self) -> Result<CallOptions> {
        let (width, height) = parse_size(&self.size)?;
        if !(1..=120).contains(&self.fps) {
            bail!("--fps {}: must be 1..=120", self.fps);
        }
        let kind = match self.source.as_str() {
            "camera" => SourceKind::Camera { index: self.camera },
            "test" => SourceKind::TestPattern,
            path if path.ends_with(".y4m") => SourceKind::Y4m(PathBuf::from(path)),
            other => bail!("--source {other}: expected camera, test, or a .y4m file"),
        };
        let codec = match self.codec.as_str() {
            "auto" | "h264" => CodecChoice::H264,
            "mjpeg" | "jpeg" => CodecChoice::Mjpeg,
            other => bail!("--codec {other}: expected auto, h264 or mjpeg"),
        };
        let duration = match self.duration {
            None => None,
            Some(secs) if secs.is_finite() && secs > 0.0 && secs < 1e9 => {
                Some(Duration::from_secs_f64(secs))
            }
            Some(secs) => bail!("--duration {secs}: must be a positive number of seconds"),
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
        })
    }
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
}
