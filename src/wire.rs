//! The vidchat wire protocol, with no I/O and no clock: bytes in, messages
//! out, `now` passed in by the caller.
//!
//! Every message on the TCP stream is a `u64` little-endian length followed by
//! that many bytes of bincode 1.3 (fixed-width integers, little endian, size
//! limit). The first message each way is a [`Hello`]; after it, [`Message`]s.
//! A peer's length is compared with a named cap before anything is allocated
//! for it, and bincode decodes under the same cap, so no byte sequence can
//! make us allocate more than [`MAX_MESSAGE_LEN`] plus one read.
//!
//! A peer's text is data: [`safe_name`] is the only form of a peer's name
//! that reaches a terminal or a window title.

use bincode::Options;
use serde::{Deserialize, Serialize};

use crate::shared::Shared;

/// Bytes that open every vidchat Hello: a peer that does not send them is not vidchat.
pub const MAGIC: [u8; 8] = *b"VIDCHAT\0";
/// Protocol version; both sides must speak the same one. 2: both sides
/// commit to a nonce for the code (the callee reveals its own as it
/// rings), and a listener in a call answers a caller with a busy Hello.
/// 3: a caller whose handshake was under way when a call began to ring is
/// told busy in its Bye. 4: typed text, and the intro says what the side
/// can receive ([`Intro::features`]). 5: the receiver tells the sender
/// what arrived ([`Message::Received`]), so any system's sender can see the
/// link. 6: a call whose link went silent resumes on a new connection
/// ([`Hello::resume`]).
pub const VERSION: u16 = 6;
/// [`Intro::features`]: this side can receive [`Message::Text`].
pub const FEATURE_TEXT: u32 = 1;
/// Most frames one [`Message::Received`] may report (a receiver sends one
/// per read that completed frames, and a read completes a few at most).
pub const MAX_ARRIVALS: usize = 32;
/// Largest text message, in bytes of UTF-8 (a longer one is refused).
pub const MAX_TEXT_BYTES: usize = 2048;
/// Largest text message, in characters.
pub const MAX_TEXT_CHARS: usize = 500;
/// Characters of one grapheme kept (a letter and its accents); a string of
/// combining marks piled on one letter is cut to this.
const MAX_GRAPHEME_CHARS: usize = 4;
/// Largest message after the handshake, in bytes. A 4K JPEG at quality 95 is
/// about 3 MiB; raw video never travels, so 8 MiB leaves room without
/// letting a peer make us hold much.
pub const MAX_MESSAGE_LEN: u64 = 8 * 1024 * 1024;
/// Largest Hello, in bytes: a Hello is a few dozen bytes plus a host name.
pub const MAX_HELLO_LEN: u64 = 4096;
/// Largest frame side we accept or send, in pixels (4K UHD is 3840x2160).
pub const MAX_DIMENSION: u32 = 4096;
/// Bytes of the length prefix.
pub const LEN_PREFIX: usize = 8;
/// Longest peer name shown, in characters (a DNS label is at most 63).
pub const MAX_NAME_CHARS: usize = 32;

/// The first message each way, in clear (it is the Noise prologue, so
/// tampering with it breaks the handshake).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Always [`MAGIC`].
    pub magic: [u8; 8],
    /// Always [`VERSION`] for this build.
    pub version: u16,
    /// The sender's commitment to its nonce for the code.
    pub commitment: [u8; 32],
    /// From a listener already in a call: nothing follows, the connection
    /// closes. (Unauthenticated, like a refused connection: a stranger who
    /// can forge it could as well cut the connection.)
    pub busy: bool,
    /// From a caller resuming a call: the id of its ticket (see
    /// `secure::Ticket`), which names the call; the resumption's Noise
    /// handshake follows instead of the call's.
    pub resume: Option<[u8; 32]>,
}

impl Hello {
    pub fn new(commitment: [u8; 32]) -> Self {
        Hello {
            magic: MAGIC,
            version: VERSION,
            commitment,
            busy: false,
            resume: None,
        }
    }

    /// A caller's first word when it resumes the call named `id`.
    pub fn resuming(id: [u8; 32]) -> Self {
        Hello {
            resume: Some(id),
            ..Hello::new([0; 32])
        }
    }

    /// A listener's answer while it is in a call.
    pub fn busy() -> Self {
        Hello {
            busy: true,
            ..Hello::new([0; 32])
        }
    }
}

