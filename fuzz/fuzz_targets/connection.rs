//! Fuzzes the real call protocol (`Connection`) from both sides of the
//! handshake: the input as a stranger's bytes to a listener (in two pieces,
//! then the deadline and the close), and, cut into messages, as what a peer
//! that completed the handshake and was answered seals and sends, with the
//! clock moving on; whatever frames come out take the receiver's decode path.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use vidchat::codec;
use vidchat::net::connection::{Connection, Event, Role};
use vidchat::secure::StaticKey;
use vidchat::wire::{Intro, VideoFormat};

const T0_US: u64 = 1_800_000_000_000_000;

fn intro() -> Intro {
    Intro::new("fuzz", 64, 64).with_codecs(&[VideoFormat::H264, VideoFormat::Jpeg])
}

fn drain(conn: &mut Connection) {
    while let Some(event) = conn.poll_event() {
        if let Event::Frame(frame) = event {
            let mut pixels = Vec::new();
            let _ = codec::decode_jpeg_0rgb(&frame.data, frame.width, frame.height, &mut pixels);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let Ok(key) = StaticKey::generate() else {
        return;
    };
    let Ok(mut stranger) = Connection::new(Role::Callee, intro(), &key, now, T0_US) else {
        return;
    };
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    stranger.handle_bytes(now, &data[..split]);
    stranger.handle_bytes(now, &data[split..]);
    stranger.handle_timeout(now + Duration::from_secs(6));
    stranger.handle_closed();
    drain(&mut stranger);

    let (Ok(mut peer), Ok(mut us)) = (
        Connection::new(Role::Caller, intro(), &key, now, T0_US),
        Connection::new(Role::Callee, intro(), &key, now, T0_US),
    ) else {
        return;
    };
    let mut bytes = Vec::new();
    let mut pass = |from: &mut Connection, to: &mut Connection, at: Instant| {
        from.take_outgoing(&mut bytes);
        to.handle_bytes(at, &bytes);
    };
    for _ in 0..3 {
        pass(&mut peer, &mut us, now);
        pass(&mut us, &mut peer, now);
    }
    us.answer(now, true);
    pass(&mut us, &mut peer, now);
    // The caller's person says yes too: its frames may come.
    peer.confirm();
    // Messages: a length byte, then that many bytes of plaintext.
    let mut rest = data;
    let mut at = now;
    while let Some((&len, tail)) = rest.split_first() {
        let (msg, tail) = tail.split_at(usize::from(len).min(tail.len()));
        rest = tail;
        peer.send_raw(msg);
        at += Duration::from_millis(u64::from(len) * 10);
        pass(&mut peer, &mut us, at);
        us.handle_timeout(at);
        us.picture_ok();
        drain(&mut us);
    }
    us.handle_closed();
    drain(&mut us);
});
