#!/usr/bin/env bash
# The Windows build, run under Wine as a Windows laptop would meet a Linux
# one. Checks, each failing the script when it does not hold:
#   1. a headless call on loopback, Linux listening and Windows calling:
#      frames both ways, both sides' --stats files read (>= 25 fps, p95
#      <= 100 ms each way);
#   2. Windows listening in one network namespace, Linux calling from
#      another, over a 1 Mbit/s tbf link each way (the thin-link
#      benchmark's shaping) with camera-like content: at 640x480 asked,
#      >= 29 fps and p95 <= 60 ms each way; at 1280x720, >= 25 fps and
#      p95 <= 150 ms;
#   3. `vidchat.exe loopback` in a window under Wine and Xvfb: a screenshot
#      (target/wine-check/loopback.png) shows the test pattern, and the
#      picture moves.
# The exe runs from a folder holding only itself and the Wine-only random
# number shim (scripts/cross.sh builds both). Each Wine instance has its own
# prefix, started inside the namespace it uses (wineserver makes the
# sockets). Needs root; installs what it needs on Debian.
# Usage: scripts/wine-check.sh [SECONDS]   (default 20 s a shaped call)
# Env: PARTS, some of "loopback link window" (default all three).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
S=${1:-20}
EXE=target/x86_64-pc-windows-gnu/release/vidchat.exe
SHIM=target/wine-shim/bcryptprimitives.dll
WORK=target/wine-check
WINE=/usr/lib/wine/wine64
WINESERVER=/usr/lib/wine/wineserver

