#!/usr/bin/env bash
# Benchmarks vidchat against the original (../shared/anchors/seed) on the same
# links, in one run: loopback, and a tbf-shaped veth link between two network
# namespaces (a Wi-Fi-like bottleneck; netem is not available here), with
# camera-like content (a real photo panned, with sensor noise).
# Needs root. Usage: sudo bench/link.sh [SECONDS]     (default 10 s a run)
# Env: RATE (20mbit), SIZES ("640x480 1280x720"), SEED_DIR, BIN (a vidchat
# binary to measure instead of this tree's release build), PART (all; "clean"
# for the clean links and drops only, "window" for calls with windows under
# Xvfb only, "thin" for the thin and Wi-Fi-like links only, which use
# ../shared/bench/wifi.py: WIFI to point elsewhere).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
S=${1:-10}
RATE=${RATE:-20mbit}
SIZES=${SIZES:-"640x480 1280x720"}
SEED_DIR=${SEED_DIR:-../shared/anchors/seed}
WORK=target/bench
mkdir -p "$WORK"
[ -f "$SEED_DIR/run_seed.sh" ] || { echo "no seed at $SEED_DIR: set SEED_DIR to shared/anchors/seed" >&2; exit 1; }
SEED_DIR=$(realpath "$SEED_DIR")

command -v ffmpeg >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null; }
command -v /usr/bin/time >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
if [ ! -x "$WORK/venv/bin/python" ]; then
    python3 -m venv "$WORK/venv"
    "$WORK/venv/bin/pip" install -q numpy scikit-image
fi
PY="$PWD/$WORK/venv/bin/python"
if [ -z "${BIN:-}" ]; then
    cargo build --release --locked -q
    BIN=target/release/vidchat
fi
BIN=$(realpath "$BIN")

content() { # W H -> path of a 3 s looping clip
    local f="$WORK/coffee_$1x$2.y4m"
    [ -s "$f" ] || "$PY" bench/make_content.py "$f" "$1" "$2" 90
    echo "$PWD/$f"
}

A=vcA$$; B=vcB$$; VA=vca$$; VB=vcb$$
cleanup() { ip netns del $A 2>/dev/null || true; ip netns del $B 2>/dev/null || true; }
trap cleanup EXIT
ip netns add $A; ip netns add $B
ip link add $VA type veth peer name $VB
ip link set $VA netns $A; ip link set $VB netns $B
ip -n $A addr add 10.77.0.1/24 dev $VA; ip -n $B addr add 10.77.0.2/24 dev $VB
for n in $A $B; do ip -n $n link set lo up; done
ip -n $A link set $VA up; ip -n $B link set $VB up
shape() { # RATE: both directions, the seed script's tbf settings
    for pair in "$A $VA" "$B $VB"; do
        set -- $pair
        ip netns exec "$1" tc qdisc replace dev "$2" root tbf rate "$RATE_NOW" burst 16kb latency 100ms
    done
}

# call NS_A NS_B HOST W H SECONDS TAG [CODEC] -> stats in $WORK/TAG.{a,b}.jsonl, CPU % in $WORK/TAG.cpu_{a,b}
call() {
    local na=$1 nb=$2 host=$3 w=$4 h=$5 secs=$6 tag=$7 codec=${8:-mjpeg} src view=--no-window
    src=$(content "$w" "$h")
    [ -n "${WINDOW:-}" ] && view=""
    # RECORD=1: the connecting side records what it shows, for the SSIM column.
    local record=()
    [ -n "${RECORD:-}" ] && record=(--record "$WORK/$tag.b.y4m")
    local port=$((20000 + RANDOM % 20000))
    rm -f "$WORK/$tag".*
    $na /usr/bin/time -f %P -o "$WORK/$tag.cpu_a" "$BIN" listen --port $port --yes --source "$src" --size "${w}x$h" --codec "$codec" \
        $view --duration "$secs" --stats "$WORK/$tag.a.jsonl" >/dev/null 2>"$WORK/$tag.log_a" &
    local lp=$!
    for _ in $(seq 100); do $na ss -ltn | grep -q ":$port " && break; sleep 0.05; done
    $nb /usr/bin/time -f %P -o "$WORK/$tag.cpu_b" "$BIN" connect "$host:$port" --yes --source "$src" --size "${w}x$h" --codec "$codec" \
        $view --duration "$secs" --stats "$WORK/$tag.b.jsonl" "${record[@]}" >/dev/null 2>"$WORK/$tag.log_b" &
    local cp=$!
    [ -n "${DURING:-}" ] && $DURING
    wait $lp $cp || true
}

