"""Summarises vidchat --stats files. Usage:
  analyze.py summary STATS.jsonl SECONDS          -> one JSON line: frames, fps, p50/p95/p99/max ms (capture
                                                     to shown), p50/p95 capture to decoded, Mbit/s, and the
                                                     sizes received (frames of each)
  analyze.py recovery STATS.jsonl CHANGE_US LIMIT_MS [END_US]
      -> seconds after CHANGE_US (Unix us) until the p95 latency of every
         following 0.5 s window (up to END_US) stays <= LIMIT_MS, and the
         worst p95 seen"""
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
    else:
        end = int(sys.argv[5]) if len(sys.argv) > 5 else 1 << 62
        recovery(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), end)
