//! `--record FILE.y4m`: the peer's video as the window shows it, one
//! picture per frame shown, so its quality can be measured against the
//! source (`bench/analyze.py ssim`). The file is at the largest size the
//! peer announced; a frame sent smaller (a thin link) is scaled up to it,
//! as the window does. Each frame's header carries the frame's source
//! number (`FRAME Xseq=N`), so a picture is compared with the one it was
//! made from.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};
use yuv::{
    YuvChromaSubsampling, YuvConversionMode, YuvPlanarImageMut, YuvRange, YuvStandardMatrix,
};

use super::RemoteFrame;
use crate::codec::RgbImage;
use crate::codec::scale::Scaler;

/// See the module documentation.
pub struct Recorder {
    out: BufWriter<File>,
    width: u32,
    height: u32,
    scaler: Scaler,
    rgb: RgbImage,
    scaled: RgbImage,
}

impl Recorder {
    /// A new y4m file at `path` of `width`x`height` pictures at `fps`.
    pub fn create(path: &Path, (width, height): (u32, u32), fps: u32) -> Result<Recorder> {
        let file = File::create(path)
            .with_context(|| format!("cannot create the recording {}", path.display()))?;
        let mut out = BufWriter::new(file);
        writeln!(
            out,
            "YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg"
        )?;
        Ok(Recorder {
            out,
            width,
            height,
            scaler: Scaler::default(),
            rgb: RgbImage::new(2, 2),
            scaled: RgbImage::new(2, 2),
        })
    }

    /// Writes `frame` (before its pixels go to the window).
    pub fn record(&mut self, frame: &RemoteFrame) -> Result<()> {
        self.rgb.width = frame.width;
        self.rgb.height = frame.height;
        self.rgb.data.clear();
        self.rgb.data.extend(frame.pixels.iter().flat_map(|&p| {
            let [_, r, g, b] = p.to_be_bytes();
            [r, g, b]
        }));
        let image = if (frame.width, frame.height) == (self.width, self.height) {
            &self.rgb
        } else {
            self.scaler
                .scale(&self.rgb, self.width, self.height, &mut self.scaled)?;
            &self.scaled
        };
        let mut yuv =
            YuvPlanarImageMut::alloc(self.width, self.height, YuvChromaSubsampling::Yuv420);
        yuv::rgb_to_yuv420(
            &mut yuv,
            &image.data,
            self.width * 3,
            YuvRange::Full,
            YuvStandardMatrix::Bt601,
            YuvConversionMode::Balanced,
        )
        .map_err(|e| anyhow::anyhow!("cannot convert a picture to record: {e}"))?;
        writeln!(self.out, "FRAME Xseq={}", frame.seq)?;
        self.out.write_all(yuv.y_plane.borrow())?;
        self.out.write_all(yuv.u_plane.borrow())?;
        self.out.write_all(yuv.v_plane.borrow())?;
        Ok(())
    }

    /// Writes out what is buffered.
    pub fn finish(mut self) -> Result<()> {
        self.out.flush().context("cannot finish the recording")
    }
}
