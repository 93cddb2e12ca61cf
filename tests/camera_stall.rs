//! A camera that stops delivering, in a process of its own: the stuck
//! camera thread can never be joined (that is the point of the watchdog),
//! and nokhwa would hand its device to any later test in the same process.

#![cfg(target_os = "linux")]

mod fakecam_util;

#[test]
fn a_stalled_camera_is_reopened_then_shown_as_lost() {
    fakecam_util::expect_card_after_real_frames(fakecam::Mode::Stall);
}
