//! A fake V4L2 camera for tests: it makes `/dev/video0` appear and answer
//! like a UVC webcam by interposing the C library calls that nokhwa's V4L2
//! path (the `v4l` crate) makes: `open`, `close`, `ioctl` (which `v4l`
//! makes through `syscall`), `mmap`, `poll`, and `opendir`/`readdir64`/`closedir` for the device listing. Every other
//! file descriptor and directory goes to the real libc (`dlsym(RTLD_NEXT)`).
//!
//! Linked into a test binary (as an rlib) its symbols take the place of
//! libc's in that process; built as a cdylib it works with `LD_PRELOAD`:
//!
//!     cargo build -p fakecam
//!     LD_PRELOAD=target/debug/libfakecam.so vidchat loopback
//!
//! What it serves is set with [`configure`] or, under `LD_PRELOAD`, with
//! `FAKECAM_FORMATS` (MJPG,YUYV,NV12), `FAKECAM_SIZES` (640x480,1280x720),
//! `FAKECAM_FPS` (30), `FAKECAM_MODE` (ok, junk, truncate, stall, vanish,
//! return), `FAKECAM_AFTER` (frames served well before misbehaving) and
//! `FAKECAM_BACK_MS` (how long a `return` camera stays away).
//!
//! The picture is [`expected_rgb`]: a horizontal grey ramp with a bright
//! square whose position follows the frame number.

#![cfg(target_os = "linux")]
#![allow(clippy::missing_safety_doc)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::{CStr, c_char, c_int, c_ulong, c_void};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use v4l::v4l_sys::*;
use v4l::v4l2::vidioc;

/// How the camera misbehaves after [`Config::after`] good frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Never.
    Ok,
    /// MJPEG frames carry stale bytes after the end-of-image marker.
    Junk,
    /// Every second MJPEG frame is cut in half.
    Truncate,
    /// No more frames: `poll` never reports one.
    Stall,
    /// The device is unplugged: `poll` reports an error, `DQBUF` ENODEV,
    /// and it cannot be opened again.
    Vanish,
    /// Unplugged as `Vanish`, and plugged in again [`Config::back`] later:
    /// from then on it opens and serves for good.
    Return,
}

/// What the fake camera offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// FourCCs, e.g. `*b"MJPG"`, `*b"YUYV"`, `*b"NV12"`.
    pub formats: Vec<[u8; 4]>,
    pub sizes: Vec<(u32, u32)>,
    pub fps: u32,
    pub mode: Mode,
    pub after: u64,
    /// How long a [`Mode::Return`] camera stays away.
    pub back: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            formats: vec![*b"MJPG", *b"YUYV", *b"NV12"],
            sizes: vec![(640, 480), (1280, 720)],
            fps: 30,
            mode: Mode::Ok,
            after: 0,
            back: Duration::from_secs(3),
        }
    }
}