/// Who a side is and what it sends, exchanged inside the encrypted handshake.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Intro {
    /// The sender's host name, for the window title and log lines.
    pub name: String,
    /// Size of the video the sender will send (0x0 when it sends none).
    pub width: u32,
    /// See `width`.
    pub height: u32,
    /// Video formats this side sends and receives, preferred first.
    pub codecs: Vec<VideoFormat>,
    /// What else this side can receive, as bits ([`FEATURE_TEXT`]); bits
    /// a side does not know are ignored.
    pub features: u32,
}

impl Intro {
    /// Our intro, announcing video of `width`x`height` (0x0 for none).
    pub fn new(name: &str, width: u32, height: u32) -> Self {
        Intro {
            name: safe_name(name),
            width,
            height,
            codecs: vec![VideoFormat::Jpeg],
            features: FEATURE_TEXT,
        }
    }

    /// Whether this side can receive typed text.
    pub fn can_receive_text(&self) -> bool {
        self.features & FEATURE_TEXT != 0
    }

    /// The same, offering `codecs` (JPEG is always understood).
    pub fn with_codecs(mut self, codecs: &[VideoFormat]) -> Self {
        self.codecs = codecs.to_vec();
        self
    }
}

/// A peer's name made safe to print anywhere: letters, digits, `-`, `.` and
/// `_` of ASCII are kept (a host name needs no more); every other character
/// (spaces, colons, control, bidi and invisible ones, all of Unicode beyond
/// ASCII) becomes `_`, so a name can neither move the cursor nor pass itself
/// off as another line's text; at most [`MAX_NAME_CHARS`] characters.
pub fn safe_name(name: &str) -> String {
    let safe: String = name
        .chars()
        .take(MAX_NAME_CHARS)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.is_empty() {
        "peer".to_string()
    } else {
        safe
    }
}

/// Typed text from a peer made safe to show on a terminal or in a window:
/// control characters (escape sequences, carriage returns, tabs) and line
/// and paragraph separators become spaces; format characters (bidi overrides and isolates, zero-width
/// spaces and joiners, the byte-order mark, tags) go; each grapheme keeps
/// at most [`MAX_GRAPHEME_CHARS`] characters (a tower of combining marks is
/// cut); at most [`MAX_TEXT_CHARS`] characters in all. Letters of any
/// script, accents and emoji stay.
pub fn safe_text(text: &str) -> String {
    use unicode_segmentation::UnicodeSegmentation;
    let mut out = String::new();
    let mut count = 0;
    for grapheme in text.graphemes(true) {
        for c in grapheme
            .chars()
            .filter(|&c| !is_format(c))
            .take(MAX_GRAPHEME_CHARS)
        {
            if count == MAX_TEXT_CHARS {
                return out;
            }
            let breaks = c.is_control() || matches!(c, '\u{2028}' | '\u{2029}');
            out.push(if breaks { ' ' } else { c });
            count += 1;
        }
    }
    out
}

/// Unicode's format characters (category Cf) and the other invisible
/// ones that change how the text around them reads.
fn is_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF9}'..='\u{FFFB}'
        | '\u{0600}'..='\u{0605}' | '\u{06DD}' | '\u{070F}' | '\u{08E2}' | '\u{110BD}'
        | '\u{13430}'..='\u{1343F}' | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0000}'..='\u{E0FFF}')
}

/// The caller's last handshake payload: its SAS nonce, and its intro.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Finale {
    pub nonce: [u8; 32],
    pub intro: Intro,
}

/// How a frame's `data` is encoded.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoFormat {
    /// One baseline JPEG (JFIF) image.
    Jpeg,
    /// One H.264 access unit (Annex B), baseline profile.
    H264,
}

/// What a side sends, given what both offer: its own first choice that the
/// peer also offers, else JPEG (which every vidchat speaks).
pub fn choose_format(ours: &[VideoFormat], theirs: &[VideoFormat]) -> VideoFormat {
    ours.iter()
        .copied()
        .find(|f| theirs.contains(f))
        .unwrap_or(VideoFormat::Jpeg)
}

