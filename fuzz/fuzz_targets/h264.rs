//! Fuzzes the H.264 receive path: bytes a peer's Frame could carry, fed to
//! the decoder as successive frames (split at the input's first byte),
//! as the receiver does after the wire layer's size checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vidchat::codec::h264::H264Decoder;

fuzz_target!(|data: &[u8]| {
    let Ok(mut decoder) = H264Decoder::new() else { return };
    let split = data.first().map_or(0, |&b| usize::from(b) * 16).min(data.len());
    let mut pixels = Vec::new();
    for frame in [&data[..split], &data[split..]] {
        let _ = decoder.decode_0rgb(frame, 160, 96, Some(&mut pixels));
    }
});
