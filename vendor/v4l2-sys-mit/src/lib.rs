//! Raw V4L2 bindings, generated once by bindgen 0.65.1 from `wrapper.h`
//! (`linux/videodev2.h`) for each supported architecture, so that a build
//! needs no libclang. Regenerate with the commands in `../README.md`.
#![allow(clippy::all)]
#![allow(deref_nullptr)]
#![allow(non_camel_case_types)]
#![allow(non_snake_case)]
#![allow(non_upper_case_globals)]

#[cfg(target_arch = "x86_64")]
include!("v4l2_bindings_x86_64.rs");

#[cfg(target_arch = "aarch64")]
include!("v4l2_bindings_aarch64.rs");

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("vendored v4l2-sys-mit has bindings for x86_64 and aarch64 only; see vendor/v4l2-sys-mit/README.md");