row() { # LABEL TAG SECONDS SEEDJSON
    local ours seed
    ours=$("$PY" bench/analyze.py summary "$WORK/$2.b.jsonl" "$3")
    seed=$4
    "$PY" - "$1" "$ours" "$seed" "$(cat "$WORK/$2.cpu_a")" "$(cat "$WORK/$2.cpu_b")" <<'PYEOF'
import json, sys
label, ours, seed, cpu_a, cpu_b = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3] or "{}"), sys.argv[4], sys.argv[5]
def ratio(a, b):
    return f"{a / b:.1f}x" if a and b else "-"
print(f"| {label} | {ours['fps']} | {ours['p50_ms']} / {ours['p95_ms']} / {ours['p99_ms']} | {ours['mbit_s']} | {cpu_a} / {cpu_b} "
      f"| {seed.get('fps', '-')} | {seed.get('p50_ms', '-')} / {seed.get('p95_ms', '-')} "
      f"| {ratio(ours['fps'], seed.get('fps'))} | {ratio(seed.get('p50_ms'), ours['p50_ms'])} |")
PYEOF
}

seed_run() { # RATE W H -> the JSON line of the shaped run ("loopback" for the loopback one)
    local out
    out=$(cd "$SEED_DIR" && PY=$PY RATE=$1 bash run_seed.sh "$S" "$2" "$3" 2>/dev/null || true)
    if [ "$1" = loopback ]; then echo "$out" | grep -m1 'loopback' | sed 's/^[^{]*//'
    else echo "$out" | grep -m1 -v 'loopback' | sed 's/^[^{]*//'; fi
}

# The external yardstick: ffmpeg with x264 ultrafast/zerolatency over the
# same link, each frame stamped with the wall clock before encoding
# (setpts=RTCTIME, -copyts, NUT over TCP), arrival read by ffprobe in the
# other namespace. Prints a row in the same columns.
ffmpeg_row() { # RATE W H
    local w=$2 h=$3 src port out
    src=$(content "$w" "$h")
    port=$((20000 + RANDOM % 20000))
    ip netns exec $B sh -c "stdbuf -oL ffprobe -v error -probesize 32 -analyzeduration 0 -f nut -listen 1 \
        -i tcp://10.77.0.2:$port -show_entries packet=pts_time,size -of csv=p=0" 2>/dev/null \
        | "$PY" bench/ffmpeg_probe.py 1 > "$WORK/ffmpeg.json" &
    local rp=$!
    for _ in $(seq 100); do ip netns exec $B ss -ltn | grep -q ":$port " && break; sleep 0.05; done
    ip netns exec $A /usr/bin/time -f %P -o "$WORK/ffmpeg.cpu" ffmpeg -v error -re -t "$S" -stream_loop -1 -i "$src" \
        -vf "setpts=RTCTIME/1000000/TB" -c:v libx264 -preset ultrafast -tune zerolatency -b:v 2.5M -copyts \
        -f nut "tcp://10.77.0.2:$port" || true
    wait $rp || true
    "$PY" - "$1, $2x$3 | ffmpeg x264" "$(cat "$WORK/ffmpeg.json")" "$(cat "$WORK/ffmpeg.cpu")" <<'PYEOF'
import json, sys
label, r, cpu = sys.argv[1], json.loads(sys.argv[2] or "{}"), sys.argv[3]
print(f"| {label} | {r.get('fps')} | {r.get('p50_ms')} / {r.get('p95_ms')} / {r.get('p99_ms')} | {r.get('mbit_s')} | {cpu} (sender) | | | | |")
PYEOF
}

