//! The listener's door: takes connections as they come and runs their
//! handshakes side by side, each with its own deadline, so strangers that
//! connect and say nothing (or one byte a second) cannot keep a real caller
//! out. At most [`MAX_PENDING`] wait at once; a newcomer beyond that pushes
//! the oldest out. Whoever is not vidchat gets one log line. A source
//! whose calls keep hanging up right after their code was shown (see
//! `guessing`) is turned away for a while, with one line a second at most.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, TcpListener};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::Peer;
use super::busy::BusyTone;
use super::connection::Role;
use super::guessing::Guessing;
use crate::wire::Intro;

/// Handshakes in progress at once. Each costs a socket and a few kilobytes.
pub const MAX_PENDING: usize = 16;

/// A listening socket and the handshakes in progress on it.
pub struct Door {
    listener: TcpListener,
    intro: Intro,
    pending: VecDeque<Peer>,
    guessing: Guessing,
    /// Connections from suspect sources turned away since the last line about them.
    turned_away: u32,
    last_turned_away_log: Option<Instant>,
}

/// At most one line this often about connections turned away.
const TURNED_AWAY_LOG: Duration = Duration::from_secs(1);

impl Door {
    pub fn new(listener: TcpListener, intro: Intro) -> Result<Door> {
        listener.set_nonblocking(true)?;
        Ok(Door {
            listener,
            intro,
            pending: VecDeque::new(),
            guessing: Guessing::default(),
            turned_away: 0,
            last_turned_away_log: None,
        })
    }

    /// Answers every newcomer "busy" until the tone is dropped (while a
    /// call rings or runs); the handshakes already in progress wait.
    pub fn busy_tone(&self) -> Result<BusyTone> {
        BusyTone::start(&self.listener)
    }

    /// A call from `ip` hung up right after its code was shown; returns the
    /// warning to print when that source now looks like someone guessing.
    pub fn hung_up_after_code(&mut self, ip: IpAddr, now: Instant) -> Option<String> {
        self.guessing.hung_up_after_code(ip, now)
    }

    /// Lets newcomers in and moves every handshake on, without blocking.
    /// Returns a caller whose handshake is done, if one is.
    pub fn poll(&mut self, now: Instant) -> Option<Peer> {
        self.admit(now);
        for peer in &mut self.pending {
            peer.pump(now);
            // What matters is the state the events led to.
            while peer.conn.poll_event().is_some() {}
        }
        self.pending.retain(|peer| match peer.conn.end_reason() {
            Some(reason) => {
                eprintln!("refused connection from {}: {reason}", peer.describe());
                false
            }
            None => true,
        });
        let done = self.pending.iter().position(|peer| peer.info().is_some())?;
        self.pending.remove(done)
    }

    /// Accepts every connection waiting in the kernel. Errors that concern
    /// one connection (it was reset before we took it, or we are out of
    /// file descriptors for a moment) are logged; the door stays open.
    fn admit(&mut self, now: Instant) {
        loop {
            match self.listener.accept() {
                Ok((_, addr)) if self.guessing.is_slowed(addr.ip(), now) => {
                    self.turned_away += 1;
                }
                Ok((stream, addr)) => match Peer::new(stream, addr, Role::Callee, &self.intro) {
                    Ok(peer) => self.pending.push_back(peer),
                    Err(e) => eprintln!("refused connection from {addr}: {e:#}"),
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    eprintln!("could not take a connection: {e}");
                    return;
                }
            }
            if self.pending.len() > MAX_PENDING
                && let Some(oldest) = self.pending.pop_front()
            {
                eprintln!(
                    "refused connection from {}: {MAX_PENDING} handshakes were already waiting; the oldest goes",
                    oldest.describe()
                );
            }
        }
        let quiet = self
            .last_turned_away_log
            .is_some_and(|at| now < at + TURNED_AWAY_LOG);
        if self.turned_away > 0 && !quiet {
            eprintln!(
                "turned away {} connection(s) from a source whose calls hung up right after their code",
                self.turned_away
            );
            self.turned_away = 0;
            self.last_turned_away_log = Some(now);
        }
    }
}
