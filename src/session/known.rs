//! Who the peer is across calls, for a call's commands: this machine's
//! key and the known peers, read before anything is announced or looked
//! for; what they say about a peer (checked under the name dialled too);
//! remembering a stranger once both people said yes (only when our own
//! person compared the code); and `vidchat peers --known` / `--forget`.

use anyhow::{Context, Result, anyhow, bail};

use crate::call::say;
use crate::net::Peer;
use crate::secure::StaticKey;
use crate::trust::{self, KnownPeers, Trust};
use crate::wire;

/// This machine's key and the peers it knows, from the config directory.
/// A key that cannot be kept is one for this run only (said in one line:
/// the peers then see a changed key, and are warned); known peers that
/// cannot be read are an error, never an empty list (every changed key
/// would pass for a stranger's).
pub(super) fn keys() -> Result<(StaticKey, KnownPeers)> {
    let Some(dir) = trust::config_dir() else {
        eprintln!(
            "no config directory (set {}): this machine's key is for this run only, and no peer is known",
            trust::CONFIG_DIR_ENV
        );
        return Ok((StaticKey::generate()?, KnownPeers::in_memory()));
    };
    let known = KnownPeers::open(&dir)
        .context("the known peers cannot be read: fix or move the file, then call again")?;
    let key = trust::identity(&dir).or_else(|e| {
        eprintln!("this machine's key is for this run only ({e:#}): peers will see a changed key");
        StaticKey::generate()
    })?;
    Ok((key, known))
}

/// `vidchat peers --known` (no `forget`) and `--forget NAME`.
pub fn known_peers(forget: Option<&str>) -> Result<()> {
    let dir = trust::config_dir()
        .ok_or_else(|| anyhow!("no config directory (set {})", trust::CONFIG_DIR_ENV))?;
    let mut known = KnownPeers::open(&dir)?;
    match forget {
        Some(name) => {
            let name = wire::safe_name(name);
            if !known.forget(&name)? {
                bail!("no known peer is called {name} (`vidchat peers --known` lists them)");
            }
            println!("forgot {name}: its next call is a stranger's, whose code is compared again");
        }
        None => {
            let mut any = false;
            for (name, key) in known.list() {
                println!("{name}  key {key}...");
                any = true;
            }
            if !any {
                eprintln!(
                    "no known peers yet: a peer is known after a call both people said yes to"
                );
            }
        }
    }
    Ok(())
}

/// What `known` says about the peer of a finished handshake, reached by
/// calling `dialled`; and the name a warning names.
pub(super) fn trust_of(peer: &Peer, dialled: Option<&str>, known: &KnownPeers) -> (Trust, String) {
    peer.info()
        .map_or((Trust::Stranger, String::new()), |info| {
            let (trust, name) = known.trust_as(&info.name, dialled, &info.key);
            (trust, name.to_string())
        })
}

/// Remembers a stranger once both people said yes to the call.
pub(super) struct Remember<'a> {
    known: &'a mut KnownPeers,
    trust: Trust,
    name: String,
    key: [u8; 32],
}

impl Remember<'_> {
    /// Both said yes: a stranger's key is kept, a changed one is not.
    pub(super) fn both_said_yes(self) {
        let name = &self.name;
        match self.trust {
            Trust::Known => {}
            Trust::Changed => say(format_args!(
                "{name}'s new key is not remembered: if {name} really has a new key (vidchat reinstalled), `vidchat peers --forget {name}`, then call again"
            )),
            Trust::Stranger => match self.known.remember(name, &self.key) {
                Ok(true) => say(format_args!(
                    "remembered {name}: next time it is known (`vidchat peers --forget {name}` forgets it)"
                )),
                Ok(false) => {}
                Err(e) => say(format_args!("{name} is not remembered: {e:#}")),
            },
        }
    }
}

/// What to remember of `peer` once both said yes: `(trust, warn_name)`
/// as `trust_of` found them (a changed key is told under the name whose
/// key changed, which may be the one dialled).
pub(super) fn remembering<'k>(
    peer: &Peer,
    (trust, warn_name): (Trust, &str),
    known: &'k mut KnownPeers,
) -> Option<Remember<'k>> {
    let info = peer.info()?;
    let name = match trust {
        Trust::Changed => warn_name,
        _ => &info.name,
    };
    Some(Remember {
        known,
        trust,
        name: name.to_string(),
        key: info.key,
    })
}