[ -f "$EXE" ] && [ -f "$SHIM" ] || { echo "no $EXE or $SHIM: run scripts/cross.sh windows first" >&2; exit 1; }
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    need=()
    [ -x "$WINE" ] || need+=(wine64)
    command -v Xvfb >/dev/null || need+=(xvfb)
    command -v xwd >/dev/null || need+=(x11-apps)
    command -v xdotool >/dev/null || need+=(xdotool)
    command -v convert >/dev/null || need+=(imagemagick)
    command -v tc >/dev/null || need+=(iproute2)
    command -v python3 >/dev/null || need+=(python3)
    python3 -c 'import ensurepip' 2>/dev/null || need+=(python3-venv)
    if [ ${#need[@]} -gt 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
fi

rm -rf "$WORK"
mkdir -p "$WORK/windows"
cp "$EXE" "$SHIM" "$WORK/windows/"
WORK=$(realpath "$WORK")
cargo build --release --locked -q
LINUX=$(realpath target/release/vidchat)

# Camera-like content (a photo panned, with sensor noise), as the benchmark.
if [ ! -x target/bench/venv/bin/python ]; then
    python3 -m venv target/bench/venv
    target/bench/venv/bin/pip install -q numpy scikit-image
fi
PY=$PWD/target/bench/venv/bin/python
content() { # W H -> a 3 s looping clip
    local f=target/bench/coffee_$1x$2.y4m
    [ -s "$f" ] || "$PY" bench/make_content.py "$f" "$1" "$2" 90
    realpath "$f"
}

A=wcA$$; B=wcB$$; VA=wca$$; VB=wcb$$
XPID=
cleanup() {
    local job
    for job in $(jobs -p); do kill "$job" 2>/dev/null || true; done
    for p in "$WORK"/prefix-*; do [ -d "$p" ] && WINEPREFIX=$p "$WINESERVER" -k 2>/dev/null || true; done
    [ -n "$XPID" ] && kill "$XPID" 2>/dev/null || true
    ip netns del $A 2>/dev/null || true
    ip netns del $B 2>/dev/null || true
}
trap cleanup EXIT

# ns_run NS CMD...: CMD in network namespace NS ("-": this one).
ns_run() { local ns=$1; shift; if [ "$ns" = - ]; then "$@"; else ip netns exec "$ns" "$@"; fi; }

# A Wine prefix for one instance, made (and its wineserver started) in NS.
prefix() { # NAME NS -> path
    local p=$WORK/prefix-$1
    mkdir -p "$p"
    ns_run "$2" env WINEPREFIX="$p" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml=" "$WINE" wineboot -i >/dev/null 2>&1
    echo "$p"
}

# windows PREFIX NS ARGS...: vidchat.exe under Wine, ended after $LIMIT s.
LIMIT=120
windows() {
    local p=$1 ns=$2; shift 2
    (cd "$WORK/windows" && ns_run "$ns" env WINEPREFIX="$p" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml=" \
        timeout -k 5 "$LIMIT" "$WINE" ./vidchat.exe "$@")
}

wait_listening() { # NS PORT
    for _ in $(seq 600); do ns_run "$1" ss -ltn | grep -q ":$2 " && return; sleep 0.05; done
    echo "nothing listens on port $2" >&2
    exit 1
}

# expect LABEL STATS SECONDS MIN_FPS MAX_P95_MS: one line, and failure below the bar.
expect() {
    local summary
    summary=$(python3 bench/analyze.py summary "$2" "$3")
    python3 - "$1" "$summary" "$4" "$5" <<'PYEOF'
import json, sys
label, s, min_fps, max_p95 = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
ok = s["frames"] > 0 and s["fps"] >= min_fps and s["p95_ms"] is not None and s["p95_ms"] <= max_p95
print(f"{'ok  ' if ok else 'FAIL'} {label}: {s['fps']} fps, p95 {s['p95_ms']} ms, {s['mbit_s']} Mbit/s, sizes {s.get('sizes')}"
      f" (needs >= {min_fps:g} fps, p95 <= {max_p95:g} ms)")
sys.exit(0 if ok else 1)
PYEOF
}

# call TAG SIZE SECONDS LISTEN_NS CONNECT_NS HOST WHO_LISTENS: a headless
# call, stats in $WORK/TAG.{listen,connect}.jsonl.
call() {
    local tag=$1 size=$2 secs=$3 lns=$4 cns=$5 host=$6 who=$7 src port p
    src=$(content "${size%x*}" "${size#*x}")
    port=$((20000 + RANDOM % 20000))
    # A side whose peer never came must not wait for ever.
    LIMIT=$((secs + 90))
    local common=(--yes --source "$src" --size "$size" --no-window --duration "$secs")
    if [ "$who" = windows ]; then
        p=$(prefix "$tag" "$lns")
        windows "$p" "$lns" listen --port $port "${common[@]}" --stats "$WORK/$tag.listen.jsonl" >"$WORK/$tag.listen.out" 2>"$WORK/$tag.listen.log" &
    else
        ns_run "$lns" timeout -k 5 $LIMIT "$LINUX" listen --port $port "${common[@]}" --stats "$WORK/$tag.listen.jsonl" >"$WORK/$tag.listen.out" 2>"$WORK/$tag.listen.log" &
    fi
    local lp=$!
    wait_listening "$lns" $port
    if [ "$who" = windows ]; then
        ns_run "$cns" timeout -k 5 $LIMIT "$LINUX" connect "$host:$port" "${common[@]}" --stats "$WORK/$tag.connect.jsonl" 2>"$WORK/$tag.connect.log" &
    else
        p=$(prefix "$tag" "$cns")
        windows "$p" "$cns" connect "$host:$port" "${common[@]}" --stats "$WORK/$tag.connect.jsonl" 2>"$WORK/$tag.connect.log" &
    fi
    local cp=$!
    local rc=0
    wait $lp || rc=$?
    wait $cp || rc=$?
    if [ $rc != 0 ]; then
        echo "FAIL $tag: a side ended with exit status $rc" >&2
        tail -n 5 "$WORK/$tag".*.log >&2
        exit 1
    fi
}

failed=0
want() { [[ " ${PARTS:-loopback link window} " == *" $1 "* ]]; }
echo "vidchat.exe beside: $(ls "$WORK/windows" | tr '\n' ' ')"

# 1. Loopback: Windows calls Linux.
if want loopback; then
call loopback 640x480 6 - - 127.0.0.1 linux
expect "loopback, Linux -> Windows" "$WORK/loopback.connect.jsonl" 6 25 100 || failed=1
expect "loopback, Windows -> Linux" "$WORK/loopback.listen.jsonl" 6 25 100 || failed=1
fi

# 2. A 1 Mbit/s link each way: Windows listens in A, Linux calls from B.
if want link; then
ip netns add $A; ip netns add $B
ip link add $VA type veth peer name $VB
ip link set $VA netns $A; ip link set $VB netns $B
ip -n $A addr add 10.78.0.1/24 dev $VA; ip -n $B addr add 10.78.0.2/24 dev $VB
for n in $A $B; do ip -n $n link set lo up; done
ip -n $A link set $VA up; ip -n $B link set $VB up
ip netns exec $A tc qdisc replace dev $VA root tbf rate 1mbit burst 16kb latency 100ms
ip netns exec $B tc qdisc replace dev $VB root tbf rate 1mbit burst 16kb latency 100ms
for bar in "640x480 29 60" "1280x720 25 150"; do
    set -- $bar
    call "tbf1m_$1" "$1" "$S" $A $B 10.78.0.1 windows
    expect "1 Mbit/s, $1, Windows -> Linux" "$WORK/tbf1m_$1.connect.jsonl" "$S" "$2" "$3" || failed=1
    expect "1 Mbit/s, $1, Linux -> Windows" "$WORK/tbf1m_$1.listen.jsonl" "$S" "$2" "$3" || failed=1
done
fi

# 3. The window: loopback under Wine + Xvfb, the test pattern.
if want window; then
disp=$((100 + RANDOM % 100))
Xvfb ":$disp" -screen 0 1280x800x24 -nolisten tcp 2>/dev/null &
XPID=$!
for _ in $(seq 200); do [ -S "/tmp/.X11-unix/X$disp" ] && break; sleep 0.05; done
p=$(DISPLAY=":$disp" prefix window -)
DISPLAY=":$disp" windows "$p" - loopback --source test --duration 30 2>"$WORK/window.log" &
wp=$!
window=
for _ in $(seq 600); do
    window=$(DISPLAY=":$disp" xdotool search --name 'vidchat$' 2>/dev/null | head -n 1 || true)
    [ -n "$window" ] && break
    sleep 0.05
done
shot() { DISPLAY=":$disp" xwd -root -silent | convert xwd:- "$1"; }
look() { # PNG -> "MEAN COLOURS": the window's mean brightness (0-255) and distinct colours
    local X Y WIDTH HEIGHT SCREEN
    eval "$(DISPLAY=":$disp" xdotool getwindowgeometry --shell "$window")"
    convert "$1" -crop "${WIDTH}x$HEIGHT+$X+$Y" +repage "$WORK/window-only.png"
    convert "$WORK/window-only.png" -colorspace Gray -format '%[fx:int(255*mean)] ' info:
    convert "$WORK/window-only.png" -format '%k' info:
}
if [ -z "$window" ]; then
    echo "FAIL window: no vidchat window appeared" >&2
    failed=1
else
    # The pattern is bright and many-coloured, and it moves.
    mean=0 colours=0 moved=0
    for _ in $(seq 100); do
        shot "$WORK/loopback.png"
        read -r mean colours <<<"$(look "$WORK/loopback.png")"
        [ "$mean" -gt 40 ] && [ "$colours" -gt 50 ] && break
        sleep 0.1
    done
    for _ in $(seq 50); do
        shot "$WORK/loopback-later.png"
        moved=$(compare -metric AE "$WORK/loopback.png" "$WORK/loopback-later.png" null: 2>&1 || true)
        moved=${moved%% *}
        [ "$moved" != 0 ] && break
        sleep 0.1
    done
    if [ "$mean" -gt 40 ] && [ "$colours" -gt 50 ] && [ "$moved" != 0 ]; then
        echo "ok   window: vidchat.exe loopback shows a picture (mean brightness $mean, $colours colours, $moved pixels changed a moment later; $WORK/loopback.png)"
    else
        echo "FAIL window: mean brightness $mean, $colours colours, $moved pixels changed ($WORK/loopback.png)" >&2
        failed=1
    fi
    # Esc hangs up, as a person would.
    DISPLAY=":$disp" xdotool key --window "$window" Escape 2>/dev/null || true
fi
if wait $wp && grep -q 'call ended: you hung up' "$WORK/window.log"; then
    echo "ok   window: Esc hung up"
elif [ -n "$window" ]; then
    echo "FAIL window: Esc did not end the call cleanly: $(tail -n 2 "$WORK/window.log")" >&2
    failed=1
fi

fi

exit $failed
