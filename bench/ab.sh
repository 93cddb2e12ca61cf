#!/usr/bin/env bash
# Two builds side by side on the 500 kbit/s links, both directions of each
# call, alternating so both see the same machine: over ../shared/bench/wifi.py
# (--rate 0.5 --delay 2) and over a tbf-shaped veth pair (500kbit, burst
# 16kb, latency 100ms), with and without the kernel's view
# (VIDCHAT_NO_TCP_INFO=1), 640x480 asked, the camera-like clip of link.sh.
# Needs root. Usage: sudo bench/ab.sh BEFORE_BIN AFTER_BIN [ROUNDS] [SECONDS]
# (default 2 rounds of 20 s calls). Prints one row per call: fps / p95 ms /
# Mbit/s listener -> caller, then caller -> listener.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
BEFORE=$(realpath "$1"); AFTER=$(realpath "$2"); ROUNDS=${3:-2}; S=${4:-20}
WIFI=${WIFI:-$(realpath ../shared/bench/wifi.py)}
WORK=target/bench
PY="$PWD/$WORK/venv/bin/python"
[ -x "$PY" ] || { echo "run bench/link.sh once first (it makes $WORK/venv and the clip)" >&2; exit 1; }
SRC="$PWD/$WORK/coffee_640x480.y4m"
[ -s "$SRC" ] || "$PY" bench/make_content.py "$SRC" 640 480 90

A=abA$$; B=abB$$; VA=aba$$; VB=abb$$
cleanup() { ip netns del $A 2>/dev/null || true; ip netns del $B 2>/dev/null || true; }
trap cleanup EXIT

# call BIN TAG HOST VIEW: a call between $A (listening) and $B
call() {
    local bin=$1 tag=$2 host=$3 view=$4 port=$((20000 + RANDOM % 20000)) env=()
    [ "$view" = portable ] && env=(VIDCHAT_NO_TCP_INFO=1)
    rm -f "$WORK/$tag".*
    ip netns exec $A env "${env[@]}" "$bin" listen --port $port --yes --source "$SRC" --size 640x480 \
        --no-window --duration "$S" --stats "$WORK/$tag.a.jsonl" >/dev/null 2>&1 &
    local lp=$!
    for _ in $(seq 100); do ip netns exec $A ss -ltn | grep -q ":$port " && break; sleep 0.05; done
    ip netns exec $B env "${env[@]}" "$bin" connect "$host:$port" --yes --source "$SRC" --size 640x480 \
        --no-window --duration "$S" --stats "$WORK/$tag.b.jsonl" >/dev/null 2>&1 || true
    wait $lp || true
}

cell() { # JSONL -> fps / p95 / Mbit/s
    "$PY" bench/analyze.py summary "$1" "$S" | "$PY" -c \
        'import json, sys; r = json.load(sys.stdin); print(r["fps"], "/", r["p95_ms"], "/", r["mbit_s"], end="")'
}

tbf_up() {
    ip netns add $A; ip netns add $B
    ip link add $VA type veth peer name $VB
    ip link set $VA netns $A; ip link set $VB netns $B
    ip -n $A addr add 10.79.0.1/24 dev $VA; ip -n $B addr add 10.79.0.2/24 dev $VB
    for n in $A $B; do ip -n $n link set lo up; done
    ip -n $A link set $VA up; ip -n $B link set $VB up
    ip netns exec $A tc qdisc replace dev $VA root tbf rate 500kbit burst 16kb latency 100ms
    ip netns exec $B tc qdisc replace dev $VB root tbf rate 500kbit burst 16kb latency 100ms
}

echo "| link | view | round | build | listener -> caller | caller -> listener |"
echo "|---|---|---|---|---|---|"
for round in $(seq "$ROUNDS"); do
    for view in portable kernel; do
        for build in before after; do
            bin=$BEFORE; [ $build = after ] && bin=$AFTER
            python3 "$WIFI" --ns $A $B --rate 0.5 --delay 2 2>"$WORK/ab_wifi.log" &
            wp=$!
            for _ in $(seq 200); do grep -q '^wifi:' "$WORK/ab_wifi.log" 2>/dev/null && break; sleep 0.05; done
            call "$bin" ab_wifi 10.99.0.1 $view
            kill $wp; wait $wp 2>/dev/null || true
            echo "| wifi.py 500 kbit/s | $view | $round | $build | $(cell $WORK/ab_wifi.b.jsonl) | $(cell $WORK/ab_wifi.a.jsonl) |"
            tbf_up
            call "$bin" ab_tbf 10.79.0.1 $view
            cleanup
            echo "| tbf 500 kbit/s | $view | $round | $build | $(cell $WORK/ab_tbf.b.jsonl) | $(cell $WORK/ab_tbf.a.jsonl) |"
        done
    done
done
