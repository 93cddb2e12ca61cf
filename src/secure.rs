//! End-to-end encryption of a call, with no I/O: the Noise handshake
//! (`Noise_XX_25519_ChaChaPoly_BLAKE2s`, through `snow`), the short
//! authentication string (SAS, "the code") both people compare, and sealing
//! and opening message payloads in chunks of Noise's 65,535-byte limit.
//!
//! The code is fixed before anyone can see it, and nobody sees it before
//! the listener rings. It hashes three things:
//! - the handshake hash after message 2, which covers both Hellos (the
//!   prologue), both ephemeral keys and the callee's static key and intro:
//!   everything that decides the keys, and nothing written after it;
//! - a random nonce from each side, each committed to (a BLAKE2s hash of it
//!   in its plaintext Hello) before any key was exchanged. The caller
//!   reveals its nonce in message 3; the callee reveals its own only once
//!   it rings (the person is shown the code), after message 3.
//!
//! A relay in the middle runs two handshakes. Towards the caller it must
//! write message 2 before it learns the caller's nonce, and it committed
//! to its own nonce in its Hello, so it cannot steer the caller's code;
//! towards the callee it committed to its nonce and wrote message 1 before
//! the callee's keys existed, and all it writes afterwards is message 3,
//! which the code does not cover. So neither code can be ground to match
//! the other. Nor can the relay learn the callee's code and hang up when
//! it differs, to try again: without the callee's nonce it cannot compute
//! it, and the callee reveals that only as it rings, so every try is a
//! call the person sees ring (and the listener counts those that hang up).
//! Each ring is one guess in 10^6. (Earlier schemes let a caller compute
//! the callee's code after message 2, before the callee showed anything: a
//! relay could drop and retry thousands of times during one real ring; and
//! before that the hash after message 3, which a relay could vary.) The
//! Hellos are the Noise prologue, so no commitment can be swapped either.
//!
//! A call whose link went silent resumes on a new TCP connection with a
//! [`Ticket`] (`Noise_KKpsk0_25519_ChaChaPoly_BLAKE2s`): both static keys
//! are known from the call, and the pre-shared key is derived from the
//! call's handshake hash and the resumption's number, so only the two
//! peers of this call can resume it, each ticket works once (both sides
//! move to the next number when a resumption is done), and the keys are
//! fresh (new ephemeral keys). The ticket's id, sent in the clear to name
//! the call, is a different hash of the same secret and reveals nothing of
//! the key.

use std::sync::Arc;

use blake2::{Blake2s256, Digest};
use snow::{HandshakeState, StatelessTransportState};

use crate::shared::Shared;

/// The Noise protocol vidchat speaks.
pub const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
/// The Noise protocol a call resumes with (see the module documentation).
pub const RESUME_PARAMS: &str = "Noise_KKpsk0_25519_ChaChaPoly_BLAKE2s";
/// Largest Noise message, in bytes (the Noise specification's limit).
pub const NOISE_MAX: usize = 65_535;
/// Authentication tag added to every Noise message.
const TAG: usize = 16;
/// Plaintext carried by one full chunk.
const CHUNK: usize = NOISE_MAX - TAG;

/// What can go wrong with encryption.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecureError {
    #[error("encryption handshake failed: {0}")]
    Handshake(Shared<snow::Error>),
    #[error("peer sent data that does not decrypt (tampered with, or not from the peer)")]
    Decrypt,
    #[error("the peer's commitment to its code does not match: someone may be in the middle")]
    Commitment,
    #[error("message of {0} bytes is too large to encrypt")]
    TooLarge(usize),
    #[error("encryption handshake ended early")]
    Unfinished,
    #[error("the system's random number generator failed: {0}")]
    Random(getrandom::Error),
}

impl SecureError {
    /// A failure of snow's, kept whole.
    fn handshake(e: snow::Error) -> Self {
        SecureError::Handshake(Shared::new(e))
    }
}

/// A side's long-lived Noise key (X25519 private key): who it is across
/// calls. The peer sees its public half in the handshake; `trust` keeps
/// the ones confirmed before. Never printed.
#[derive(Clone)]
pub struct StaticKey([u8; 32]);