/// One encoded video frame.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Source frame number; increases, with gaps where frames were dropped.
    pub seq: u64,
    /// When the source delivered the frame, Unix microseconds of the sender's clock.
    pub capture_us: u64,
    /// Picture width in pixels; the decoded image must match.
    pub width: u32,
    /// Picture height in pixels; the decoded image must match.
    pub height: u32,
    /// Encoding of `data`.
    pub format: VideoFormat,
    /// An H.264 keyframe (always true for JPEG).
    pub keyframe: bool,
    /// Encoder quality (JPEG 1..=100; 0 for the camera's own JPEG), for the
    /// receiver's statistics.
    pub quality: u8,
    /// Time spent encoding, microseconds (0 when the camera's JPEG is passed on).
    pub encode_us: u32,
    /// The encoded picture.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// What the receiver saw of one frame, for the sender's view of the link
/// (as WebRTC's transport-wide feedback): how much of the stream had
/// arrived with it, when, and how fast its bytes came in.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// The frame's `seq`.
    pub seq: u64,
    /// Bytes of the connection received (from its first byte) by the read
    /// that completed the frame.
    pub received: u64,
    /// When that read came, the receiver's Unix microseconds.
    pub at_us: u64,
    /// Bytes of the frame that came after the read where it began, and how
    /// long they took (0 and 0 when it came in one read): the link's pace.
    pub spread_bytes: u32,
    pub spread_us: u32,
}

/// Why a side hung up, sent in [`Message::Bye`].
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByeReason {
    /// The person hung up (key, window closed, `--duration` reached).
    HungUp,
    /// The callee is in another call (sent instead of ringing to a caller
    /// whose handshake was under way when that call began).
    Busy,
}

/// Every message after the Hellos.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A video frame.
    Frame(Frame),
    /// Keep-alive and clock probe: `sent_us` is the sender's Unix microseconds.
    Ping { sent_us: u64 },
    /// Answer to a Ping: its `sent_us` echoed, and the answering side's clock.
    Pong { ping_sent_us: u64, peer_us: u64 },
    /// The sender is ending the call.
    Bye { reason: ByeReason },
    /// The sender paused (or resumed) its video; no frames come while paused.
    VideoPaused { paused: bool },
    /// The callee's answer, its first message: take the call or not.
    Answer { accepted: bool },
    /// The receiver lost the H.264 picture: send a keyframe.
    KeyframeRequest,
    /// The callee's nonce for the code, sent as it rings (its first
    /// message); it committed to it in its Hello.
    Reveal { nonce: [u8; 32] },
    /// The caller's person compared the code and said yes: its video
    /// follows (none may come before).
    Confirmed,
    /// A line the person typed (UTF-8, at most [`MAX_TEXT_BYTES`]); only
    /// to a peer whose intro has [`FEATURE_TEXT`].
    Text { text: String },
    /// Frames that arrived (at most [`MAX_ARRIVALS`]), oldest first.
    Received { frames: Vec<Arrival> },
}

/// What can be wrong with bytes from a peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A length prefix over the cap: refused before allocating.
    #[error("peer announced a {len}-byte message, over the {max}-byte limit")]
    TooLong { len: u64, max: u64 },
    /// The bytes of a message do not decode.
    #[error("peer sent a malformed message: {0}")]
    Malformed(#[source] Shared<bincode::ErrorKind>),
    /// The first message is not a vidchat Hello.
    #[error("not a vidchat peer ({0})")]
    NotVidchat(String),
    /// A vidchat peer of another protocol version.
    #[error(
        "peer speaks vidchat protocol v{theirs}, this is v{VERSION}: update both sides to the same release"
    )]
    Version { theirs: u16 },
    /// A frame too large or inconsistent to be a picture.
    #[error("peer sent a {width}x{height} frame, over the {MAX_DIMENSION}-pixel limit")]
    BadDimensions { width: u32, height: u32 },
    /// A report of more frames than one read completes.
    #[error("peer reported {count} frames received at once, over the {MAX_ARRIVALS} allowed")]
    TooManyArrivals { count: usize },
    /// The stream ended inside a message.
    #[error("connection closed in the middle of a message ({have} of {need} bytes)")]
    Truncated { have: usize, need: usize },
    /// Our own message would exceed the cap (a bug or an absurd setting).
    #[error("message of {len} bytes is over the {max}-byte limit")]
    OutgoingTooLong { len: u64, max: u64 },
}

impl From<bincode::Error> for WireError {
    fn from(e: bincode::Error) -> Self {
        WireError::Malformed(Shared::from_box(e))
    }
}

