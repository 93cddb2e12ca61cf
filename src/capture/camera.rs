//! The camera through nokhwa: listing devices and their formats, choosing a
//! format ourselves and asking for it `Exact`ly, and turning what the device
//! delivers (MJPEG, YUYV, NV12, RGB, grey) into RGB.

use anyhow::{Context, Result, anyhow};
use nokhwa::Camera;
use nokhwa::pixel_format::RgbFormat;
use nokhwa::utils::{
    ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType,
};

use super::{CaptureConfig, FrameSource, SourceInfo};
use crate::codec::{RgbImage, decode_jpeg_rgb, nv12_to_rgb, rgb_len, trim_jpeg, yuyv_to_rgb};

/// An open camera, streaming.
pub struct CameraSource {
    camera: Camera,
}

/// Our preference among the formats a camera offers: MJPEG is small on the
/// USB bus and reaches full frame rates; YUYV and NV12 cost no decode.
fn format_rank(format: FrameFormat) -> u32 {
    match format {
        FrameFormat::MJPEG => 0,
        FrameFormat::YUYV => 1,
        FrameFormat::NV12 => 2,
        FrameFormat::RAWRGB => 3,
        FrameFormat::GRAY => 4,
        _ => 5,
    }
}

/// Picks the offered format closest to the request: the exact size if it
/// exists (else the nearest in pixel count), then the frame rate nearest to
/// and not below the request, then the preferred pixel format.
pub fn choose_format(
    offered: &[CameraFormat],
    width: u32,
    height: u32,
    fps: u32,
) -> Option<CameraFormat> {
    let want_px = width as i64 * height as i64;
    offered
        .iter()
        .copied()
        .filter(|f| format_rank(f.format()) < 5)
        .min_by_key(|f| {
            let size_miss = (f.width() as i64 * f.height() as i64 - want_px).abs();
            let exact = !(f.width() == width && f.height() == height);
            let fps_miss = if f.frame_rate() >= fps {
                f.frame_rate() - fps
            } else {
                1000 + fps - f.frame_rate()
            };
            (exact, size_miss, fps_miss, format_rank(f.format()))
        })
}

fn fourcc(format: FrameFormat) -> &'static str {
    match format {
        FrameFormat::MJPEG => "MJPEG",
        FrameFormat::YUYV => "YUYV",
        FrameFormat::NV12 => "NV12",
        FrameFormat::GRAY => "GRAY",
        FrameFormat::RAWRGB => "RGB3",
        FrameFormat::RAWBGR => "BGR3",
    }
}

fn open_camera(index: u32) -> Result<Camera> {
    let any = RequestedFormat::new::<RgbFormat>(RequestedFormatType::None);
    Camera::new(CameraIndex::Index(index), any).map_err(|e| {
        anyhow!("no camera {index} ({e}); run `vidchat devices` to list cameras, or use `--source test` for a test pattern")
    })
}

/// Opens camera `index` in the format closest to `config`.
pub(super) fn open(
    index: u32,
    config: &CaptureConfig,
) -> Result<(Box<dyn FrameSource>, SourceInfo)> {
    let mut camera = open_camera(index)?;
    let offered = camera
        .compatible_camera_formats()
        .context("camera lists no formats")?;
    let chosen =
        choose_format(&offered, config.width, config.height, config.fps).ok_or_else(|| {
            anyhow!(
                "camera {index} offers no format vidchat can read (MJPEG, YUYV, NV12, RGB, grey)"
            )
        })?;
    if (chosen.width(), chosen.height(), chosen.frame_rate())
        != (config.width, config.height, config.fps)
    {
        eprintln!(
            "camera {index} does not offer {}x{}@{}; using {}x{}@{}",
            config.width,
            config.height,
            config.fps,
            chosen.width(),
            chosen.height(),
            chosen.frame_rate()
        );
    }
    camera
        .set_camera_requset(RequestedFormat::new::<RgbFormat>(
            RequestedFormatType::Exact(chosen),
        ))
        .with_context(|| format!("camera {index} refused {chosen}"))?;
    let info = SourceInfo {
        description: format!(
            "camera {index} ({}) {} {}x{}@{}",
            camera.info().human_name(),
            fourcc(chosen.format()),
            chosen.width(),
            chosen.height(),
            chosen.frame_rate()
        ),
        width: chosen.width(),
        height: chosen.height(),
    };
    Ok((Box::new(CameraSource { camera }), info))
}