impl StaticKey {
    /// A new random key.
    pub fn generate() -> Result<StaticKey, SecureError> {
        let keys = snow::Builder::new(params()?)
            .generate_keypair()
            .map_err(SecureError::handshake)?;
        let bytes = keys
            .private
            .try_into()
            .map_err(|_| SecureError::Unfinished)?;
        Ok(StaticKey(bytes))
    }

    /// The key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> StaticKey {
        StaticKey(bytes)
    }

    /// Its 32 bytes, to keep it in a file.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }
}

impl std::fmt::Debug for StaticKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StaticKey(..)")
    }
}

/// A fresh random 32-byte nonce.
pub fn random_nonce() -> Result<[u8; 32], SecureError> {
    let mut nonce = [0; 32];
    getrandom::fill(&mut nonce).map_err(SecureError::Random)?;
    Ok(nonce)
}

/// The commitment each side sends in its Hello.
pub fn commitment(nonce: &[u8; 32]) -> [u8; 32] {
    Blake2s256::new_with_prefix(b"vidchat commitment v1")
        .chain_update(nonce)
        .finalize()
        .into()
}

/// The code both people read aloud: six digits from the handshake hash and
/// both sides' nonces, as "123 456".
pub fn sas(handshake_hash: &[u8], caller_nonce: &[u8; 32], callee_nonce: &[u8; 32]) -> String {
    let digest: [u8; 32] = Blake2s256::new_with_prefix(b"vidchat sas v2")
        .chain_update(handshake_hash)
        .chain_update(caller_nonce)
        .chain_update(callee_nonce)
        .finalize()
        .into();
    let n = u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]]) % 1_000_000;
    format!("{:03} {:03}", n / 1000, n % 1000)
}

fn params() -> Result<snow::params::NoiseParams, SecureError> {
    NOISE_PARAMS.parse().map_err(SecureError::handshake)
}

/// One side of the Noise handshake.
pub struct Handshake {
    state: HandshakeState,
    /// Messages written and read so far.
    messages: usize,
    /// The handshake hash once message 2 is through: what the code covers.
    code_hash: Option<Vec<u8>>,
}

/// The message after which the handshake hash is what the code covers.
const CODE_MESSAGE: usize = 2;

impl Handshake {
    /// Starts a handshake as caller (`initiator`) or callee with our
    /// static `key`, binding the plaintext `prologue` (both Hellos) into it.
    pub fn new(
        initiator: bool,
        prologue: &[u8],
        key: &StaticKey,
    ) -> Result<Handshake, SecureError> {
        Self::build(snow::Builder::new(params()?), initiator, prologue, &key.0)
    }

    /// The handshake that resumes a call with `ticket`: the caller
    /// (`initiator`) writes message 1, the callee message 2.
    pub fn resuming(initiator: bool, ticket: &Ticket) -> Result<Handshake, SecureError> {
        let params = RESUME_PARAMS.parse().map_err(SecureError::handshake)?;
        let prologue = [b"vidchat resume v1".as_slice(), &ticket.id].concat();
        let builder = snow::Builder::new(params)
            .remote_public_key(&ticket.their_key)
            .and_then(|b| b.psk(0, &ticket.psk))
            .map_err(SecureError::handshake)?;
        Self::build(builder, initiator, &prologue, &ticket.our_key.0)
    }

    /// The same with fixed keys, so a test can replay one side exactly.
    #[cfg(test)]
    fn with_keys(
        initiator: bool,
        prologue: &[u8],
        private: &[u8],
        ephemeral: &[u8],
    ) -> Result<Handshake, SecureError> {
        let builder = snow::Builder::new(params()?).fixed_ephemeral_key_for_testing_only(ephemeral);
        Self::build(builder, initiator, prologue, private)
    }

    fn build(
        builder: snow::Builder<'_>,
        initiator: bool,
        prologue: &[u8],
        private: &[u8],
    ) -> Result<Handshake, SecureError> {
        let builder = builder
            .local_private_key(private)
            .and_then(|b| b.prologue(prologue))
            .map_err(SecureError::handshake)?;
        let state = if initiator {
            builder.build_initiator()
        } else {
            builder.build_responder()
        };
        Ok(Handshake {
            state: state.map_err(SecureError::handshake)?,
            messages: 0,
            code_hash: None,
        })
    }

