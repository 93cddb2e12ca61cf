//! The camera through nokhwa: listing devices and their formats, choosing a
//! format ourselves and asking for it `Exact`ly, and turning what the device
//! delivers (MJPEG, YUYV, NV12, RGB, grey) into RGB.
//!
//! A camera is read on its own thread, because `frame()` can block forever
//! on a stuck device. The capture thread waits on it with a watchdog: no
//! frame for [`STALL_TIMEOUT`] (or a read error, or an unplugged camera) and
//! the camera is reopened once; if that fails too the call goes on with a
//! "camera lost" card as video, at the asked frame rate, and the camera is
//! tried again every [`RETRY_EVERY`] for as long as the call lasts, so one
//! that comes back is picked up again. Broken frames (a truncated JPEG)
//! are skipped.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, channel, sync_channel};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use nokhwa::Camera;
use nokhwa::pixel_format::RgbFormat;
use nokhwa::utils::{
    ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType,
};

use super::{CameraChoice, CaptureConfig, FrameSource, Pacer, SourceInfo, card};
use crate::codec::{RgbImage, decode_jpeg_rgb, nv12_to_rgb, rgb_len, trim_jpeg, yuyv_to_rgb};

/// Silence after which a camera counts as stalled.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a lost camera is tried again.
pub const RETRY_EVERY: Duration = Duration::from_secs(2);
/// Broken frames in a row after which the camera counts as failed.
const MAX_BROKEN: u32 = 30;

/// A picture from the camera, converted, with the camera's own JPEG when it
/// sent one (trimmed and checked, for passthrough).
struct Grab {
    image: RgbImage,
    jpeg: Option<Vec<u8>>,
}

/// What the reader thread says.
enum Report {
    Frame(Grab),
    Failed(String),
}

/// A reader thread, opened and waiting for `start`.
struct Reader {
    reports: Receiver<Report>,
    start: Sender<()>,
    format: CameraFormat,
    name: String,
}