impl Config {
    fn from_env() -> Config {
        let var = |k: &str| std::env::var(k).ok();
        let mut config = Config::default();
        if let Some(f) = var("FAKECAM_FORMATS") {
            config.formats = f
                .split(',')
                .filter_map(|s| s.as_bytes().try_into().ok())
                .collect();
        }
        if let Some(s) = var("FAKECAM_SIZES") {
            config.sizes = s
                .split(',')
                .filter_map(|wh| wh.split_once('x'))
                .filter_map(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
                .collect();
        }
        config.fps = var("FAKECAM_FPS")
            .and_then(|f| f.parse().ok())
            .unwrap_or(config.fps);
        config.after = var("FAKECAM_AFTER")
            .and_then(|f| f.parse().ok())
            .unwrap_or(0);
        config.mode = match var("FAKECAM_MODE").as_deref() {
            Some("junk") => Mode::Junk,
            Some("truncate") => Mode::Truncate,
            Some("stall") => Mode::Stall,
            Some("vanish") => Mode::Vanish,
            Some("return") => Mode::Return,
            _ => Mode::Ok,
        };
        if let Some(ms) = var("FAKECAM_BACK_MS").and_then(|m| m.parse().ok()) {
            config.back = Duration::from_millis(ms);
        }
        config
    }
}

/// The addresses of the interposed functions. A test binary that links this
/// crate calls it once, so the linker takes every one of them from here
/// (an archive member is only pulled in for a symbol that is wanted when
/// the archive is read, which may be before `v4l` asks for `mmap`).
pub fn interposers() -> [*const (); 9] {
    [
        open as *const (),
        close as *const (),
        mmap as *const (),
        poll as *const (),
        opendir as *const (),
        readdir64 as *const (),
        closedir as *const (),
        ioctl as *const (),
        syscall as *const (),
    ]
}

/// How many fake devices are open (a test waits for 0 before the next one:
/// nokhwa reuses a device that is still open).
pub fn open_devices() -> usize {
    lock(devices()).len()
}

/// Replaces what the camera offers (for devices opened from now on).
pub fn configure(config: Config) {
    *lock(config_slot()) = config;
    // A new camera: not unplugged, whatever the last one did.
    *lock(gone_since()) = None;
}

fn config_slot() -> &'static Mutex<Config> {
    static CONFIG: OnceLock<Mutex<Config>> = OnceLock::new();
    CONFIG.get_or_init(|| Mutex::new(Config::from_env()))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The picture of frame `n`, as RGB.
pub fn expected_rgb(width: u32, height: u32, n: u64) -> Vec<u8> {
    let (w, h) = (width as usize, height as usize);
    let side = (h / 4).max(1);
    let sx = (n as usize * 8) % w.saturating_sub(side).max(1);
    let sy = h / 3;
    let mut rgb = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let inside = x >= sx && x < sx + side && y >= sy && y < sy + side;
            let v = if inside {
                235
            } else {
                (x * 200 / w.max(1)) as u8 + 20
            };
            rgb.extend_from_slice(&[v, v, v]);
        }
    }
    rgb
}

/// Luma of a grey RGB value in limited range (what YUYV and NV12 carry).
fn luma(v: u8) -> u8 {
    (16 + u32::from(v) * 219 / 255) as u8
}

fn frame_bytes(fourcc: [u8; 4], w: u32, h: u32, n: u64) -> Vec<u8> {
    let rgb = expected_rgb(w, h, n);
    match &fourcc {
        b"YUYV" => rgb
            .chunks_exact(3)
            .flat_map(|p| [luma(p[0]), 128])
            .collect(),
        b"NV12" => {
            let mut out: Vec<u8> = rgb.chunks_exact(3).map(|p| luma(p[0])).collect();
            out.resize(out.len() + (w as usize) * (h as usize).div_ceil(2), 128);
            out
        }
        _ => {
            let mut jpeg = Vec::new();
            let encoder = jpeg_encoder::Encoder::new(&mut jpeg, 90);
            let _ = encoder.encode(&rgb, w as u16, h as u16, jpeg_encoder::ColorType::Rgb);
            jpeg
        }
    }
}

/// Largest frame a buffer must hold.
fn buffer_len(w: u32, h: u32) -> usize {
    (w as usize) * (h as usize) * 3 + 65_536
}

struct Device {
    config: Config,
    fourcc: [u8; 4],
    size: (u32, u32),
    fps: u32,
    buffers: Vec<(*mut u8, usize)>,
    queued: VecDeque<u32>,
    streaming: bool,
    served: u64,
    next_due: Instant,
}

// The raw buffer pointers are only used under the DEVICES lock.
unsafe impl Send for Device {}

fn devices() -> &'static Mutex<HashMap<c_int, Device>> {
    static DEVICES: OnceLock<Mutex<HashMap<c_int, Device>>> = OnceLock::new();
    DEVICES.get_or_init(|| Mutex::new(HashMap::new()))
}

