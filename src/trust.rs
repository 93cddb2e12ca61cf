//! Who a peer is across calls: trust on first use, as SSH's known_hosts.
//!
//! This machine keeps one static key (the `identity` file in the config
//! directory, readable only by its owner), which every handshake proves.
//! After a call that both people said yes to, each side whose person
//! compared the code and said so (not `--yes`, which compares nothing)
//! remembers the peer's public key under the peer's name (`known_peers`,
//! one `NAME HEX-KEY` line each). A name the caller dialled (found
//! nearby) is checked too, whatever name the answer gives itself. Next time that name with that key is
//! [`Trust::Known`]: the caller's yes is implied (the listener still
//! answers). The same name with another key is [`Trust::Changed`]: someone
//! may be posing as it, so it is a stranger whose code must be compared,
//! `--yes` does not confirm or answer it, and its key is not remembered
//! over the old one (`vidchat peers --forget NAME` does that, on purpose).
//!
//! What an impostor can do: choose a name, never prove another's key. It
//! either takes a name nobody remembers (a stranger: the code decides) or
//! a remembered one (a changed key: loud, and no camera leaves for it
//! without its person's yes). The files are read as untrusted input: at
//! most [`MAX_FILE`] bytes, lines that do not parse are skipped.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::secure::StaticKey;

/// Environment variable naming the config directory (tests, several
/// identities on one machine); the platform's own otherwise.
pub const CONFIG_DIR_ENV: &str = "VIDCHAT_CONFIG_DIR";
const IDENTITY_FILE: &str = "identity";
const KNOWN_FILE: &str = "known_peers";
/// Largest file read.
pub const MAX_FILE: u64 = 1 << 20;
/// Peers remembered at most (beyond it, new ones are not).
pub const MAX_KNOWN: usize = 10_000;

/// Where vidchat keeps its key and known peers: `$VIDCHAT_CONFIG_DIR`, or
/// the platform's config directory (`~/.config/vidchat` on Linux,
/// `~/Library/Application Support/vidchat` on macOS,
/// `%APPDATA%\vidchat\config` on Windows).
pub fn config_dir() -> Option<PathBuf> {
    std::env::var_os(CONFIG_DIR_ENV)
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            directories::ProjectDirs::from("", "", "vidchat").map(|d| d.config_dir().to_path_buf())
        })
}

/// What a peer's key says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// Its name is not remembered: the code decides.
    Stranger,
    /// Its name and key were confirmed in an earlier call.
    Known,
    /// Its name was confirmed before with another key.
    Changed,
}

impl Trust {
    /// Whether the caller's video may go without its person comparing the
    /// code: for a known peer, or with `connect --yes` for a stranger;
    /// never for a changed key.
    pub fn caller_confirms_unasked(self, yes: bool) -> bool {
        match self {
            Trust::Known => true,
            Trust::Stranger => yes,
            Trust::Changed => false,
        }
    }

    /// Whether the listener takes the call without asking (`listen --yes`),
    /// never for a changed key.
    pub fn listener_answers_unasked(self, yes: bool) -> bool {
        yes && self != Trust::Changed
    }

    /// The warning a changed key gets, wherever it is shown.
    pub fn changed_warning(name: &str, called: bool) -> String {
        let before = if called {
            "you called before"
        } else {
            "who called before"
        };
        format!(
            "WARNING: this is not the {name} {before}: its key changed. Someone may be posing as {name}: compare the code, or hang up"
        )
    }
}