fn bincode_options(limit: u64) -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .with_limit(limit)
}

/// Appends the bincode of `msg` (no length prefix) to `out`, within `max` bytes.
pub fn encode_payload<T: Serialize>(msg: &T, max: u64, out: &mut Vec<u8>) -> Result<(), WireError> {
    let start = out.len();
    if let Err(e) = bincode_options(max).serialize_into(&mut *out, msg) {
        out.truncate(start);
        return Err(match *e {
            bincode::ErrorKind::SizeLimit => WireError::OutgoingTooLong { len: u64::MAX, max },
            _ => WireError::from(e),
        });
    }
    Ok(())
}

/// Appends a length prefix and `payload` to `out`.
pub fn frame(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Appends one length-prefixed message to `out` (unencrypted: tests only;
/// calls seal payloads with `secure` between these two steps).
#[cfg(test)]
pub fn encode<T: Serialize>(msg: &T, max: u64, out: &mut Vec<u8>) -> Result<(), WireError> {
    let mut payload = Vec::new();
    encode_payload(msg, max, &mut payload)?;
    frame(&payload, out);
    Ok(())
}

/// All a listener in a call says to a caller: a framed busy [`Hello`].
pub fn busy_answer() -> Result<Vec<u8>, WireError> {
    let mut payload = Vec::new();
    encode_payload(&Hello::busy(), MAX_HELLO_LEN, &mut payload)?;
    let mut out = Vec::new();
    frame(&payload, &mut out);
    Ok(out)
}

/// Decodes a payload of type `T` within `max` bytes.
pub fn decode<T: serde::de::DeserializeOwned>(payload: &[u8], max: u64) -> Result<T, WireError> {
    Ok(bincode_options(max).deserialize(payload)?)
}

/// Decodes a Hello payload: magic and version are checked first, so a peer
/// of another version gets a version error, not a parse error.
pub fn decode_hello(payload: &[u8]) -> Result<Hello, WireError> {
    #[derive(Deserialize)]
    struct Prefix {
        magic: [u8; 8],
        version: u16,
    }
    let prefix: Prefix = bincode_options(MAX_HELLO_LEN)
        .allow_trailing_bytes()
        .deserialize(payload)
        .map_err(|_| WireError::NotVidchat(describe_foreign(payload)))?;
    if prefix.magic != MAGIC {
        return Err(WireError::NotVidchat(describe_foreign(payload)));
    }
    if prefix.version != VERSION {
        return Err(WireError::Version {
            theirs: prefix.version,
        });
    }
    decode(payload, MAX_HELLO_LEN)
}

/// Decodes a message payload (no prefix) and checks what a type cannot.
pub fn decode_message(payload: &[u8]) -> Result<Message, WireError> {
    let msg: Message = decode(payload, MAX_MESSAGE_LEN)?;
    if let Message::Frame(f) = &msg
        && (f.width == 0 || f.height == 0 || f.width > MAX_DIMENSION || f.height > MAX_DIMENSION)
    {
        return Err(WireError::BadDimensions {
            width: f.width,
            height: f.height,
        });
    }
    if let Message::Received { frames } = &msg
        && frames.len() > MAX_ARRIVALS
    {
        return Err(WireError::TooManyArrivals {
            count: frames.len(),
        });
    }
    Ok(msg)
}

/// The protocol a non-vidchat peer seems to speak, from its first bytes.
pub fn known_protocol(bytes: &[u8]) -> Option<&'static str> {
    const HTTP: [&[u8]; 6] = [b"GET ", b"POST", b"HEAD", b"PUT ", b"OPTI", b"HTTP"];
    if HTTP.iter().any(|m| bytes.starts_with(m)) {
        return Some("it sent an HTTP request");
    }
    if bytes.starts_with(&[0x16, 0x03]) {
        return Some("it started a TLS handshake");
    }
    // The original sends a u64 length, then a pickle (protocol marker 0x80).
    if bytes.first() == Some(&0x80) || bytes.get(LEN_PREFIX) == Some(&0x80) {
        return Some("it sent a Python pickle, like the original vidchat");
    }
    None
}

/// What a non-vidchat peer seems to speak, or its first bytes.
pub fn describe_foreign(bytes: &[u8]) -> String {
    known_protocol(bytes).map_or_else(
        || {
            let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
            format!("its first bytes are {}", head.join(" "))
        },
        str::to_string,
    )
}

/// Where the decoder is in the stream.
#[derive(Debug, Clone, Copy)]
enum State {
    /// Waiting for a length prefix.
    Head,
    /// Waiting for a payload of this many bytes.
    Data(usize),
}

/// Reassembles length-prefixed payloads from a byte stream fed in arbitrary
/// pieces. Holds at most one message plus one read.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Start of the unread bytes in `buf`.
    pos: usize,
    state: State,
    max_len: u64,
}