    /// The next handshake message, carrying `payload` (encrypted once keys exist).
    pub fn write(&mut self, payload: &[u8]) -> Result<Vec<u8>, SecureError> {
        let mut msg = vec![0; NOISE_MAX];
        let n = self
            .state
            .write_message(payload, &mut msg)
            .map_err(SecureError::handshake)?;
        msg.truncate(n);
        self.count_message();
        Ok(msg)
    }

    /// Messages written and read so far.
    pub fn messages(&self) -> usize {
        self.messages
    }

    fn count_message(&mut self) {
        self.messages += 1;
        if self.messages == CODE_MESSAGE {
            self.code_hash = Some(self.state.get_handshake_hash().to_vec());
        }
    }

    /// Reads the peer's handshake message and returns its payload.
    pub fn read(&mut self, msg: &[u8]) -> Result<Vec<u8>, SecureError> {
        let mut payload = vec![0; NOISE_MAX];
        let n = self
            .state
            .read_message(msg, &mut payload)
            .map_err(SecureError::handshake)?;
        payload.truncate(n);
        self.count_message();
        Ok(payload)
    }

    /// The handshake hash the code covers (after message 2), the peer's
    /// static public key, and the two directions' ciphers.
    pub fn finish(mut self) -> Result<Finished, SecureError> {
        let hash = self.code_hash.take().ok_or(SecureError::Unfinished)?;
        // The two directions' keys, which only the two peers hold, hashed
        // one way: what the call's tickets come from. (The handshake hash
        // is not secret: it covers only what an eavesdropper saw.)
        let (one_way, other_way) = self.state.dangerously_get_raw_split();
        let resume_secret = Blake2s256::new_with_prefix(b"vidchat resume secret v2")
            .chain_update(one_way)
            .chain_update(other_way)
            .finalize()
            .into();
        let peer_key: [u8; 32] = self
            .state
            .get_remote_static()
            .and_then(|k| k.try_into().ok())
            .ok_or(SecureError::Unfinished)?;
        let transport = Arc::new(
            self.state
                .into_stateless_transport_mode()
                .map_err(SecureError::handshake)?,
        );
        Ok(Finished {
            hash,
            peer_key,
            resume_secret,
            sealer: Sealer {
                transport: transport.clone(),
                nonce: 0,
            },
            opener: Opener {
                transport,
                nonce: 0,
            },
        })
    }
}

/// A finished handshake.
pub struct Finished {
    /// What the code covers.
    pub hash: Vec<u8>,
    /// The peer's static public key: who it is across calls.
    pub peer_key: [u8; 32],
    /// The secret the call's resumption tickets come from, derived from
    /// the session's keys. Never sent, never printed.
    pub resume_secret: [u8; 32],
    pub sealer: Sealer,
    pub opener: Opener,
}

/// What the call's resumption number `generation` may resume it with:
/// the id that names it in the clear, the key only the two peers know,
/// and both static keys. Never printed.
#[derive(Clone)]
pub struct Ticket {
    pub generation: u64,
    pub id: [u8; 32],
    psk: [u8; 32],
    our_key: StaticKey,
    their_key: [u8; 32],
}

impl Ticket {
    /// Ticket `generation` of the call whose secret is `secret`, between
    /// `our_key` and the peer's public `their_key`.
    pub fn new(
        secret: &[u8; 32],
        generation: u64,
        our_key: &StaticKey,
        their_key: [u8; 32],
    ) -> Ticket {
        let derive = |label: &[u8]| -> [u8; 32] {
            Blake2s256::new_with_prefix(label)
                .chain_update(secret)
                .chain_update(generation.to_le_bytes())
                .finalize()
                .into()
        };
        Ticket {
            generation,
            id: derive(b"vidchat ticket id v1"),
            psk: derive(b"vidchat ticket key v1"),
            our_key: our_key.clone(),
            their_key,
        }
    }
}

#[cfg(test)]
impl Ticket {
    /// The same ticket in the hands of someone with another static key.
    pub fn held_by(&self, our_key: &StaticKey) -> Ticket {
        Ticket {
            our_key: our_key.clone(),
            ..self.clone()
        }
    }
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ticket({}, ..)", self.generation)
    }
}

