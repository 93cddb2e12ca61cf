//! `.y4m` (YUV4MPEG2) files as a source: 8-bit 4:2:0, played at the call's
//! frame rate and looped at the end. The header is checked against our size
//! limits before the `y4m` crate sizes its buffers from it.

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::{FrameSource, Pacer};
use crate::codec::{RgbImage, i420_to_rgb};
use crate::wire::MAX_DIMENSION;

/// Longest header line we read, in bytes (real ones are under 100).
const MAX_HEADER: u64 = 1024;

type Reader = std::io::Chain<Cursor<Vec<u8>>, BufReader<File>>;

/// An open `.y4m` file.
pub struct Y4mFile {
    path: PathBuf,
    decoder: y4m::Decoder<Reader>,
    pacer: Pacer,
}

/// Reads the header line and checks the size fields, then hands the header
/// back in front of the rest of the file.
fn checked_reader(path: &Path) -> Result<Reader> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = BufReader::new(file);
    let mut header = Vec::new();
    (&mut reader)
        .take(MAX_HEADER)
        .read_until(b'\n', &mut header)?;
    if !header.starts_with(b"YUV4MPEG2 ") || !header.ends_with(b"\n") {
        bail!("{} is not a YUV4MPEG2 (.y4m) file", path.display());
    }
    for field in header.split(|&b| b == b' ' || b == b'\n') {
        if let [b'W' | b'H', digits @ ..] = field {
            let value = std::str::from_utf8(digits)
                .ok()
                .and_then(|s| s.parse::<u32>().ok());
            if !matches!(value, Some(1..=MAX_DIMENSION)) {
                bail!(
                    "{}: frame size field {:?} is outside 1..={MAX_DIMENSION}",
                    path.display(),
                    String::from_utf8_lossy(field)
                );
            }
        }
    }
    Ok(Cursor::new(header).chain(reader))
}

fn open_decoder(path: &Path) -> Result<y4m::Decoder<Reader>> {
    let limits = y4m::Limits {
        bytes: 3 * (MAX_DIMENSION as usize).pow(2),
    };
    let decoder = y4m::Decoder::new_with_limits(checked_reader(path)?, limits)
        .map_err(|e| anyhow::anyhow!("{}: bad y4m header: {e:?}", path.display()))?;
    match decoder.get_colorspace() {
        y4m::Colorspace::C420
        | y4m::Colorspace::C420jpeg
        | y4m::Colorspace::C420paldv
        | y4m::Colorspace::C420mpeg2 => Ok(decoder),
        other => bail!(
            "{}: colour space {other:?} is not supported; convert to 8-bit 4:2:0 (ffmpeg -pix_fmt yuv420p)",
            path.display()
        ),
    }
}

impl Y4mFile {
    pub(super) fn open(path: &Path, pacer: Pacer) -> Result<Self> {
        let decoder = open_decoder(path)?;
        Ok(Y4mFile {
            path: path.to_path_buf(),
            decoder,
            pacer,
        })
    }

    /// Frame size from the header.
    pub fn size(&self) -> (u32, u32) {
        // Both checked against MAX_DIMENSION in `checked_reader`.
        (
            self.decoder.get_width() as u32,
            self.decoder.get_height() as u32,
        )
    }
}

impl FrameSource for Y4mFile {
    fn next_frame(&mut self, out: &mut RgbImage) -> Result<()> {
        self.pacer.wait();
        let (w, h) = self.size();
        for attempt in 0..2 {
            match self.decoder.read_frame() {
                Ok(frame) => {
                    return Ok(i420_to_rgb(
                        frame.get_y_plane(),
                        frame.get_u_plane(),
                        frame.get_v_plane(),
                        w,
                        h,
                        out,
                    )?);
                }
                Err(y4m::Error::EOF) if attempt == 0 => self.decoder = open_decoder(&self.path)?,
                Err(e) => bail!("{}: cannot read frame: {e:?}", self.path.display()),
            }
        }
        bail!("{}: holds no frames", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write_y4m(name: &str, header: &str, frames: &[u8]) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("vidchat-test-{}-{name}.y4m", std::process::id()));
        let mut f = File::create(&path).unwrap();
        f.write_all(header.as_bytes()).unwrap();
        f.write_all(frames).unwrap();
        path
    }

    #[test]
    fn reads_and_loops() {
        // Two 4x2 frames: Y=16 (black), then Y=235 (white); chroma neutral.
        let frame = |y: u8| [b"FRAME\n".to_vec(), vec![y; 8], vec![128; 4]].concat();
        let path = write_y4m(
            "loop",
            "YUV4MPEG2 W4 H2 F30:1 C420jpeg\n",
            &[frame(16), frame(235)].concat(),
        );
        let mut file = Y4mFile::open(&path, Pacer::new(1000)).unwrap();
        assert_eq!(file.size(), (4, 2));
        let mut img = RgbImage::default();
        let mut firsts = Vec::new();
        for _ in 0..5 {
            file.next_frame(&mut img).unwrap();
            firsts.push(img.data[0]);
        }
        assert!(firsts[0] < 10 && firsts[1] > 245, "{firsts:?}");
        assert_eq!(firsts[2], firsts[0], "looped back to the first frame");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn rejects_hostile_headers() {
        for (name, header) in [
            ("huge", "YUV4MPEG2 W99999999999 H99999999999 F30:1\n"),
            ("over", "YUV4MPEG2 W5000 H10 F30:1\n"),
            ("zero", "YUV4MPEG2 W0 H10 F30:1\n"),
            ("notyuv", "RIFF....\n"),
            ("444", "YUV4MPEG2 W4 H2 F30:1 C444\n"),
        ] {
            let path = write_y4m(name, header, &[]);
            assert!(
                Y4mFile::open(&path, Pacer::new(30)).is_err(),
                "{name} accepted"
            );
            std::fs::remove_file(path).unwrap();
        }
        let path = write_y4m("empty", "YUV4MPEG2 W4 H2 F30:1\n", &[]);
        let mut file = Y4mFile::open(&path, Pacer::new(1000)).unwrap();
        assert!(file.next_frame(&mut RgbImage::default()).is_err());
        std::fs::remove_file(path).unwrap();
    }
}