impl FrameDecoder {
    /// A decoder that refuses payloads over `max_len` bytes.
    pub fn new(max_len: u64) -> Self {
        FrameDecoder {
            buf: Vec::new(),
            pos: 0,
            state: State::Head,
            max_len,
        }
    }

    /// Changes the cap (the handshake uses a small one).
    pub fn set_max_len(&mut self, max_len: u64) {
        self.max_len = max_len;
    }

    /// Bytes received and not yet returned as a payload.
    pub fn buffered(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    /// Appends bytes read from the peer.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete payload, `Ok(None)` until one is in.
    pub fn next_payload(&mut self) -> Result<Option<&[u8]>, WireError> {
        if let State::Head = self.state {
            let Some(head) = self.buffered().first_chunk::<LEN_PREFIX>() else {
                self.compact();
                return Ok(None);
            };
            let len = u64::from_le_bytes(*head);
            if len > self.max_len {
                return Err(WireError::TooLong {
                    len,
                    max: self.max_len,
                });
            }
            // `len <= max_len`, which fits in memory by construction.
            self.state = State::Data(len as usize);
            self.pos += LEN_PREFIX;
        }
        let State::Data(len) = self.state else {
            return Ok(None);
        };
        if self.buffered().len() < len {
            self.compact();
            return Ok(None);
        }
        let start = self.pos;
        self.pos += len;
        self.state = State::Head;
        Ok(self.buf.get(start..start + len))
    }

    /// Call at end of stream: an error if it cut a message short.
    pub fn finish(&self) -> Result<(), WireError> {
        let have = self.buffered().len();
        match self.state {
            State::Head if have == 0 => Ok(()),
            State::Head => Err(WireError::Truncated {
                have,
                need: LEN_PREFIX,
            }),
            State::Data(need) => Err(WireError::Truncated { have, need }),
        }
    }

    /// Moves unread bytes to the front once enough has been consumed, so the
    /// buffer stays about one message long.
    fn compact(&mut self) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64, len: usize) -> Message {
        Message::Frame(Frame {
            seq,
            capture_us: 1_700_000_000_000_000 + seq,
            width: 640,
            height: 480,
            format: VideoFormat::Jpeg,
            keyframe: true,
            quality: 75,
            encode_us: 1500,
            data: (0..len).map(|i| (i * 7 + seq as usize) as u8).collect(),
        })
    }

    fn stream_of(msgs: &[Message]) -> Vec<u8> {
        let mut out = Vec::new();
        for m in msgs {
            encode(m, MAX_MESSAGE_LEN, &mut out).unwrap();
        }
        out
    }