PART=${PART:-all}
WIFI=${WIFI:-$(realpath ../shared/bench/wifi.py 2>/dev/null || true)}
echo "vidchat $( "$BIN" --version | cut -d' ' -f2 ), $(nproc) cores, ${S} s a run, camera-like content (photo panned + noise)"
echo
if [ "$PART" = all ] || [ "$PART" = clean ]; then
echo "| scenario | codec | fps | latency p50 / p95 / p99 ms | Mbit/s | CPU % listen / connect | seed fps | seed p50 / p95 ms | fps ratio | p50 ratio (seed/ours) |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for rate_size in "$RATE 640x480" "$RATE 1280x720" "5mbit 640x480"; do
    rate=${rate_size% *}; size=${rate_size#* }; w=${size%x*}; h=${size#*x}
    seed=$(seed_run "$rate" "$w" "$h")
    RATE_NOW=$rate; shape
    for codec in mjpeg h264; do
        call "ip netns exec $A" "ip netns exec $B" 10.77.0.1 "$w" "$h" "$S" "link_${rate}_${size}_$codec" "$codec"
        row "$rate, $size | $codec" "link_${rate}_${size}_$codec" "$S" "$seed"
    done
    ffmpeg_row "$rate" "$w" "$h"
done
seed=$(seed_run loopback 1920 1080)
for codec in mjpeg h264; do
    call "" "" 127.0.0.1 1920 1080 "$S" "loop_1080_$codec" "$codec"
    row "loopback, 1920x1080 | $codec" "loop_1080_$codec" "$S" "$seed"
done

# The link drops mid-call for 5 s, then comes back: to 5 Mbit/s with MJPEG,
# to 2 Mbit/s with H.264.
T=18
for drop in "mjpeg 5mbit" "h264 2mbit"; do
    codec=${drop% *}; low=${drop#* }
    change() {
        sleep 5; RATE_NOW=$low; shape; date +%s%6N > "$WORK/drop.us"
        sleep 5; RATE_NOW=$RATE; shape; date +%s%6N > "$WORK/back.us"
    }
    RATE_NOW=$RATE; shape
    DURING=change call "ip netns exec $A" "ip netns exec $B" 10.77.0.1 640 480 $T "drop_$codec" "$codec"
    echo
    echo "Rate drop $RATE -> $low -> $RATE at 640x480 with $codec (p95 over 0.5 s windows, limit 150 ms):"
    echo "  after the drop:     $("$PY" bench/analyze.py recovery "$WORK/drop_$codec.b.jsonl" "$(cat "$WORK/drop.us")" 150 "$(cat "$WORK/back.us")")"
    echo "  after the recovery: $("$PY" bench/analyze.py recovery "$WORK/drop_$codec.b.jsonl" "$(cat "$WORK/back.us")" 150)"
    echo "  call ended: $(grep -h 'call ended' "$WORK/drop_$codec.log_a" "$WORK/drop_$codec.log_b" | sort -u | tr '\n' ' ')"
done
fi

# Windows: both sides show the call in a window on one Xvfb display, over the
# clean link; each frame's capture -> decoded and capture -> on screen come
# from the same --stats file, so the difference is what the window adds.
if [ "$PART" = all ] || [ "$PART" = window ]; then
command -v Xvfb >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xvfb >/dev/null; }
disp=$((60 + RANDOM % 30))
Xvfb ":$disp" -screen 0 2600x800x24 -nolisten tcp 2>/dev/null &
xp=$!
for _ in $(seq 100); do [ -S "/tmp/.X11-unix/X$disp" ] && break; sleep 0.05; done
xcpu() { awk '{print $14 + $15}' "/proc/$xp/stat"; }
echo
echo "Windows under Xvfb, $RATE (tbf, both directions), codec auto (H.264); both windows on one display:"
echo
echo "| link, size | fps shown | capture -> shown p50 / p95 / p99 ms | capture -> decoded p50 / p95 ms | window adds (p95) | CPU % listen / connect / Xvfb |"
echo "|---|---|---|---|---|---|"
RATE_NOW=$RATE; shape
for size in 640x480 1280x720; do
    w=${size%x*}; h=${size#*x}
    before=$(xcpu)
    DISPLAY=":$disp" WINDOW=1 call "ip netns exec $A" "ip netns exec $B" 10.77.0.1 "$w" "$h" "$S" "window_$size" auto
    xvfb_cpu=$(( ($(xcpu) - before) * 100 / $(getconf CLK_TCK) / S ))
    "$PY" - "$RATE, $size" "$("$PY" bench/analyze.py summary "$WORK/window_$size.b.jsonl" "$S")" \
        "$(cat "$WORK/window_$size.cpu_a") / $(cat "$WORK/window_$size.cpu_b") / $xvfb_cpu%" <<'PYEOF'
import json, sys
label, o, cpu = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
adds = round(o["p95_ms"] - o["decoded_p95_ms"], 1) if o["frames"] else "-"
print(f"| {label} | {o['fps']} | {o['p50_ms']} / {o['p95_ms']} / {o['p99_ms']} | {o['decoded_p50_ms']} / {o['decoded_p95_ms']} "
      f"| {adds} | {cpu} |")
PYEOF
done
kill $xp; wait $xp 2>/dev/null || true
fi

[ "$PART" = all ] || [ "$PART" = thin ] || exit 0

# Thin links, each side sending and receiving the default codec (auto:
# H.264): the size sent follows the link. One row a case; "sizes" counts the
# frames received at each size.
thin_row() { # LABEL TAG SECONDS SEEDJSON W H
    local ours back ssim='{}'
    ours=$("$PY" bench/analyze.py summary "$WORK/$2.b.jsonl" "$3")
    back=$("$PY" bench/analyze.py summary "$WORK/$2.a.jsonl" "$3")
    if [ -s "$WORK/$2.b.y4m" ]; then
        ssim=$("$PY" bench/analyze.py ssim "$WORK/$2.b.y4m" "$(content "$5" "$6")")
        rm -f "$WORK/$2.b.y4m"
    fi
    "$PY" - "$1" "$ours" "${4:-}" "$ssim" "$back" <<'PYEOF'
import json, sys
label, o, seed, ssim, b = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3] or "{}"), json.loads(sys.argv[4]), json.loads(sys.argv[5])
sizes = ", ".join(f"{k} ({v})" for k, v in sorted(o["sizes"].items(), key=lambda kv: -kv[1]))
print(f"| {label} | {o['fps']} | {o['p50_ms']} / {o['p95_ms']} / {o['p99_ms']} / {o['max_ms']} | {o['mbit_s']} | {ssim.get('ssim', '-')} | {sizes} "
      f"| {b['fps']} / {b['p95_ms']} / {b['mbit_s']} | {seed.get('fps', '-')} | {seed.get('p50_ms', '-')} / {seed.get('p95_ms', '-')} |")
PYEOF
}
export RECORD=1
echo
echo "Thin links (tbf, both directions), codec auto (H.264); columns are what the caller received, \"the other way\" what the listener did:"
echo
echo "| link, size asked | fps | latency p50 / p95 / p99 / max ms | Mbit/s | SSIM | sizes received (frames) | the other way: fps / p95 ms / Mbit/s | seed fps | seed p50 / p95 ms |"
echo "|---|---|---|---|---|---|---|---|---|"
for case in "1mbit 1280x720" "1mbit 640x480" "500kbit 640x480"; do
    rate=${case% *}; size=${case#* }; w=${size%x*}; h=${size#*x}
    seed=""
    [ "$case" = "1mbit 640x480" ] && seed=$(seed_run "$rate" "$w" "$h")
    RATE_NOW=$rate; shape
    call "ip netns exec $A" "ip netns exec $B" 10.77.0.1 "$w" "$h" "$S" "thin_${rate}_$size" auto
    thin_row "$rate, $size" "thin_${rate}_$size" "$S" "$seed" "$w" "$h"
done

# 20 -> 1 -> 20 Mbit/s mid-call at 1280x720.
T=24
change() {
    sleep 6; RATE_NOW=1mbit; shape; date +%s%6N > "$WORK/drop.us"
    sleep 8; RATE_NOW=20mbit; shape; date +%s%6N > "$WORK/back.us"
}
RATE_NOW=20mbit; shape
RECORD="" DURING=change call "ip netns exec $A" "ip netns exec $B" 10.77.0.1 1280 720 $T "drop_1mbit_720" auto
echo
echo "Rate drop 20mbit -> 1mbit (8 s) -> 20mbit at 1280x720, codec auto (p95 over 0.5 s windows, limit 150 ms):"
echo "  after the drop:     $("$PY" bench/analyze.py recovery "$WORK/drop_1mbit_720.b.jsonl" "$(cat "$WORK/drop.us")" 150 "$(cat "$WORK/back.us")")"
echo "  after the recovery: $("$PY" bench/analyze.py recovery "$WORK/drop_1mbit_720.b.jsonl" "$(cat "$WORK/back.us")" 150)"
echo "  whole call:         $("$PY" bench/analyze.py summary "$WORK/drop_1mbit_720.b.jsonl" $T)"

# Wi-Fi-like links through wifi.py (a userspace link: rate, delay, jitter,
# random or bursty loss, stalls), 640x480, codec auto.
if [ -z "$WIFI" ] || [ ! -f "$WIFI" ]; then
    echo; echo "no wifi.py (set WIFI): Wi-Fi-like cases skipped"; exit 0
fi
WA=wfa$$; WB=wfb$$
echo
echo "Wi-Fi-like links (wifi.py, both directions), 640x480, codec auto; columns as above:"
echo
echo "| link | fps | latency p50 / p95 / p99 / max ms | Mbit/s | SSIM | sizes received (frames) | the other way: fps / p95 ms / Mbit/s | | |"
echo "|---|---|---|---|---|---|---|---|---|"
for wcase in "500 kbit/s|--rate 0.5 --delay 2" \
             "20 Mbit/s, 1 % loss|--rate 20 --delay 2 --loss 1" \
             "20 Mbit/s, 2 % loss|--rate 20 --delay 2 --loss 2" \
             "home Wi-Fi: 20 Mbit/s, jitter 6 ms, 0.5 % loss in bursts of 3, 150 ms stall every 8 s|--rate 20 --delay 2 --jitter 6 --loss 0.5 --burst 3 --stall 150 --every 8" \
             "20 Mbit/s, 1 s stall every 10 s|--rate 20 --delay 2 --stall 1000 --every 10"; do
    label=${wcase%%|*}; args=${wcase#*|}
    # shellcheck disable=SC2086
    python3 "$WIFI" --ns $WA $WB $args 2>"$WORK/wifi.log" &
    wp=$!
    for _ in $(seq 200); do grep -q '^wifi:' "$WORK/wifi.log" 2>/dev/null && break; sleep 0.05; done
    call "ip netns exec $WA" "ip netns exec $WB" 10.99.0.1 640 480 "$S" "wifi_$wp" auto
    kill $wp; wait $wp 2>/dev/null || true
    thin_row "$label" "wifi_$wp" "$S" "" 640 480
done
