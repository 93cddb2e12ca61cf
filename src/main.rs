//! vidchat: two-peer video chat for the command line. This file only
//! dispatches: it parses and checks the command line (`cli::Plan`), runs
//! what it asks for, prints one
//! line for what went wrong, and turns the outcome into the exit status.

use std::process::ExitCode;

use clap::Parser;

use vidchat::call::{EndReason, say};
use vidchat::capture;
use vidchat::cli::{Cli, Plan, UsageError};
use vidchat::interrupt;
use vidchat::session;

/// Exit status when a call could not start (bad address, no camera, no
/// display, declined, busy…).
const EXIT_SETUP: u8 = 1;
/// Exit status for a value the command line gives that cannot be used, as
/// clap exits for the flags it refuses itself.
const EXIT_USAGE: u8 = 2;
/// Exit status when a call ended by failure rather than a hang-up.
const EXIT_CALL_FAILED: u8 = 3;

/// A bare executable's Info.plist, where macOS looks for one: without its
/// `NSCameraUsageDescription` macOS ends the process at its first use of
/// the camera (and `NSLocalNetworkUsageDescription` is what the Local
/// Network prompt shows).
#[cfg(target_os = "macos")]
#[used]
#[unsafe(link_section = "__TEXT,__info_plist")]
static INFO_PLIST: [u8; include_bytes!("macos/Info.plist").len()] =
    *include_bytes!("macos/Info.plist");

fn run(cli: Cli) -> anyhow::Result<Option<EndReason>> {
    let plan = cli.command.into_plan()?;
    Ok(Some(match plan {
        Plan::Listen(how, options) => {
            interrupt::install();
            session::listen(&how, &options)?
        }
        Plan::Connect(target, yes, options) => {
            interrupt::install();
            session::connect(&target, yes, &options)?
        }
        Plan::Loopback(options) => {
            interrupt::install();
            session::loopback(&options)?
        }
        Plan::Peers => {
            session::peers()?;
            return Ok(None);
        }
        Plan::KnownPeers(forget) => {
            session::known_peers(forget.as_deref())?;
            return Ok(None);
        }
        Plan::Devices => {
            capture::list_devices()?;
            return Ok(None);
        }
    }))
}

fn main() -> ExitCode {
    // Usage errors of clap's own exit 2 here.
    let cli = Cli::parse();
    match run(cli) {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(reason)) if reason.is_normal() => {
            say(format_args!("call ended: {reason}"));
            ExitCode::SUCCESS
        }
        Ok(Some(reason)) => {
            say(format_args!("call ended: {reason}"));
            ExitCode::from(EXIT_CALL_FAILED)
        }
        Err(e) if e.is::<UsageError>() => {
            say(format_args!(
                "error: {e}\n\nFor more information, try '--help'."
            ));
            ExitCode::from(EXIT_USAGE)
        }
        Err(e) => {
            say(format_args!("error: {e:#}"));
            ExitCode::from(EXIT_SETUP)
        }
    }
}