/// Size of a sealed payload of `plain` bytes (an empty one is one chunk).
pub const fn sealed_len(plain: usize) -> usize {
    let chunks = plain.div_ceil(CHUNK);
    plain + if chunks == 0 { 1 } else { chunks } * TAG
}

/// Encrypts outgoing payloads (the sender thread's half).
pub struct Sealer {
    transport: Arc<StatelessTransportState>,
    nonce: u64,
}

impl Sealer {
    /// Appends `plain`, encrypted in chunks, to `out`.
    pub fn seal(&mut self, plain: &[u8], out: &mut Vec<u8>) -> Result<(), SecureError> {
        let start = out.len();
        out.resize(start + sealed_len(plain.len()), 0);
        let mut at = start;
        let mut chunks = plain.chunks(CHUNK);
        // An empty payload is still one (empty) chunk, so it is authenticated.
        let first = chunks.next().unwrap_or_default();
        for chunk in std::iter::once(first).chain(chunks) {
            let dst = out
                .get_mut(at..at + chunk.len() + TAG)
                .ok_or(SecureError::TooLarge(plain.len()))?;
            at += self
                .transport
                .write_message(self.nonce, chunk, dst)
                .map_err(|_| SecureError::TooLarge(plain.len()))?;
            self.nonce += 1;
        }
        Ok(())
    }
}

/// Decrypts incoming payloads (the receiver thread's half).
///
/// A clone opens the same messages (only a receiver's nonce is copied): a
/// resumption looks at the peer's first message with one before the call
/// takes it.
#[derive(Clone)]
pub struct Opener {
    transport: Arc<StatelessTransportState>,
    nonce: u64,
}

