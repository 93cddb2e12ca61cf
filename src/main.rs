//! vidchat: two-peer video chat for the command line. This file only
//! dispatches: it parses the command line, runs the command, prints one
//! line for what went wrong, and turns the outcome into the exit status.

use std::process::ExitCode;

use clap::Parser;

use vidchat::call::EndReason;
use vidchat::capture;
use vidchat::cli::{Cli, Command};
use vidchat::session;

/// Exit status when a call could not start (bad address, no camera, no display…).
const EXIT_SETUP: u8 = 1;
/// Exit status when a call ended by failure rather than a hang-up.
const EXIT_CALL_FAILED: u8 = 3;

fn run(cli: Cli) -> anyhow::Result<Option<EndReason>> {
    Ok(Some(match cli.command {
        Command::Listen {
            port,
            bind,
            yes,
            no_announce,
            call,
        } => session::listen(bind, port, yes, !no_announce, &call.into_options()?)?,
        Command::Connect { target, call } => {
            session::connect(target.as_deref(), &call.into_options()?)?
        }
        Command::Loopback { call } => session::loopback(&call.into_options()?)?,
        Command::Peers => {
            session::peers()?;
            return Ok(None);
        }
        Command::Devices => {
            capture::list_devices()?;
            return Ok(None);
        }
    }))
}

fn main() -> ExitCode {
    // Usage errors exit 2 through clap.
    let cli = Cli::parse();
    match run(cli) {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(reason)) if reason.is_normal() => {
            eprintln!("call ended: {reason}");
            ExitCode::SUCCESS
        }
        Ok(Some(reason)) => {
            eprintln!("call ended: {reason}");
            ExitCode::from(EXIT_CALL_FAILED)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_SETUP)
        }
    }
}
