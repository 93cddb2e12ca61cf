"""Writes camera-like .y4m clips for the benchmarks: a real photograph (from
scikit-image's bundled sample data) slowly panned and zoomed, with fresh
sensor-like noise in every frame. Usage: make_content.py OUT.y4m W H FRAMES"""
import sys

import numpy as np
from skimage import data, transform

out, w, h, frames = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
photo = data.coffee().astype(np.float32)  # 400x600 RGB photograph
# Scale so the frame covers 80% of the photo at most, leaving room to pan.
scale = max(w / (0.8 * photo.shape[1]), h / (0.8 * photo.shape[0]))
big = transform.rescale(photo, scale, channel_axis=2, preserve_range=True, order=1)
rng = np.random.default_rng(1)
with open(out, "wb") as f:
    f.write(f"YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg\n".encode())
    for i in range(frames):
        t = i / max(frames - 1, 1)
        x = int((big.shape[1] - w) * (0.5 - 0.5 * np.cos(2 * np.pi * t)))
        y = int((big.shape[0] - h) * (0.5 - 0.5 * np.cos(2 * np.pi * t)) * 0.6)
        rgb = big[y:y + h, x:x + w] + rng.normal(0, 3.0, (h, w, 3))
        r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
        yy = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
        cb = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
        cr = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
        sub = lambda c: c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
        f.write(b"FRAME\n")
        for plane in (yy, sub(cb), sub(cr)):
            f.write(np.clip(plane, 0, 255).round().astype(np.uint8).tobytes())