/// An open camera.
pub struct CameraSource {
    index: u32,
    config: CaptureConfig,
    size: (u32, u32),
    reader: Reader,
    reopened: bool,
    /// Lost: the card goes out at this pace, and the camera is tried again
    /// at `retry_at`.
    lost: Option<(Pacer, Instant)>,
    jpeg: Option<Vec<u8>>,
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

/// How long to wait for the person to allow camera access (macOS asks).
const PERMISSION_TIMEOUT: Duration = Duration::from_secs(60);

/// Asks the OS for camera access where it wants that (macOS; elsewhere
/// nokhwa answers yes at once), and waits for the answer.
fn camera_permission() -> Result<()> {
    let (tx, rx) = sync_channel(1);
    nokhwa::nokhwa_initialize(move |granted| {
        // Only the first answer matters; later ones have nobody to hear them.
        let _ = tx.try_send(granted);
    });
    match rx.recv_timeout(PERMISSION_TIMEOUT) {
        Ok(true) => Ok(()),
        // macOS asks on behalf of the terminal vidchat runs in.
        Ok(false) => Err(anyhow!(
            "camera access was denied; allow your terminal in System Settings > Privacy & Security > Camera, or use --source test"
        )),
        Err(_) => Err(anyhow!(
            "no answer to the camera access request within {} s",
            PERMISSION_TIMEOUT.as_secs()
        )),
    }
}

fn open_camera(index: u32) -> Result<Camera> {
    // A camera that is not there needs no permission to say so (macOS
    // lists its cameras without asking).
    if cfg!(target_os = "macos") && cameras().is_ok_and(|all| all.iter().all(|c| c.0 != index)) {
        return Err(anyhow!(
            "cannot open camera {index}: there is no such camera"
        ));
    }
    camera_permission()?;
    let any = RequestedFormat::new::<RgbFormat>(RequestedFormatType::None);
    Camera::new(CameraIndex::Index(index), any).map_err(|e| open_failed(index, &e.to_string()))
}

/// Windows's answer (E_ACCESSDENIED) when its privacy settings keep
/// desktop apps from the camera.
const WINDOWS_ACCESS_DENIED: &str = "0x80070005";

/// Why camera `index` did not open, and where to change that when the
/// system refused it.
fn open_failed(index: u32, error: &str) -> anyhow::Error {
    if error
        .to_ascii_uppercase()
        .contains(&WINDOWS_ACCESS_DENIED.to_ascii_uppercase())
    {
        anyhow!(
            "camera {index}: access denied; turn on \"Let desktop apps access your camera\" in Settings > Privacy & security > Camera, or use --source test"
        )
    } else {
        anyhow!("cannot open camera {index}: {error}")
    }
}

/// The cameras the system lists, by number, with their device files where
/// the system has them (V4L2 describes a camera as "... @ /dev/videoN").
fn cameras() -> Result<Vec<(u32, String, Option<PathBuf>)>> {
    let backend = nokhwa::native_api_backend().unwrap_or(ApiBackend::Auto);
    let cameras = nokhwa::query(backend).context("cannot list cameras")?;
    Ok(cameras
        .iter()
        .filter_map(|info| match *info.index() {
            CameraIndex::Index(index) => {
                let path = info.description().rsplit_once(" @ ").map(|(_, p)| p.into());
                Some((index, info.human_name(), path))
            }
            CameraIndex::String(_) => None,
        })
        .collect())
}

/// The number of the camera `choice` names.
fn find_camera(choice: &CameraChoice) -> Result<u32> {
    let wanted = match choice {
        CameraChoice::First => return Ok(0),
        CameraChoice::Index(index) => return Ok(*index),
        CameraChoice::Path(path) => path.to_string_lossy().into_owned(),
        CameraChoice::Name(name) => name.clone(),
    };
    let cameras = cameras()?;
    let same_file = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    let matching: Vec<_> = cameras
        .iter()
        .filter(|(_, name, path)| match choice {
            CameraChoice::Path(wanted) => path.as_deref().is_some_and(|p| same_file(p, wanted)),
            _ => name.to_lowercase().contains(&wanted.to_lowercase()),
        })
        .collect();
    let listing = || {
        cameras
            .iter()
            .map(|(index, name, _)| format!("{index} {}", printable(name)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match matching.as_slice() {
        [(index, ..)] => Ok(*index),
        [] if cameras.is_empty() => bail!("no camera matches {wanted:?}: this machine lists none"),
        [] => bail!(
            "no camera matches {wanted:?}; the cameras are: {}",
            listing()
        ),
        several => bail!(
            "{} cameras match {wanted:?}; name one by its number: {}",
            several.len(),
            listing()
        ),
    }
}

/// A camera's name without control characters (a device names itself).
fn printable(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).collect()
}

/// Opens camera `index` on its own thread, in the format closest to
/// `config`, and waits until it is open or has failed.
fn spawn_reader(index: u32, config: &CaptureConfig) -> Result<Reader> {
    let (ready_tx, ready_rx) = sync_channel(1);
    let (start, start_rx) = channel();
    let (reports_tx, reports) = sync_channel(1);
    let config = config.clone();
    thread::Builder::new()
        .name("camera".into())
        .spawn(move || read_camera(index, &config, ready_tx, start_rx, reports_tx))
        .context("cannot start the camera thread")?;
    let (format, name) = ready_rx
        .recv()
        .map_err(|_| anyhow!("the camera thread ended while opening camera {index}"))??;
    Ok(Reader {
        reports,
        start,
        format,
        name,
    })
}

fn open_in_format(index: u32, config: &CaptureConfig) -> Result<(Camera, CameraFormat)> {
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
    camera
        .set_camera_requset(RequestedFormat::new::<RgbFormat>(
            RequestedFormatType::Exact(chosen),
        ))
        .with_context(|| format!("camera {index} refused {chosen}"))?;
    Ok((camera, chosen))
}

/// The camera thread: opens, waits for the start, then reads frames until
/// nobody listens (or forever, if the device hangs: the thread is then
/// abandoned, which is why it owns nothing else).
fn read_camera(
    index: u32,
    config: &CaptureConfig,
    ready: SyncSender<Result<(CameraFormat, String)>>,
    start: Receiver<()>,
    reports: SyncSender<Report>,
) {
    let mut camera = match open_in_format(index, config) {
        Ok((camera, format)) => {
            let _ = ready.send(Ok((format, camera.info().human_name())));
            camera
        }
        Err(e) => return drop(ready.send(Err(e))),
    };
    if start.recv().is_err() {
        return;
    }
    if let Err(e) = camera.open_stream() {
        return drop(reports.send(Report::Failed(format!("cannot start streaming: {e}"))));
    }
    let mut broken = 0;
    loop {
        let report = match camera.frame() {
            Err(e) => Report::Failed(format!("stopped delivering: {e}")),
            Ok(buffer) => match convert(&buffer) {
                Ok(grab) => {
                    broken = 0;
                    Report::Frame(grab)
                }
                Err(_) if broken < MAX_BROKEN => {
                    broken += 1;
                    continue;
                }
                Err(e) => Report::Failed(format!("sends only broken frames ({e:#})")),
            },
        };
        let failed = matches!(report, Report::Failed(_));
        if reports.send(report).is_err() || failed {
            return;
        }
    }
}

/// Turns a camera buffer into RGB (and keeps a valid MJPEG frame as is).
fn convert(buffer: &nokhwa::Buffer) -> Result<Grab> {
    let (w, h) = (buffer.resolution().width(), buffer.resolution().height());
    let data = buffer.buffer();
    let mut image = RgbImage::default();
    let mut jpeg = None;
    match buffer.source_frame_format() {
        FrameFormat::MJPEG => {
            let whole = trim_jpeg(data).ok_or_else(|| anyhow!("camera sent a broken JPEG"))?;
            decode_jpeg_rgb(whole, &mut image)?;
            jpeg = Some(whole.to_vec());
        }
        FrameFormat::YUYV => yuyv_to_rgb(data, w, h, &mut image)?,
        FrameFormat::NV12 => nv12_to_rgb(data, w, h, &mut image)?,
        FrameFormat::RAWRGB => copy_rgb(data, w, h, &mut image, false)?,
        FrameFormat::RAWBGR => copy_rgb(data, w, h, &mut image, true)?,
        FrameFormat::GRAY => {
            let grey = data
                .get(..w as usize * h as usize)
                .ok_or_else(|| anyhow!("short grey frame"))?;
            image = RgbImage {
                width: w,
                height: h,
                data: grey.iter().flat_map(|&g| [g, g, g]).collect(),
            };
        }
    }
    Ok(Grab { image, jpeg })
}

/// Opens the camera `choice` names in the format closest to `config`.
pub(super) fn open(
    choice: &CameraChoice,
    config: &CaptureConfig,
) -> Result<(Box<dyn FrameSource>, SourceInfo)> {
    let index = find_camera(choice)?;
    let reader = spawn_reader(index, config)?;
    let chosen = reader.format;
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
    let info = SourceInfo {
        description: format!(
            "camera {index} ({}) {} {}x{}@{}",
            reader.name,
            fourcc(chosen.format()),
            chosen.width(),
            chosen.height(),
            chosen.frame_rate()
        ),
        width: chosen.width(),
        height: chosen.height(),
    };
    let size = (chosen.width(), chosen.height());
    let source = CameraSource {
        index,
        config: config.clone(),
        size,
        reader,
        reopened: false,
        lost: None,
        jpeg: None,
    };
    Ok((Box::new(source), info))
}

impl CameraSource {
    /// The camera stalled or failed: reopen it once, then carry on with a
    /// "camera lost" card. True when a new reader is running.
    /// Reopens the camera once after it failed; true when that worked.
    fn recover(&mut self, why: &str) -> bool {
        if self.reopened {
            return false;
        }
        self.reopened = true;
        eprintln!("camera {} {why}; reopening it", self.index);
        match spawn_reader(self.index, &self.config) {
            Ok(reader) if reader.start.send(()).is_ok() => {
                self.reader = reader;
                true
            }
            Ok(_) => false,
            Err(e) => {
                eprintln!("camera {} does not reopen: {e:#}", self.index);
                false
            }
        }
    }

    /// The camera is lost: a frame from it if it came back, else the card,
    /// at the asked pace; every [`RETRY_EVERY`] the camera is opened again.
    fn while_lost(&mut self, out: &mut RgbImage) -> Result<()> {
        let Some((pacer, retry_at)) = self.lost.as_mut() else {
            return Ok(());
        };
        pacer.wait();
        if let Ok(Report::Frame(grab)) = self.reader.reports.try_recv() {
            eprintln!("camera {} is back", self.index);
            self.lost = None;
            self.reopened = false;
            *out = grab.image;
            self.jpeg = grab.jpeg;
            return Ok(());
        }
        if Instant::now() >= *retry_at {
            *retry_at = Instant::now() + RETRY_EVERY;
            // Quietly: it fails every time until the camera is back.
            if let Ok(reader) = spawn_reader(self.index, &self.config)
                && reader.start.send(()).is_ok()
            {
                self.reader = reader;
            }
        }
        *out = card(self.size.0, self.size.1, "camera lost");
        self.jpeg = None;
        Ok(())
    }
}

impl FrameSource for CameraSource {
    fn start(&mut self) -> Result<()> {
        self.reader
            .start
            .send(())
            .map_err(|_| anyhow!("the camera thread ended"))
    }

    fn next_frame(&mut self, out: &mut RgbImage) -> Result<()> {
        if self.lost.is_some() {
            return self.while_lost(out);
        }
        loop {
            let why = match self.reader.reports.recv_timeout(STALL_TIMEOUT) {
                Ok(Report::Frame(grab)) => {
                    *out = grab.image;
                    self.jpeg = grab.jpeg;
                    return Ok(());
                }
                Ok(Report::Failed(why)) => why,
                Err(RecvTimeoutError::Timeout) => {
                    format!("stalled (no frame for {} s)", STALL_TIMEOUT.as_secs())
                }
                Err(RecvTimeoutError::Disconnected) => "stopped".to_string(),
            };
            if !self.recover(&why) {
                eprintln!(
                    "camera {} lost ({why}); the call goes on without video, and the camera is tried again every {} s",
                    self.index,
                    RETRY_EVERY.as_secs()
                );
                self.lost = Some((Pacer::new(self.config.fps), Instant::now() + RETRY_EVERY));
                return self.while_lost(out);
            }
        }
    }

    fn take_jpeg(&mut self) -> Option<Vec<u8>> {
        self.jpeg.take()
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
    let cameras = cameras()?;
    if cameras.is_empty() {
        println!("no cameras found (use `--source test` for a test pattern)");
        return Ok(());
    }
    for (index, name, path) in cameras {
        let path = path
            .map(|p| format!(" ({})", p.display()))
            .unwrap_or_default();
        println!("camera {index}: {}{path}", printable(&name));
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

    #[test]
    fn a_camera_windows_keeps_from_apps_says_where_to_allow_it() {
        // As nokhwa words Media Foundation's refusal (windows-rs's Display).
        let denied = open_failed(0, "Could not open device 0: Access is denied. (0x80070005)");
        assert!(
            denied
                .to_string()
                .contains("Settings > Privacy & security > Camera"),
            "{denied}"
        );
        let missing = open_failed(3, "Could not open device 3: No device");
        assert_eq!(
            missing.to_string(),
            "cannot open camera 3: Could not open device 3: No device"
        );
    }
}