/// This machine's static key from `dir`, made (readable by its owner only)
/// the first time.
pub fn identity(dir: &Path) -> Result<StaticKey> {
    let path = dir.join(IDENTITY_FILE);
    match read_bounded(&path) {
        Ok(text) => {
            warn_if_others_can_read(&path);
            let key = parse_key(text.trim()).with_context(|| {
                format!(
                    "{} is damaged: move it away and a new key is made (peers that knew this machine will see a changed key)",
                    path.display()
                )
            })?;
            Ok(StaticKey::from_bytes(key))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let key = StaticKey::generate()?;
            create_dir(dir)?;
            // Written whole under another name, then linked into place, so
            // a vidchat starting at the same moment never reads half a key.
            let fresh = path.with_extension(format!("new{}", std::process::id()));
            let _ = fs::remove_file(&fresh);
            let made = write_private(&fresh, &format!("{}\n", to_hex(&key.to_bytes())))
                .and_then(|()| fs::hard_link(&fresh, &path));
            let _ = fs::remove_file(&fresh);
            match made {
                Ok(()) => Ok(key),
                // Another vidchat made it first: that one is the key.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => identity(dir),
                Err(e) => Err(e).with_context(|| format!("cannot write {}", path.display())),
            }
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The peers confirmed before, by name.
#[derive(Debug, Default)]
pub struct KnownPeers {
    /// Where they are kept (None: in memory only).
    file: Option<PathBuf>,
    peers: BTreeMap<String, [u8; 32]>,
}

impl KnownPeers {
    /// Remembers nothing beyond this process.
    pub fn in_memory() -> KnownPeers {
        KnownPeers::default()
    }

    /// The peers remembered in `dir` (none yet if it has no file).
    pub fn open(dir: &Path) -> Result<KnownPeers> {
        let file = dir.join(KNOWN_FILE);
        let peers = read_known(&file)?;
        Ok(KnownPeers {
            file: Some(file),
            peers,
        })
    }

    /// What `key` says about the peer called `name` (already safe).
    pub fn trust(&self, name: &str, key: &[u8; 32]) -> Trust {
        match self.peers.get(name) {
            None => Trust::Stranger,
            Some(known) if known == key => Trust::Known,
            Some(_) => Trust::Changed,
        }
    }

    /// What `key` says about a peer that calls itself `name`, reached by
    /// calling `dialled` (the name it was found under, if any): the worse
    /// of the two, so an impostor cannot dodge the known key by taking
    /// another name; and the name to warn about.
    pub fn trust_as<'n>(
        &self,
        name: &'n str,
        dialled: Option<&'n str>,
        key: &[u8; 32],
    ) -> (Trust, &'n str) {
        let by_name = self.trust(name, key);
        match dialled.map(|d| (d, self.trust(d, key))) {
            Some((dialled, Trust::Changed)) => (Trust::Changed, dialled),
            _ if by_name == Trust::Changed => (Trust::Changed, name),
            Some((_, Trust::Known)) => (Trust::Known, name),
            _ => (by_name, name),
        }
    }

    /// Remembers a stranger's key under its name, after a call both people
    /// said yes to. False when nothing was remembered: the name is known
    /// (with this key or, which is never overwritten, another) or the list
    /// is full.
    pub fn remember(&mut self, name: &str, key: &[u8; 32]) -> Result<bool> {
        // Another vidchat may have remembered peers since we read the file.
        if let Some(file) = &self.file {
            self.peers = read_known(file)?;
        }
        if self.peers.contains_key(name) || self.peers.len() >= MAX_KNOWN {
            return Ok(false);
        }
        self.peers.insert(name.to_string(), *key);
        self.save()?;
        Ok(true)
    }

    /// Forgets the peer called `name`; false if it was not known.
    pub fn forget(&mut self, name: &str) -> Result<bool> {
        if let Some(file) = &self.file {
            self.peers = read_known(file)?;
        }
        if self.peers.remove(name).is_none() {
            return Ok(false);
        }
        self.save()?;
        Ok(true)
    }

    /// The names remembered, each with the start of its key (as `peers
    /// --known` lists them).
    pub fn list(&self) -> impl Iterator<Item = (&str, String)> {
        self.peers
            .iter()
            .map(|(name, key)| (name.as_str(), to_hex(key.get(..8).unwrap_or_default())))
    }

    /// Writes the list in full to a new file that then replaces the old.
    fn save(&self) -> Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        if let Some(dir) = file.parent() {
            create_dir(dir)?;
        }
        let mut text = String::from("# vidchat's known peers: NAME KEY, one per line\n");
        for (name, key) in &self.peers {
            text.push_str(&format!("{name} {}\n", to_hex(key)));
        }
        let fresh = file.with_extension(format!("new{}", std::process::id()));
        let _ = fs::remove_file(&fresh);
        write_private(&fresh, &text)
            .and_then(|()| fs::rename(&fresh, file))
            .with_context(|| format!("cannot write {}", file.display()))
    }
}

/// The known peers in `file`. A line that does not parse is an error (a
/// damaged entry would make a changed key pass for a stranger's); a name
/// given twice keeps its first key; lines beyond [`MAX_KNOWN`] are not read.
fn read_known(file: &Path) -> Result<BTreeMap<String, [u8; 32]>> {
    let text = match read_bounded(file) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
    };
    let mut peers = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || peers.len() >= MAX_KNOWN {
            continue;
        }
        let entry = line
            .split_once(' ')
            .filter(|(name, _)| *name == crate::wire::safe_name(name))
            .and_then(|(name, key)| Some((name, parse_key(key.trim()).ok()?)));
        let Some((name, key)) = entry else {
            bail!(
                "{} line {} is damaged (expected NAME and 64 hexadecimal digits)",
                file.display(),
                n + 1
            );
        };
        peers.entry(name.to_string()).or_insert(key);
    }
    Ok(peers)
}