impl Opener {
    /// Decrypts a sealed payload into `out` (cleared first).
    pub fn open(&mut self, sealed: &[u8], out: &mut Vec<u8>) -> Result<(), SecureError> {
        out.clear();
        if sealed.len() < TAG {
            return Err(SecureError::Decrypt);
        }
        let mut chunk = [0u8; NOISE_MAX];
        for piece in sealed.chunks(NOISE_MAX) {
            let n = self
                .transport
                .read_message(self.nonce, piece, &mut chunk)
                .map_err(|_| SecureError::Decrypt)?;
            self.nonce += 1;
            out.extend_from_slice(chunk.get(..n).ok_or(SecureError::Decrypt)?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One side after the handshake: its hash and ciphers.
    type Side = (Vec<u8>, Sealer, Opener);

    fn side(done: Finished) -> Side {
        (done.hash, done.sealer, done.opener)
    }

    /// A handshake with a new static key.
    fn fresh(initiator: bool, prologue: &[u8]) -> Handshake {
        Handshake::new(initiator, prologue, &StaticKey::generate().unwrap()).unwrap()
    }

    /// Runs the three XX messages between two handshakes.
    fn handshake(a: &mut Handshake, b: &mut Handshake) {
        let m1 = a.write(b"").unwrap();
        b.read(&m1).unwrap();
        let m2 = b.write(b"callee intro").unwrap();
        assert_eq!(a.read(&m2).unwrap(), b"callee intro");
        let m3 = a.write(b"caller nonce").unwrap();
        assert_eq!(b.read(&m3).unwrap(), b"caller nonce");
    }

    fn pair(prologue_a: &[u8], prologue_b: &[u8]) -> (Side, Side) {
        let mut a = fresh(true, prologue_a);
        let mut b = fresh(false, prologue_b);
        handshake(&mut a, &mut b);
        (side(a.finish().unwrap()), side(b.finish().unwrap()))
    }

    #[test]
    fn both_sides_get_the_same_code_and_messages_round_trip() {
        let ((ha, mut seal_a, mut open_a), (hb, mut seal_b, mut open_b)) =
            pair(b"hellos", b"hellos");
        let (n1, n2) = (random_nonce().unwrap(), random_nonce().unwrap());
        assert_eq!(sas(&ha, &n1, &n2), sas(&hb, &n1, &n2));
        assert_eq!(sas(&ha, &n1, &n2).len(), 7);
        assert_ne!(sas(&ha, &n1, &n2), sas(&ha, &n2, &n1));
        // Sizes around the chunk boundary, and a 720p-frame-sized payload.
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 150_000] {
            let plain: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut sealed = Vec::new();
            seal_a.seal(&plain, &mut sealed).unwrap();
            assert_eq!(sealed.len(), sealed_len(len));
            assert!(
                len < 64 || !sealed.windows(64).any(|w| w == &plain[..64]),
                "plaintext visible"
            );
            let mut opened = Vec::new();
            open_b.open(&sealed, &mut opened).unwrap();
            assert_eq!(opened, plain);
        }
        let mut sealed = Vec::new();
        seal_b.seal(b"the other way", &mut sealed).unwrap();
        let mut opened = Vec::new();
        open_a.open(&sealed, &mut opened).unwrap();
        assert_eq!(opened, b"the other way");
    }

    #[test]
    fn a_flipped_bit_or_a_replay_is_refused() {
        let ((_, mut seal, _), (_, _, mut open)) = pair(b"p", b"p");
        let mut sealed = Vec::new();
        seal.seal(&[7; 1000], &mut sealed).unwrap();
        let mut tampered = sealed.clone();
        tampered[500] ^= 1;
        let mut out = Vec::new();
        assert!(matches!(
            open.open(&tampered, &mut out),
            Err(SecureError::Decrypt)
        ));
        // The genuine message, replayed after a fresh one, is refused too.
        let ((_, mut seal, _), (_, _, mut open)) = pair(b"p", b"p");
        let (mut first, mut second) = (Vec::new(), Vec::new());
        seal.seal(b"one", &mut first).unwrap();
        seal.seal(b"two", &mut second).unwrap();
        open.open(&first, &mut out).unwrap();
        assert!(open.open(&first, &mut out).is_err(), "replay accepted");
        assert!(
            open.open(&[0; 3], &mut out).is_err(),
            "short message accepted"
        );
    }

    #[test]
    fn different_prologues_do_not_complete() {
        let mut a = fresh(true, b"hello from a");
        let mut b = fresh(false, b"tampered hello");
        let m1 = a.write(b"").unwrap();
        b.read(&m1).unwrap();
        let m2 = b.write(b"").unwrap();
        assert!(a.read(&m2).is_err(), "a swapped Hello went unnoticed");
    }

    #[test]
    fn a_relay_that_rekeys_gets_different_codes() {
        // Caller <-> relay and relay <-> callee: two handshakes, as a man in
        // the middle would run them. The relay forwards the caller's nonce.
        let (n1, n2) = (random_nonce().unwrap(), random_nonce().unwrap());
        let ((h_caller, ..), (h_relay1, ..)) = pair(b"p", b"p");
        let ((h_relay2, ..), (h_callee, ..)) = pair(b"p", b"p");
        assert_eq!(sas(&h_caller, &n1, &n2), sas(&h_relay1, &n1, &n2));
        assert_eq!(sas(&h_relay2, &n1, &n2), sas(&h_callee, &n1, &n2));
        assert_ne!(sas(&h_caller, &n1, &n2), sas(&h_callee, &n1, &n2));
    }

    /// A fixed 32-byte key: `n` repeated.
    fn key(n: u8) -> [u8; 32] {
        [n; 32]
    }

    /// The callee's code hash after a handshake in which the callee's keys
    /// and the caller's ephemeral key are fixed, and message 3 carries the
    /// caller's static key `caller_static` and `payload`.
    fn callee_code_hash(caller_static: u8, payload: &[u8]) -> Vec<u8> {
        let mut a = Handshake::with_keys(true, b"p", &key(caller_static), &key(2)).unwrap();
        let mut b = Handshake::with_keys(false, b"p", &key(3), &key(4)).unwrap();
        b.read(&a.write(b"").unwrap()).unwrap();
        a.read(&b.write(b"callee intro").unwrap()).unwrap();
        b.read(&a.write(payload).unwrap()).unwrap();
        b.finish().unwrap().hash
    }

    #[test]
    fn message_3_cannot_change_the_callee_code() {
        // Message 1 and 2 are the same each time; message 3 is written by
        // the caller (or a relay posing as one) after the nonce is known.
        let (n1, n2) = (random_nonce().unwrap(), random_nonce().unwrap());
        let first = callee_code_hash(1, b"nonce and intro");
        for (caller_static, payload) in [(1, b"another intro".as_slice()), (9, b""), (200, b"x")] {
            let other = callee_code_hash(caller_static, payload);
            assert_eq!(sas(&other, &n1, &n2), sas(&first, &n1, &n2));
        }
    }

    #[test]
    fn a_relay_grinding_message_3_never_matches() {
        // The relay finished with the caller and knows the caller's code. Towards
        // the callee it committed to its nonce and sent message 1 before the
        // callee's keys existed; all it can still vary is message 3. It tries
        // variants of it (payloads and static keys) hoping to hit the caller's code.
        let caller_nonce = random_nonce().unwrap();
        let relay_nonce = random_nonce().unwrap();
        let callee_nonce = random_nonce().unwrap();
        let ((h_caller, ..), _) = pair(b"p", b"p");
        let caller_code = sas(&h_caller, &caller_nonce, &relay_nonce);
        let tries = 1_000u32;
        let matched = (0..tries)
            .filter(|n| {
                let payload = n.to_le_bytes();
                let callee = callee_code_hash((n % 250) as u8 + 1, &payload);
                sas(&callee, &relay_nonce, &callee_nonce) == caller_code
            })
            .count();
        assert_eq!(
            matched, 0,
            "a variant of message 3 matched the caller's code"
        );
    }

    #[test]
    fn each_side_learns_the_other_static_key_and_it_stays_the_same() {
        let (alice, bob) = (
            StaticKey::generate().unwrap(),
            StaticKey::generate().unwrap(),
        );
        let keys_seen = |callee: &StaticKey| {
            let mut a = Handshake::new(true, b"p", &alice).unwrap();
            let mut b = Handshake::new(false, b"p", callee).unwrap();
            handshake(&mut a, &mut b);
            (a.finish().unwrap().peer_key, b.finish().unwrap().peer_key)
        };
        let (bob_seen, alice_seen) = keys_seen(&bob);
        assert_eq!(
            keys_seen(&bob),
            (bob_seen, alice_seen),
            "a key changed between calls"
        );
        let (mallory_seen, alice_again) = keys_seen(&StaticKey::generate().unwrap());
        assert_ne!(mallory_seen, bob_seen);
        assert_eq!(alice_again, alice_seen);
        assert_ne!(
            bob_seen,
            bob.to_bytes(),
            "the public key is the private one"
        );
    }

    #[test]
    fn commitment_binds_the_nonce() {
        let nonce = random_nonce().unwrap();
        let mut other = nonce;
        other[0] ^= 1;
        assert_eq!(commitment(&nonce), commitment(&nonce));
        assert_ne!(commitment(&nonce), commitment(&other));
        assert_ne!(commitment(&nonce), nonce);
    }
}

#[cfg(test)]
mod cost {
    //! Not a pass/fail test: prints what encryption costs per frame.
    //! `cargo test --release secure::cost -- --ignored --nocapture`
    use super::*;
    use std::time::Instant;

    #[test]
    #[ignore = "a measurement, run by hand"]
    fn seal_and_open_cost_per_frame() {
        let key = StaticKey::generate().unwrap();
        let mut a = Handshake::new(true, b"", &key).unwrap();
        let mut b = Handshake::new(false, b"", &key).unwrap();
        b.read(&a.write(b"").unwrap()).unwrap();
        a.read(&b.write(b"").unwrap()).unwrap();
        b.read(&a.write(b"").unwrap()).unwrap();
        let (mut seal, mut open) = (a.finish().unwrap().sealer, b.finish().unwrap().opener);
        // A 720p JPEG at the qualities the controller uses is 60-200 KB.
        for size in [60_000, 150_000, 1280 * 720 * 3] {
            let plain = vec![0x5a; size];
            let (mut sealed, mut opened) = (Vec::new(), Vec::new());
            let runs = 200;
            let start = Instant::now();
            for _ in 0..runs {
                sealed.clear();
                seal.seal(&plain, &mut sealed).unwrap();
                open.open(&sealed, &mut opened).unwrap();
            }
            let each = start.elapsed() / runs;
            println!(
                "{size:>8} bytes: seal + open {:>6.0} us",
                each.as_secs_f64() * 1e6
            );
        }
    }
}
