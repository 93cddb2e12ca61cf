//! Fuzzes everything a peer's bytes reach after decryption: the framing
//! decoder (fed in two pieces), the message and Hello decoders, and the JPEG
//! path a Frame's data takes (size checks, decode to pixels), plus the
//! camera-side JPEG trimming and decoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vidchat::codec::{self, RgbImage};
use vidchat::wire::{self, FrameDecoder, Message};

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let mut decoder = FrameDecoder::new(1 << 20);
    for piece in [&data[..split], &data[split..]] {
        decoder.extend(piece);
        while let Ok(Some(payload)) = decoder.next_payload() {
            if let Ok(Message::Frame(frame)) = wire::decode_message(payload) {
                let mut pixels = Vec::new();
                let _ = codec::decode_jpeg_0rgb(&frame.data, frame.width, frame.height, &mut pixels);
            }
        }
    }
    let _ = decoder.finish();
    let _ = wire::decode_hello(data);
    let _ = wire::decode_message(data);
    if let Some(jpeg) = codec::trim_jpeg(data) {
        let _ = codec::decode_jpeg_rgb(jpeg, &mut RgbImage::default());
    }
});
