//! Off Linux, the tests that cannot run there, each listed as an ignored
//! test with its reason, so `cargo test` prints what it left out. On Linux
//! this file is empty: the tests themselves run.

#![cfg(not(target_os = "linux"))]

#[test]
#[ignore = "needs Linux: camera.rs and camera_stall.rs fake a V4L2 camera (fakecam interposes libc)"]
fn camera_tests() {}

#[test]
#[ignore = "needs Linux: nearby.rs makes network namespaces (root, iproute2)"]
fn nearby_tests() {}

#[test]
#[ignore = "needs Linux: call.rs's host name posing as a code sets a host name in a UTS namespace"]
fn host_name_posing_as_a_code() {}

#[cfg(windows)]
#[test]
#[ignore = "needs Unix signals: hangup.rs (SIGINT, SIGTERM, SIGHUP) and call.rs's frozen peer (SIGSTOP)"]
fn signal_tests() {}

#[cfg(target_vendor = "apple")]
#[test]
#[ignore = "needs 127.0.0.2: flood.rs floods from a second loopback address (macOS has one only unless `ifconfig lo0 alias 127.0.0.2`)"]
fn flood_tests() {}