/// A file's text, refusing one larger than [`MAX_FILE`].
fn read_bounded(path: &Path) -> io::Result<String> {
    let mut text = String::new();
    fs::File::open(path)?
        .take(MAX_FILE + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_FILE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {MAX_FILE} bytes"),
        ));
    }
    Ok(text)
}

fn create_dir(dir: &Path) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("cannot make {}", dir.display()))
}

/// Writes a new file only its owner can read (fails if it exists).
fn write_private(path: &Path, text: &str) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

fn warn_if_others_can_read(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            eprintln!(
                "warning: other users can read this machine's key {}: chmod 600 it",
                path.display()
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_key(hex: &str) -> Result<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        bail!("expected 64 hexadecimal digits");
    }
    let mut key = [0u8; 32];
    for (byte, pair) in key.iter_mut().zip(hex.as_bytes().chunks(2)) {
        let pair = std::str::from_utf8(pair).unwrap_or_default();
        *byte = u8::from_str_radix(pair, 16).context("expected hexadecimal digits")?;
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    //! The known-peer rules on two connections joined in memory (first
    //! call, same key, changed key), and the files as hostile input.
    use super::*;
    use crate::net::connection::Event;
    use crate::net::connection::tests::{Pair, events, frame, frames, key};

    /// A fresh directory under the system's temporary one.
    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vidchat-trust-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    /// The peer's key and name each side saw once the handshake was done.
    fn handshake(pair: &mut Pair) -> ((String, [u8; 32]), (String, [u8; 32])) {
        pair.drive();
        pair.callee.ring();
        pair.drive();
        let seen = |conn: &crate::net::connection::Connection| {
            let info = conn.peer().expect("no handshake");
            (info.name.clone(), info.key)
        };
        (seen(&pair.caller), seen(&pair.callee))
    }

    /// How the caller's yes comes.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Yes {
        /// Nobody is asked (no terminal, no window, no --yes).
        Nobody,
        /// `connect --yes`: given, but nobody compared the code.
        Flag,
        /// The person compared the code and said y.
        Person,
    }

    /// One call as vidchat would run it between `alice` (calling as
    /// `names.0`, dialling `names.1`) and a callee answering as `names.2`,
    /// with what each side remembers: the listener's person answers (but
    /// never a changed key), the caller confirms as `yes` and its trust
    /// allow, and a side remembers a stranger only if its person said yes.
    /// Returns the caller's trust and the frames the listener received.
    fn call(
        known: (&mut KnownPeers, &mut KnownPeers),
        keys: (&StaticKey, &StaticKey),
        names: (&str, Option<&str>, &str),
        yes: Yes,
    ) -> (Trust, Vec<u64>) {
        let (at_caller, at_callee) = known;
        let (caller_name, dialled, callee_name) = names;
        let mut pair = Pair::between((caller_name, keys.0), (callee_name, keys.1));
        let ((bob, bob_key), (alice, alice_key)) = handshake(&mut pair);
        let (trust, _) = at_caller.trust_as(&bob, dialled, &bob_key);
        let theirs = at_callee.trust(&alice, &alice_key);
        pair.callee.answer(pair.now, theirs != Trust::Changed);
        if yes == Yes::Person || trust.caller_confirms_unasked(yes == Yes::Flag) {
            pair.caller.confirm();
        }
        pair.drive();
        let caller_sent = pair.caller.send_frame(frame(1, true)).is_ok();
        pair.drive();
        let got = frames(&mut pair.callee);
        assert!(caller_sent);
        if pair.caller.may_send_video() && pair.callee.peer_confirmed() {
            if trust == Trust::Stranger && yes == Yes::Person {
                at_caller.remember(&bob, &bob_key).unwrap();
            }
            if theirs == Trust::Stranger {
                at_callee.remember(&alice, &alice_key).unwrap();
            }
        }
        events(&mut pair.caller);
        (trust, got)
    }

    #[test]
    fn a_first_call_a_known_peer_and_a_changed_key() {
        let (alice, bob, mallory) = (key(), key(), key());
        let (mut at_alice, mut at_bob) = (KnownPeers::in_memory(), KnownPeers::in_memory());
        let plain = ("alice", None, "bob");
        // First call: strangers; nothing leaves without the caller's yes.
        let (trust, got) = call(
            (&mut at_alice, &mut at_bob),
            (&alice, &bob),
            plain,
            Yes::Nobody,
        );
        assert_eq!(trust, Trust::Stranger);
        assert!(got.is_empty(), "video left before its person said yes");
        assert_eq!(at_alice.list().count(), 0, "remembered without a yes");
        // connect --yes: the video goes, but nobody compared: nothing kept.
        let (_, got) = call(
            (&mut at_alice, &mut at_bob),
            (&alice, &bob),
            plain,
            Yes::Flag,
        );
        assert_eq!(got, vec![1]);
        assert_eq!(at_alice.list().count(), 0, "--yes vouched for a key");
        // The person compared and said y: remembered.
        let (_, got) = call(
            (&mut at_alice, &mut at_bob),
            (&alice, &bob),
            plain,
            Yes::Person,
        );
        assert_eq!(got, vec![1]);
        assert_eq!(at_alice.trust("bob", &pair_key(&alice, &bob)), Trust::Known);
        // Same key again: known, and the caller's yes is implied.
        let (trust, got) = call(
            (&mut at_alice, &mut at_bob),
            (&alice, &bob),
            plain,
            Yes::Nobody,
        );
        assert_eq!((trust, got), (Trust::Known, vec![1]));
        // Mallory calls itself bob: a changed key, and even --yes sends nothing.
        let (trust, got) = call(
            (&mut at_alice, &mut at_bob),
            (&alice, &mallory),
            plain,
            Yes::Flag,
        );
        assert_eq!(trust, Trust::Changed);
        assert!(got.is_empty(), "the caller's video went to a changed key");
        // Found nearby as bob, mallory answers as b0b: still bob's changed key.
        let renamed = ("alice", Some("bob"), "b0b");
        let (trust, got) = call(
            (&mut at_alice, &mut at_bob),
            (&alice, &mallory),
            renamed,
            Yes::Flag,
        );
        assert_eq!(trust, Trust::Changed, "a new name dodged the known key");
        assert!(
            got.is_empty(),
            "the caller's video went to a renamed impostor"
        );
        assert_eq!(
            at_alice.trust("bob", &pair_key(&alice, &bob)),
            Trust::Known,
            "the changed key replaced the known one"
        );
        // And bob's listener, called by a mallory posing as alice, does
        // not take the call by itself.
        let mut pair = Pair::between(("alice", &mallory), ("bob", &bob));
        let (_, (name, their_key)) = handshake(&mut pair);
        let theirs = at_bob.trust(&name, &their_key);
        assert_eq!(theirs, Trust::Changed);
        assert!(!theirs.listener_answers_unasked(true));
        assert!(
            events(&mut pair.callee)
                .iter()
                .all(|e| !matches!(e, Event::Frame(_)))
        );
    }

    /// The key the caller holding `caller` sees for the callee holding `callee`.
    fn pair_key(caller: &StaticKey, callee: &StaticKey) -> [u8; 32] {
        let mut pair = Pair::between(("alice", caller), ("bob", callee));
        handshake(&mut pair).0.1
    }

    #[test]
    fn the_key_and_the_peers_outlive_the_process() {
        let dir = temp_dir("files");
        let key = identity(&dir).unwrap();
        assert_eq!(identity(&dir).unwrap().to_bytes(), key.to_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.join(IDENTITY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "the key file is {mode:o}");
        }
        let mut known = KnownPeers::open(&dir).unwrap();
        assert!(known.remember("bob", &[7; 32]).unwrap());
        assert!(
            !known.remember("bob", &[8; 32]).unwrap(),
            "a known key was overwritten"
        );
        let again = KnownPeers::open(&dir).unwrap();
        assert_eq!(again.trust("bob", &[7; 32]), Trust::Known);
        assert_eq!(again.trust("bob", &[8; 32]), Trust::Changed);
        let mut known = KnownPeers::open(&dir).unwrap();
        assert!(known.forget("bob").unwrap());
        assert!(!known.forget("bob").unwrap());
        assert_eq!(
            KnownPeers::open(&dir).unwrap().trust("bob", &[8; 32]),
            Trust::Stranger
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn damaged_files_are_refused_or_skipped_without_a_panic() {
        let dir = temp_dir("damaged");
        create_dir(&dir).unwrap();
        fs::write(dir.join(IDENTITY_FILE), "not a key").unwrap();
        let e = identity(&dir).unwrap_err();
        assert!(format!("{e:#}").contains("is damaged"), "{e:#}");
        let good = to_hex(&[1; 32]);
        let lines = format!("# comment\n\nbob {good}\nbob {}\n", to_hex(&[2; 32]));
        fs::write(dir.join(KNOWN_FILE), lines).unwrap();
        let known = KnownPeers::open(&dir).unwrap();
        let names: Vec<_> = known.list().map(|(name, _)| name.to_string()).collect();
        assert_eq!(names, ["bob"]);
        assert_eq!(
            known.trust("bob", &[1; 32]),
            Trust::Known,
            "the first line wins"
        );
        let damaged = [
            "no-key".to_string(),
            format!("bad name {good}"),
            "short 12ab".into(),
            format!("\u{202e}x {good}"),
            format!("eve {}", "zz".repeat(32)),
        ];
        for line in damaged {
            fs::write(dir.join(KNOWN_FILE), format!("bob {good}\n{line}\n")).unwrap();
            let e = KnownPeers::open(&dir).expect_err(&line);
            assert!(format!("{e:#}").contains("line 2 is damaged"), "{e:#}");
        }
        fs::write(dir.join(KNOWN_FILE), vec![b'a'; MAX_FILE as usize + 1]).unwrap();
        assert!(
            KnownPeers::open(&dir).is_err(),
            "an oversized file was read"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
