"""Reads `ffprobe -show_entries packet=pts_time,size -of csv=p=0` lines from
stdin as they arrive and prints one JSON line: frames, fps, p50/p95/p99 of
arrival time minus pts (ms; the sender stamps pts with the wall clock before
encoding, so this is encode start -> arrival), and Mbit/s. The first
WARMUP seconds of packets are left out. Usage: ffmpeg_probe.py WARMUP_S"""
import json
import sys
import time

warmup = float(sys.argv[1])
start = time.time()
lat, size, first, last = [], 0, None, None
for line in sys.stdin:
    parts = line.strip().split(",")
    try:
        pts, nbytes = float(parts[0]), int(parts[1])
    except (ValueError, IndexError):
        continue
    now = time.time()
    if now - start < warmup:
        continue
    first = first or now
    last = now
    lat.append((now - pts) * 1000)
    size += nbytes
lat.sort()
span = (last - first) if first and last and last > first else 1.0
q = lambda p: round(lat[min(len(lat) - 1, int(p / 100 * len(lat)))], 1) if lat else None
print(json.dumps({"frames": len(lat), "fps": round(len(lat) / span, 1), "p50_ms": q(50), "p95_ms": q(95),
                  "p99_ms": q(99), "mbit_s": round(size * 8 / span / 1e6, 2)}))