impl FrameSource for CameraSource {
    fn start(&mut self) -> Result<()> {
        self.camera.open_stream().context("cannot start the camera")
    }

    fn next_frame(&mut self, out: &mut RgbImage) -> Result<()> {
        let buffer = self.camera.frame().context("camera stopped delivering")?;
        let (w, h) = (buffer.resolution().width(), buffer.resolution().height());
        let data = buffer.buffer();
        match buffer.source_frame_format() {
            FrameFormat::MJPEG => {
                let jpeg = trim_jpeg(data).ok_or_else(|| anyhow!("camera sent a broken JPEG"))?;
                decode_jpeg_rgb(jpeg, out)?;
            }
            FrameFormat::YUYV => yuyv_to_rgb(data, w, h, out)?,
            FrameFormat::NV12 => nv12_to_rgb(data, w, h, out)?,
            FrameFormat::RAWRGB => copy_rgb(data, w, h, out, false)?,
            FrameFormat::RAWBGR => copy_rgb(data, w, h, out, true)?,
            FrameFormat::GRAY => {
                let px = w as usize * h as usize;
                let grey = data.get(..px).ok_or_else(|| anyhow!("short grey frame"))?;
                out.width = w;
                out.height = h;
                out.data = grey.iter().flat_map(|&g| [g, g, g]).collect();
            }
        }
        Ok(())
    }
}

fn copy_rgb(data: &[u8], w: u32, h: u32, out: &mut RgbImage, bgr: bool) -> Result<()> {
    let src = data
        .get(..rgb_len(w, h))
        .ok_or_else(|| anyhow!("short RGB frame"))?;
    out.width = w;
    out.height = h;
    out.data.clear();
    out.data.extend_from_slice(src);
    if bgr {
        out.data.chunks_exact_mut(3).for_each(|px| px.swap(0, 2));
    }
    Ok(())
}

/// Prints the cameras found and the formats each offers.
pub fn list_devices() -> Result<()> {
    let backend = nokhwa::native_api_backend().unwrap_or(ApiBackend::Auto);
    let cameras = nokhwa::query(backend).context("cannot list cameras")?;
    if cameras.is_empty() {
        println!("no cameras found (use `--source test` for a test pattern)");
        return Ok(());
    }
    for info in cameras {
        let CameraIndex::Index(index) = *info.index() else {
            continue;
        };
        println!("camera {index}: {}", info.human_name());
        let formats = open_camera(index).and_then(|mut c| Ok(c.compatible_camera_formats()?));
        match formats {
            Err(e) => println!("    cannot read its formats: {e:#}"),
            Ok(mut formats) => {
                formats.sort_by_key(|f| {
                    (
                        format_rank(f.format()),
                        std::cmp::Reverse(f.width() * f.height()),
                        std::cmp::Reverse(f.frame_rate()),
                    )
                });
                for f in formats {
                    println!(
                        "    {:<6} {:>4}x{:<4} {:>3} fps",
                        fourcc(f.format()),
                        f.width(),
                        f.height(),
                        f.frame_rate()
                    );
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(w: u32, h: u32, f: FrameFormat, fps: u32) -> CameraFormat {
        CameraFormat::new_from(w, h, f, fps)
    }

    #[test]
    fn prefers_exact_size_then_fps_then_mjpeg() {
        let offered = [
            fmt(640, 480, FrameFormat::YUYV, 30),
            fmt(640, 480, FrameFormat::MJPEG, 30),
            fmt(640, 480, FrameFormat::MJPEG, 15),
            fmt(1280, 720, FrameFormat::MJPEG, 30),
        ];
        assert_eq!(choose_format(&offered, 640, 480, 30), Some(offered[1]));
        assert_eq!(choose_format(&offered, 1280, 720, 30), Some(offered[3]));
        // 800x600 is not offered: the nearest size wins.
        assert_eq!(choose_format(&offered, 800, 600, 30), Some(offered[1]));
        assert_eq!(choose_format(&[], 640, 480, 30), None);
    }
}