fn dev_dirs() -> &'static Mutex<HashSet<usize>> {
    static DIRS: OnceLock<Mutex<HashSet<usize>>> = OnceLock::new();
    DIRS.get_or_init(|| Mutex::new(HashSet::new()))
}

macro_rules! real {
    ($name:literal, $ty:ty) => {{
        static PTR: OnceLock<usize> = OnceLock::new();
        let p = *PTR.get_or_init(|| unsafe {
            libc::dlsym(libc::RTLD_NEXT, concat!($name, "\0").as_ptr().cast())
        } as usize);
        unsafe { std::mem::transmute::<usize, $ty>(p) }
    }};
}

/// When an unplugged camera went (it cannot be opened while gone).
fn gone_since() -> &'static Mutex<Option<Instant>> {
    static GONE: OnceLock<Mutex<Option<Instant>>> = OnceLock::new();
    GONE.get_or_init(|| Mutex::new(None))
}

/// Whether a device in `mode` that served `served` of `after` frames is
/// unplugged now; the first time, it is gone from then on.
fn unplugged(mode: Mode, served: u64, after: u64) -> bool {
    let out = matches!(mode, Mode::Vanish | Mode::Return) && served >= after;
    if out {
        lock(gone_since()).get_or_insert_with(Instant::now);
    }
    out
}

