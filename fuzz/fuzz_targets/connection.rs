//! Fuzzes the real call protocol (`Connection`) wherever a peer's bytes
//! reach it:
//! - the input as a stranger's bytes to a listener (in two pieces, then
//!   the deadline and the close);
//! - the input as the encrypted handshake payloads a hostile peer that
//!   holds the keys could write: a callee's intro (message 2) to a caller,
//!   a caller's finale (message 3) to a callee;
//! - cut into messages, as what a callee seals and sends to a caller while
//!   the call rings (an Answer, a Reveal, anything), then what a peer that
//!   completed the handshake and was answered sends, with the clock moving
//!   on; whatever frames come out take the receiver's decode paths (JPEG,
//!   and H.264 with its parameter-set checks).
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use vidchat::call::ProtocolError;
use vidchat::codec;
use vidchat::codec::h264::H264Decoder;
use vidchat::net::connection::{Connection, Event, Role};
use vidchat::secure::StaticKey;
use vidchat::wire::{Intro, VideoFormat};

const T0_US: u64 = 1_800_000_000_000_000;

fn intro() -> Intro {
    Intro::new("fuzz", 64, 64).with_codecs(&[VideoFormat::H264, VideoFormat::Jpeg])
}

/// Takes every event, decoding frames as the receiver would.
fn drain(conn: &mut Connection, h264: &mut Option<H264Decoder>) {
    while let Some(event) = conn.poll_event() {
        let Event::Frame(frame) = event else { continue };
        let mut pixels = Vec::new();
        match frame.format {
            VideoFormat::Jpeg => {
                let _ =
                    codec::decode_jpeg_0rgb(&frame.data, frame.width, frame.height, &mut pixels);
            }
            VideoFormat::H264 => {
                if let Some(decoder) = h264.as_mut() {
                    let out = Some(&mut pixels);
                    if let Err(e) = decoder.decode_0rgb(&frame.data, frame.width, frame.height, out)
                    {
                        conn.picture_lost(ProtocolError::BadVideo(e));
                    }
                }
            }
        }
    }
}

/// Moves `from`'s bytes to `to` at `at`.
fn pass(from: &mut Connection, to: &mut Connection, at: Instant) {
    let mut bytes = Vec::new();
    from.take_outgoing(&mut bytes);
    to.handle_bytes(at, &bytes);
}

/// A caller and a callee, their Hellos and message 1 exchanged.
fn pair(key: &StaticKey, now: Instant) -> Option<(Connection, Connection)> {
    let caller = Connection::new(Role::Caller, intro(), key, now, T0_US).ok()?;
    let callee = Connection::new(Role::Callee, intro(), key, now, T0_US).ok()?;
    Some((caller, callee))
}

/// Runs the handshake both ways a few times over.
fn handshake(caller: &mut Connection, callee: &mut Connection, now: Instant) {
    for _ in 0..3 {
        pass(caller, callee, now);
        pass(callee, caller, now);
    }
}

/// Messages: a length byte, then that many bytes of plaintext.
fn messages(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    std::iter::from_fn(move || {
        let (&len, tail) = rest.split_first()?;
        let (msg, tail) = tail.split_at(usize::from(len).min(tail.len()));
        rest = tail;
        Some(msg)
    })
}

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let Ok(key) = StaticKey::generate() else {
        return;
    };
    let mut h264 = H264Decoder::new().ok();

    // A stranger at the door.
    let Ok(mut stranger) = Connection::new(Role::Callee, intro(), &key, now, T0_US) else {
        return;
    };
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    stranger.handle_bytes(now, &data[..split]);
    stranger.handle_bytes(now, &data[split..]);
    stranger.handle_timeout(now + Duration::from_secs(6));
    stranger.handle_closed();
    drain(&mut stranger, &mut h264);

    // A hostile callee's intro, and a hostile caller's finale.
    let Some((mut caller, mut callee)) = pair(&key, now) else {
        return;
    };
    callee.replace_handshake_payload(data.to_vec());
    handshake(&mut caller, &mut callee, now);
    drain(&mut caller, &mut h264);
    let Some((mut caller, mut callee)) = pair(&key, now) else {
        return;
    };
    caller.replace_handshake_payload(data.to_vec());
    handshake(&mut caller, &mut callee, now);
    callee.ring();
    pass(&mut callee, &mut caller, now);
    drain(&mut callee, &mut h264);

    // What a callee sends to a caller whose call rings.
    let Some((mut caller, mut callee)) = pair(&key, now) else {
        return;
    };
    handshake(&mut caller, &mut callee, now);
    let mut at = now;
    for msg in messages(data) {
        callee.send_raw(msg);
        at += Duration::from_millis(10);
        pass(&mut callee, &mut caller, at);
        caller.handle_timeout(at);
        drain(&mut caller, &mut h264);
    }

    // What an answered peer sends.
    let Some((mut peer, mut us)) = pair(&key, now) else {
        return;
    };
    handshake(&mut peer, &mut us, now);
    us.answer(now, true);
    pass(&mut us, &mut peer, now);
    // The caller's person says yes too: its frames may come.
    peer.confirm();
    let mut at = now;
    for msg in messages(data) {
        peer.send_raw(msg);
        at += Duration::from_millis(u64::try_from(msg.len()).unwrap_or(0) * 10);
        pass(&mut peer, &mut us, at);
        us.handle_timeout(at);
        drain(&mut us, &mut h264);
    }
    us.handle_closed();
    drain(&mut us, &mut h264);
});
