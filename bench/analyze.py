"""Summarises vidchat --stats files. Usage:
  analyze.py summary STATS.jsonl SECONDS          -> one JSON line: frames, fps, p50/p95/p99/max ms (capture
                                                     to shown), p50/p95 capture to decoded, Mbit/s, and the
                                                     sizes received (frames of each)
  analyze.py recovery STATS.jsonl CHANGE_US LIMIT_MS [END_US]
      -> seconds after CHANGE_US (Unix us) until the p95 latency of every
         following 0.5 s window (up to END_US) stays <= LIMIT_MS, and the
         worst p95 seen
  analyze.py ssim RECORDED.y4m SOURCE.y4m
      -> the mean SSIM (luma) of the pictures a --record file holds against
         the source frames they were made from (FRAME Xseq=N: source frame
         N, the source looping), and how many were compared"""
import json
import sys


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def pct(values, p):
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(p / 100 * len(s)))], 1)


def summary(path, seconds):
    rows = load(path)
    lat = [(r["shown_us"] - r["capture_us"]) / 1000 for r in rows]
    decoded = [(r["decoded_us"] - r["capture_us"]) / 1000 for r in rows if "decoded_us" in r]
    mbit = sum(r["bytes"] for r in rows) * 8 / seconds / 1e6
    sizes = {}
    for r in rows:
        key = f"{r['width']}x{r['height']}"
        sizes[key] = sizes.get(key, 0) + 1
    print(json.dumps({"frames": len(rows), "fps": round(len(rows) / seconds, 1), "p50_ms": pct(lat, 50),
                      "p95_ms": pct(lat, 95), "p99_ms": pct(lat, 99), "max_ms": round(max(lat, default=0), 1),
                      "decoded_p50_ms": pct(decoded, 50), "decoded_p95_ms": pct(decoded, 95),
                      "mbit_s": round(mbit, 2), "sizes": sizes}))


def y4m_frames(path):
    """(width, height, frames) of a 4:2:0 y4m file; frames yields (params,
    luma as a numpy array) one at a time."""
    import numpy as np
    f = open(path, "rb")
    fields = {t[:1]: t[1:] for t in f.readline().split()[1:]}
    w, h = int(fields[b"W"]), int(fields[b"H"])
    chroma = 2 * ((w + 1) // 2) * ((h + 1) // 2)

    def frames():
        with f:
            while line := f.readline():
                params = dict(t.split(b"=", 1) for t in line.split()[1:] if b"=" in t)
                luma = f.read(w * h)
                f.seek(chroma, 1)
                if len(luma) < w * h:
                    return
                yield params, np.frombuffer(luma, np.uint8).reshape(h, w)
    return w, h, frames()


def ssim(recorded, source):
    from skimage.metrics import structural_similarity
    rw, rh, got = y4m_frames(recorded)
    sw, sh, src = y4m_frames(source)
    src = list(src)
    if (rw, rh) != (sw, sh):
        sys.exit(f"{recorded} is {rw}x{rh}, the source {sw}x{sh}")
    scores = [structural_similarity(src[int(p[b"Xseq"]) % len(src)][1], y, data_range=255)
              for p, y in got if b"Xseq" in p]
    mean = round(sum(scores) / len(scores), 3) if scores else None
    print(json.dumps({"ssim": mean, "frames": len(scores)}))


def recovery(path, change_us, limit_ms, end_us):
    rows = [r for r in load(path) if change_us <= r["capture_us"] < end_us]
    windows = {}
    for r in rows:
        windows.setdefault((r["capture_us"] - change_us) // 500_000, []).append((r["shown_us"] - r["capture_us"]) / 1000)
    p95s = [(k * 0.5, pct(v, 95)) for k, v in sorted(windows.items())]
    bad = [t for t, p in p95s if p > limit_ms]
    recovered = 0.0 if not bad else bad[-1] + 0.5
    print(json.dumps({"recovered_s": recovered, "worst_p95_ms": max((p for _, p in p95s), default=None),
                      "windows": len(p95s)}))


if __name__ == "__main__":
    if sys.argv[1] == "summary":
        summary(sys.argv[2], float(sys.argv[3]))
    elif sys.argv[1] == "ssim":
        ssim(sys.argv[2], sys.argv[3])
    else:
        end = int(sys.argv[5]) if len(sys.argv) > 5 else 1 << 62
        recovery(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), end)