fn set_errno(e: c_int) -> c_int {
    unsafe { *libc::__errno_location() = e };
    -1
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn open(path: *const c_char, flags: c_int, mode: libc::mode_t) -> c_int {
    let is_fake = !path.is_null() && unsafe { CStr::from_ptr(path) }.to_bytes() == b"/dev/video0";
    if !is_fake {
        let real = real!(
            "open",
            unsafe extern "C" fn(*const c_char, c_int, libc::mode_t) -> c_int
        );
        return unsafe { real(path, flags, mode) };
    }
    let mut config = lock(config_slot()).clone();
    let gone = *lock(gone_since());
    match (config.mode, gone) {
        (Mode::Vanish, Some(_)) => return set_errno(libc::ENOENT),
        (Mode::Return, Some(at)) if at.elapsed() < config.back => return set_errno(libc::ENOENT),
        // Back for good.
        (Mode::Return, Some(_)) => config.after = u64::MAX,
        _ => {}
    }
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd >= 0 {
        let fourcc = config.formats.first().copied().unwrap_or(*b"MJPG");
        let size = config.sizes.first().copied().unwrap_or((640, 480));
        let fps = config.fps;
        let device = Device {
            config,
            fourcc,
            size,
            fps,
            buffers: Vec::new(),
            queued: VecDeque::new(),
            streaming: false,
            served: 0,
            next_due: Instant::now(),
        };
        lock(devices()).insert(fd, device);
    }
    fd
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    lock(devices()).remove(&fd);
    let real = real!("close", unsafe extern "C" fn(c_int) -> c_int);
    unsafe { real(fd) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn mmap(
    addr: *mut c_void,
    len: usize,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: libc::off_t,
) -> *mut c_void {
    let real = real!(
        "mmap",
        unsafe extern "C" fn(*mut c_void, usize, c_int, c_int, c_int, libc::off_t) -> *mut c_void
    );
    let mut devices = lock(devices());
    let Some(device) = devices.get_mut(&fd) else {
        drop(devices);
        return unsafe { real(addr, len, prot, flags, fd, off) };
    };
    let index = off as usize / buffer_len(device.size.0, device.size.1);
    let anon = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
    let ptr = unsafe {
        real(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            anon,
            -1,
            0,
        )
    };
    if let Some(slot) = device
        .buffers
        .get_mut(index)
        .filter(|_| ptr != libc::MAP_FAILED)
    {
        *slot = (ptr.cast(), len);
    }
    ptr
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn poll(fds: *mut libc::pollfd, nfds: libc::nfds_t, timeout: c_int) -> c_int {
    let real = real!(
        "poll",
        unsafe extern "C" fn(*mut libc::pollfd, libc::nfds_t, c_int) -> c_int
    );
    let fake = nfds == 1 && !fds.is_null() && lock(devices()).contains_key(&unsafe { (*fds).fd });
    if !fake {
        return unsafe { real(fds, nfds, timeout) };
    }
    let fd = unsafe { (*fds).fd };
    let (due, mode, bad) = {
        let devices = lock(devices());
        let Some(d) = devices.get(&fd) else {
            return set_errno(libc::EBADF);
        };
        (d.next_due, d.config.mode, d.served >= d.config.after)
    };
    let limit = (timeout >= 0).then(|| Instant::now() + Duration::from_millis(timeout as u64));
    match (mode, bad) {
        (Mode::Vanish | Mode::Return, true) => {
            lock(gone_since()).get_or_insert_with(Instant::now);
            unsafe { (*fds).revents = libc::POLLERR };
            1
        }
        (Mode::Stall, true) => {
            // A stuck camera: nothing, until the timeout (forever if none).
            loop {
                let wait = limit.map_or(Duration::from_secs(3600), |l| {
                    l.saturating_duration_since(Instant::now())
                });
                if wait.is_zero() {
                    return 0;
                }
                std::thread::sleep(wait.min(Duration::from_millis(100)));
            }
        }
        _ => {
            let wake = limit.map_or(due, |l| l.min(due));
            std::thread::sleep(wake.saturating_duration_since(Instant::now()));
            if Instant::now() < due {
                return 0;
            }
            unsafe { (*fds).revents = libc::POLLIN };
            1
        }
    }
}

/// Directory streams of `/dev`, so the listing can gain `video0`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn opendir(path: *const c_char) -> *mut libc::DIR {
    let real = real!(
        "opendir",
        unsafe extern "C" fn(*const c_char) -> *mut libc::DIR
    );
    let dir = unsafe { real(path) };
    if !dir.is_null() && !path.is_null() && unsafe { CStr::from_ptr(path) }.to_bytes() == b"/dev" {
        lock(dev_dirs()).insert(dir as usize);
    }
    dir
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn readdir64(dir: *mut libc::DIR) -> *mut libc::dirent64 {
    let real = real!(
        "readdir64",
        unsafe extern "C" fn(*mut libc::DIR) -> *mut libc::dirent64
    );
    let entry = unsafe { real(dir) };
    if !entry.is_null() || !lock(dev_dirs()).remove(&(dir as usize)) {
        return entry;
    }
    // The real listing is over: add ours once. One entry per stream, leaked
    // (a few bytes per listing of /dev).
    let mut fake: libc::dirent64 = unsafe { std::mem::zeroed() };
    fake.d_type = libc::DT_CHR;
    fake.d_reclen = std::mem::size_of::<libc::dirent64>() as u16;
    for (dst, src) in fake.d_name.iter_mut().zip(b"video0\0") {
        *dst = *src as c_char;
    }
    Box::into_raw(Box::new(fake))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn closedir(dir: *mut libc::DIR) -> c_int {
    lock(dev_dirs()).remove(&(dir as usize));
    let real = real!("closedir", unsafe extern "C" fn(*mut libc::DIR) -> c_int);
    unsafe { real(dir) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn ioctl(fd: c_int, request: c_ulong, arg: *mut c_void) -> c_int {
    let mut devices = lock(devices());
    let Some(device) = devices.get_mut(&fd) else {
        drop(devices);
        let real = real!(
            "ioctl",
            unsafe extern "C" fn(c_int, c_ulong, *mut c_void) -> c_int
        );
        return unsafe { real(fd, request, arg) };
    };
    match unsafe { handle(device, request, arg) } {
        Ok(()) => 0,
        Err(e) => set_errno(e),
    }
}

/// The `v4l` crate calls `ioctl` through `syscall(SYS_ioctl, ...)`. The
/// standard library calls `syscall` too (futexes), so everything else goes
/// straight through, and the real function's address is cached without
/// locks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn syscall(
    number: libc::c_long,
    a1: libc::c_long,
    a2: libc::c_long,
    a3: libc::c_long,
    a4: libc::c_long,
    a5: libc::c_long,
    a6: libc::c_long,
) -> libc::c_long {
    use std::sync::atomic::{AtomicUsize, Ordering};
    if number == libc::SYS_ioctl {
        let fd = a1 as c_int;
        let mut devices = lock(devices());
        if let Some(device) = devices.get_mut(&fd) {
            return match unsafe { handle(device, a2 as c_ulong, a3 as *mut c_void) } {
                Ok(()) => 0,
                Err(e) => set_errno(e).into(),
            };
        }
    }
    static REAL: AtomicUsize = AtomicUsize::new(0);
    let mut p = REAL.load(Ordering::Relaxed);
    if p == 0 {
        p = unsafe { libc::dlsym(libc::RTLD_NEXT, c"syscall".as_ptr()) } as usize;
        REAL.store(p, Ordering::Relaxed);
    }
    let real = unsafe {
        std::mem::transmute::<usize, unsafe extern "C" fn(libc::c_long, ...) -> libc::c_long>(p)
    };
    unsafe { real(number, a1, a2, a3, a4, a5, a6) }
}

fn fourcc_u32(f: [u8; 4]) -> u32 {
    u32::from_le_bytes(f)
}

fn fill(dst: &mut [u8], text: &[u8]) {
    for (d, s) in dst.iter_mut().zip(text) {
        *d = *s;
    }
}

unsafe fn handle(d: &mut Device, request: c_ulong, arg: *mut c_void) -> Result<(), c_int> {
    let req = request as vidioc::_IOC_TYPE;
    if req == vidioc::VIDIOC_QUERYCAP {
        let cap = unsafe { &mut *arg.cast::<v4l2_capability>() };
        *cap = unsafe { std::mem::zeroed() };
        fill(&mut cap.driver, b"fakecam");
        fill(&mut cap.card, b"vidchat fake camera");
        fill(&mut cap.bus_info, b"fake:0");
        cap.capabilities = V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_STREAMING | V4L2_CAP_DEVICE_CAPS;
        cap.device_caps = V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_STREAMING;
    } else if req == vidioc::VIDIOC_ENUM_FMT {
        let desc = unsafe { &mut *arg.cast::<v4l2_fmtdesc>() };
        let f = *d
            .config
            .formats
            .get(desc.index as usize)
            .ok_or(libc::EINVAL)?;
        desc.pixelformat = fourcc_u32(f);
        fill(&mut desc.description, &f);
        desc.flags = if &f == b"MJPG" {
            V4L2_FMT_FLAG_COMPRESSED
        } else {
            0
        };
    } else if req == vidioc::VIDIOC_ENUM_FRAMESIZES {
        let e = unsafe { &mut *arg.cast::<v4l2_frmsizeenum>() };
        let (w, h) = *d.config.sizes.get(e.index as usize).ok_or(libc::EINVAL)?;
        e.type_ = v4l2_frmsizetypes_V4L2_FRMSIZE_TYPE_DISCRETE;
        e.__bindgen_anon_1.discrete = v4l2_frmsize_discrete {
            width: w,
            height: h,
        };
    } else if req == vidioc::VIDIOC_ENUM_FRAMEINTERVALS {
        let e = unsafe { &mut *arg.cast::<v4l2_frmivalenum>() };
        if e.index != 0 {
            return Err(libc::EINVAL);
        }
        e.type_ = v4l2_frmivaltypes_V4L2_FRMIVAL_TYPE_DISCRETE;
        e.__bindgen_anon_1.discrete = v4l2_fract {
            numerator: 1,
            denominator: d.config.fps,
        };
    } else if req == vidioc::VIDIOC_G_FMT || req == vidioc::VIDIOC_S_FMT {
        let f = unsafe { &mut *arg.cast::<v4l2_format>() };
        let pix = unsafe { &mut f.fmt.pix };
        if req == vidioc::VIDIOC_S_FMT {
            let wanted = pix.pixelformat.to_le_bytes();
            if d.config.formats.contains(&wanted) {
                d.fourcc = wanted;
            }
            if d.config.sizes.contains(&(pix.width, pix.height)) {
                d.size = (pix.width, pix.height);
            }
        }
        let (w, h) = d.size;
        pix.width = w;
        pix.height = h;
        pix.pixelformat = fourcc_u32(d.fourcc);
        pix.field = v4l2_field_V4L2_FIELD_NONE;
        pix.bytesperline = if &d.fourcc == b"YUYV" {
            w * 2
        } else if &d.fourcc == b"NV12" {
            w
        } else {
            0
        };
        pix.sizeimage = buffer_len(w, h) as u32;
        pix.colorspace = v4l2_colorspace_V4L2_COLORSPACE_SRGB;
    } else if req == vidioc::VIDIOC_G_PARM || req == vidioc::VIDIOC_S_PARM {
        let p = unsafe { &mut *arg.cast::<v4l2_streamparm>() };
        let cap = unsafe { &mut p.parm.capture };
        if req == vidioc::VIDIOC_S_PARM
            && cap.timeperframe.numerator == 1
            && cap.timeperframe.denominator == d.config.fps
        {
            d.fps = d.config.fps;
        }
        cap.capability = V4L2_CAP_TIMEPERFRAME;
        cap.timeperframe = v4l2_fract {
            numerator: 1,
            denominator: d.fps,
        };
    } else if req == vidioc::VIDIOC_REQBUFS {
        let r = unsafe { &mut *arg.cast::<v4l2_requestbuffers>() };
        r.count = r.count.min(4);
        d.buffers = vec![(std::ptr::null_mut(), 0); r.count as usize];
        d.queued.clear();
    } else if req == vidioc::VIDIOC_QUERYBUF {
        let b = unsafe { &mut *arg.cast::<v4l2_buffer>() };
        if b.index as usize >= d.buffers.len() {
            return Err(libc::EINVAL);
        }
        let len = buffer_len(d.size.0, d.size.1);
        b.length = len as u32;
        b.m.offset = b.index * len as u32;
    } else if req == vidioc::VIDIOC_QBUF {
        let b = unsafe { &*arg.cast::<v4l2_buffer>() };
        d.queued.push_back(b.index);
    } else if req == vidioc::VIDIOC_DQBUF {
        let b = unsafe { &mut *arg.cast::<v4l2_buffer>() };
        if unplugged(d.config.mode, d.served, d.config.after) {
            return Err(libc::ENODEV);
        }
        let index = d.queued.pop_front().ok_or(libc::EAGAIN)?;
        let (ptr, len) = *d.buffers.get(index as usize).ok_or(libc::EINVAL)?;
        let mut bytes = frame_bytes(d.fourcc, d.size.0, d.size.1, d.served);
        let bad = d.served >= d.config.after;
        match d.config.mode {
            Mode::Junk if bad => bytes
                .extend_from_slice(&[0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3, 4, 0, 0, 0xFF, 0xD9, 9, 9]),
            Mode::Truncate if bad && d.served % 2 == 1 => bytes.truncate(bytes.len() / 2),
            _ => {}
        }
        let n = bytes.len().min(len);
        if !ptr.is_null() {
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr, n) };
        }
        b.index = index;
        b.bytesused = n as u32;
        b.sequence = d.served as u32;
        b.field = v4l2_field_V4L2_FIELD_NONE;
        d.served += 1;
        d.next_due += Duration::from_secs(1) / d.fps.max(1);
        if d.next_due < Instant::now() {
            d.next_due = Instant::now();
        }
    } else if req == vidioc::VIDIOC_STREAMON {
        d.streaming = true;
        d.next_due = Instant::now();
    } else if req == vidioc::VIDIOC_STREAMOFF {
        d.streaming = false;
        d.queued.clear();
    } else {
        return Err(libc::EINVAL);
    }
    Ok(())
}