    /// Feeds `bytes` in pieces of the given sizes (cycled) and collects messages.
    fn feed(bytes: &[u8], sizes: &[usize]) -> Vec<Message> {
        let mut decoder = FrameDecoder::new(MAX_MESSAGE_LEN);
        let mut got = Vec::new();
        let mut rest = bytes;
        for &size in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (piece, tail) = rest.split_at(size.min(rest.len()));
            rest = tail;
            decoder.extend(piece);
            while let Some(payload) = decoder.next_payload().unwrap() {
                got.push(decode_message(payload).unwrap());
            }
        }
        decoder.finish().unwrap();
        got
    }

    fn sample() -> Vec<Message> {
        vec![
            frame(1, 3000),
            Message::Ping { sent_us: 5 },
            frame(2, 0),
            Message::Pong {
                ping_sent_us: 5,
                peer_us: 9,
            },
            frame(3, 70_000),
            Message::Bye {
                reason: ByeReason::HungUp,
            },
        ]
    }

    #[test]
    fn round_trip_layout_is_u64_le_length_then_bincode() {
        let msg = Message::Ping { sent_us: 0x0102 };
        let bytes = stream_of(std::slice::from_ref(&msg));
        // variant index 1 (u32) + u64 = 12 bytes of payload.
        assert_eq!(&bytes[..8], &12u64.to_le_bytes());
        assert_eq!(&bytes[8..12], &1u32.to_le_bytes());
        assert_eq!(&bytes[12..], &0x0102u64.to_le_bytes());
        assert_eq!(feed(&bytes, &[bytes.len()]), vec![msg]);
    }

    #[test]
    fn reassembles_one_byte_at_a_time() {
        let msgs = sample();
        assert_eq!(feed(&stream_of(&msgs), &[1]), msgs);
    }

    #[test]
    fn reassembles_random_chunks_and_many_per_read() {
        let msgs = sample();
        let bytes = stream_of(&msgs);
        let mut seed = 0x9e37_79b9u32;
        for _ in 0..50 {
            let sizes: Vec<usize> = (0..16)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    1 + seed as usize % 9000
                })
                .collect();
            assert_eq!(feed(&bytes, &sizes), msgs);
        }
        // All of them in a single read.
        assert_eq!(feed(&bytes, &[bytes.len()]), msgs);
    }

    #[test]
    fn over_cap_length_is_refused_from_the_prefix_alone() {
        for len in [MAX_MESSAGE_LEN + 1, 1 << 63, u64::MAX] {
            let mut decoder = FrameDecoder::new(MAX_MESSAGE_LEN);
            decoder.extend(&len.to_le_bytes());
            let err = decoder.next_payload().unwrap_err();
            assert!(
                matches!(err, WireError::TooLong { len: l, .. } if l == len),
                "{err}"
            );
            // Nothing was reserved for the announced payload.
            assert!(
                decoder.buf.capacity() < 1024,
                "capacity {}",
                decoder.buf.capacity()
            );
        }
    }

    #[test]
    fn cap_is_inclusive() {
        let mut decoder = FrameDecoder::new(16);
        decoder.extend(&16u64.to_le_bytes());
        decoder.extend(&[0; 16]);
        assert_eq!(decoder.next_payload().unwrap(), Some(&[0u8; 16][..]));
        decoder.extend(&17u64.to_le_bytes());
        assert!(matches!(
            decoder.next_payload(),
            Err(WireError::TooLong { len: 17, max: 16 })
        ));
        let mut decoder = FrameDecoder::new(16);
        decoder.extend(&0u64.to_le_bytes());
        assert_eq!(decoder.next_payload().unwrap(), Some(&[][..]));
    }

    #[test]
    fn encoder_enforces_the_same_cap() {
        let mut out = vec![1, 2, 3];
        let err = encode(&frame(1, 100), 50, &mut out).unwrap_err();
        assert!(matches!(err, WireError::OutgoingTooLong { .. }));
        assert_eq!(out, [1, 2, 3], "nothing appended on error");
    }

    #[test]
    fn truncated_stream_is_an_error() {
        let bytes = stream_of(&[frame(1, 500)]);
        for cut in [3, 8, 100, bytes.len() - 1] {
            let mut decoder = FrameDecoder::new(MAX_MESSAGE_LEN);
            decoder.extend(&bytes[..cut]);
            assert_eq!(decoder.next_payload().unwrap(), None);
            assert!(
                matches!(decoder.finish(), Err(WireError::Truncated { .. })),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn payload_that_lies_about_its_data_length_is_malformed() {
        // A Frame whose serde_bytes length claims more than the payload holds.
        let mut payload = Vec::new();
        encode(&frame(1, 10), MAX_MESSAGE_LEN, &mut payload).unwrap();
        let payload = &mut payload[8..];
        let data_len_at = payload.len() - 10 - 8;
        payload[data_len_at..data_len_at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            decode_message(payload),
            Err(WireError::Malformed(_))
        ));
    }

    #[test]
    fn frame_dimensions_are_checked() {
        for (w, h) in [(0, 480), (640, 0), (MAX_DIMENSION + 1, 10), (10, u32::MAX)] {
            let Message::Frame(mut f) = frame(1, 4) else {
                unreachable!()
            };
            (f.width, f.height) = (w, h);
            let bytes = stream_of(&[Message::Frame(f)]);
            assert!(matches!(
                decode_message(&bytes[8..]),
                Err(WireError::BadDimensions { .. })
            ));
        }
    }

    #[test]
    fn unknown_variant_is_malformed() {
        let mut payload = 99u32.to_le_bytes().to_vec();
        payload.extend_from_slice(&[0; 16]);
        assert!(matches!(
            decode_message(&payload),
            Err(WireError::Malformed(_))
        ));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut seed = 12345u64;
        for round in 0..2000 {
            let len = round % 300;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (seed >> 56) as u8
                })
                .collect();
            let _ = decode_message(&bytes);
            let _ = decode_hello(&bytes);
            let mut decoder = FrameDecoder::new(1024);
            decoder.extend(&bytes);
            while let Ok(Some(p)) = decoder.next_payload() {
                let _ = decode_message(p);
            }
        }
    }

    #[test]
    fn hello_checks_magic_then_version() {
        let mut out = Vec::new();
        let ours = Hello::new([7; 32]);
        encode(&ours, MAX_HELLO_LEN, &mut out).unwrap();
        assert_eq!(decode_hello(&out[8..]).unwrap(), ours);

        let other = Hello {
            version: VERSION + 1,
            ..ours.clone()
        };
        out.clear();
        encode(&other, MAX_HELLO_LEN, &mut out).unwrap();
        assert!(
            matches!(decode_hello(&out[8..]), Err(WireError::Version { theirs }) if theirs == VERSION + 1)
        );

        let stranger = Hello {
            magic: *b"SOMEONE!",
            ..ours
        };
        out.clear();
        encode(&stranger, MAX_HELLO_LEN, &mut out).unwrap();
        assert!(matches!(
            decode_hello(&out[8..]),
            Err(WireError::NotVidchat(_))
        ));
        assert!(
            matches!(decode_hello(b"GET / HTTP/1.1\r\n\r\n"), Err(WireError::NotVidchat(s)) if s.contains("HTTP"))
        );
    }

    #[test]
    fn typed_text_is_made_safe_to_show() {
        // Letters of any script stay, with their accents and emoji.
        let hello = "héllo, мир, 世界, γειά 👋";
        assert_eq!(safe_text(hello), hello);
        // An escape sequence cannot move the cursor or clear the screen.
        let escape = safe_text("\u{1b}[2J\u{1b}[Hcode: 111 111\r\u{7}");
        assert!(!escape.chars().any(char::is_control), "{escape:?}");
        assert!(escape.contains("code: 111 111"));
        // Bidi overrides, isolates and zero-width characters go.
        assert_eq!(
            safe_text("abc\u{202E}fed\u{2066}x\u{200B}y\u{FEFF}"),
            "abcfedxy"
        );
        // A tower of combining marks is cut to a few per letter.
        let zalgo = format!("a{}b", "\u{0301}".repeat(10_000));
        assert_eq!(safe_text(&zalgo).chars().count(), MAX_GRAPHEME_CHARS + 1);
        // And any text is at most MAX_TEXT_CHARS.
        assert_eq!(
            safe_text(&"x".repeat(1 << 20)).chars().count(),
            MAX_TEXT_CHARS
        );
    }

    #[test]
    fn peer_name_is_made_safe_to_print() {
        let evil = "evil\x1b[2J\x07host".repeat(20);
        let shown = safe_name(&evil);
        assert!(shown.chars().all(|c| c.is_ascii_graphic()), "{shown:?}");
        assert_eq!(shown.chars().count(), MAX_NAME_CHARS);
        assert_eq!(safe_name(""), "peer");
        assert_eq!(safe_name("laptop-a.local"), "laptop-a.local");
        // A name that poses as a code, with a right-to-left override.
        let posing = safe_name("x - code: 111 111 \u{202E}");
        assert_eq!(posing, "x_-_code__111_111__");
        assert!(!posing.contains("111 111"));
        assert_eq!(safe_name("caf\u{e9}\u{200b}"), "caf__");
        assert_eq!(Intro::new("a b", 0, 0).name, "a_b");
    }

    #[test]
    fn codec_negotiation_agrees_on_a_shared_format() {
        use VideoFormat::{H264, Jpeg};
        assert_eq!(choose_format(&[H264, Jpeg], &[H264, Jpeg]), H264);
        assert_eq!(choose_format(&[H264, Jpeg], &[Jpeg]), Jpeg);
        assert_eq!(choose_format(&[Jpeg], &[H264, Jpeg]), Jpeg);
        assert_eq!(
            choose_format(&[H264], &[]),
            Jpeg,
            "JPEG when nothing is shared"
        );
    }
}
