#!/bin/bash
# Calls that lose their link, run as a person would (root: network
# namespaces). Each part prints what happened in numbers:
#   outage   a 10 s outage (100 % loss, ../shared/bench/wifi.py --control)
#            in the middle of a 40 s call: both sides must stay in the call,
#            frames flow again within 1 s of the link coming back, and the
#            call ends at its --duration (exit 0);
#   address  the caller's address changes mid-call (a new address on its
#            interface, the old one removed, over a veth pair): the call
#            must resume within 2 s;
#   moved    the listener's address changes mid-call and the caller, who
#            called it by name, finds it again by mDNS;
#   long     a 40 s outage: both sides end by 31 s after it began, with
#            "peer not responding", exit 3;
#   frozen   the caller is stopped (SIGSTOP) mid-call: the listener must
#            end within 6 s, with "peer not responding".
#
#   sudo bench/outage.sh [PART...]      (default: all five)
#
# Builds the release binary first. Only loopback and the namespaces this
# script makes carry traffic.
set -euo pipefail
cd "$(dirname "$0")/.."
PARTS=${*:-outage address moved long frozen}
WIFI=${WIFI:-../shared/bench/wifi.py}
cargo build --release --quiet
BIN=$PWD/target/release/vidchat
OUT=$(mktemp -d /tmp/vidchat-outage.XXXXXX)
JOBS=()
cleanup() {
    for job in "${JOBS[@]}"; do kill "$job" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for ns in wa wb oa ob; do ip netns del $ns 2>/dev/null || true; done
}
trap cleanup EXIT

now() { date +%s.%N; }

# Runs one side: NS NAME ARGS...; its stats, stderr and exit status land
# in $OUT/NAME.*.
side() {
    local ns=$1 name=$2
    shift 2
    (
        set +e
        HOME=$OUT/home-$name ip netns exec "$ns" "$BIN" "$@" --no-window --yes \
            --source test --stats "$OUT/$name.jsonl" >"$OUT/$name.out" 2>"$OUT/$name.err"
        echo $? >"$OUT/$name.rc"
        now >"$OUT/$name.ended"
    ) &
    JOBS+=($!)
}

# The gap in what NAME showed around DOWN..UP (Unix seconds): the last
# frame before, the first after, and how many times the call moved over.
gap() {
    python3 - "$OUT/$1.jsonl" "$2" "$3" <<'EOF'
import json, sys
path, down, up = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
rows = [json.loads(l) for l in open(path)]
before = [r for r in rows if r["shown_us"] / 1e6 < up]
after = [r for r in rows if r["shown_us"] / 1e6 >= up]
last = before[-1]["shown_us"] / 1e6 - down if before else float("nan")
if after:
    first = after[0]
    print(f"last frame {last:+.2f} s from the cut, first after {first['shown_us'] / 1e6 - up:.2f} s"
          f" after the link came back ({first['width']}x{first['height']}, keyframe {first['keyframe']}),"
          f" resumptions {rows[-1]['resumptions']}, {len(rows)} frames")
else:
    print(f"last frame {last:+.2f} s from the cut, no frame after the link came back")
EOF
}

ends() {
    local name=$1
    echo "$name: exit $(cat "$OUT/$name.rc"), $(grep -o 'call ended: .*' "$OUT/$name.err" | tail -1)"
}

wifi_up() {
    echo "20 2 2 0 1" >"$OUT/ctl"
    python3 "$WIFI" --ns wa wb --rate 20 --delay 2 --jitter 2 --control "$OUT/ctl" 2>"$OUT/wifi.err" &
    WIFI_PID=$!
    JOBS+=($WIFI_PID)
    while ! ip -n wb addr show 2>/dev/null | grep -q 10.99.0.2; do sleep 0.1; done
}

wifi_loss() {
    echo "20 2 2 $1 1" >"$OUT/ctl"
    kill -USR1 "$WIFI_PID"
}

wifi_down() {
    kill "$WIFI_PID"
    wait "$WIFI_PID" 2>/dev/null || true
}

# Waits until NAME has shown a frame (the call runs).
in_call() {
    while [ ! -s "$OUT/$1.jsonl" ]; do sleep 0.2; done
}

outage() {
    wifi_up
    side wa listener listen --port 9999 --duration 40
    sleep 0.5
    side wb caller connect 10.99.0.1:9999 --duration 40
    in_call caller
    sleep 12
    wifi_loss 100
    local down=$(now)
    sleep 10
    wifi_loss 0
    local up=$(now)
    wait "${JOBS[@]: -2}" || true
    echo "outage 10 s in a 40 s call:"
    for name in listener caller; do
        echo "  $(ends $name); $(gap $name "$down" "$up")"
    done
    grep -h 'reconnecting' "$OUT/caller.err" | head -1 | sed 's/^/  caller status: /'
    wifi_down
}

# Two namespaces, oa (10.88.0.1) and ob (10.88.0.2), joined by a veth
# pair; an address removed from either is replaced by the next one.
veth_up() {
    ip netns add oa
    ip netns add ob
    ip link add voa type veth peer name vob
    ip link set voa netns oa
    ip link set vob netns ob
    for n in oa ob; do
        ip netns exec $n sysctl -qw net.ipv4.conf.all.promote_secondaries=1
        ip netns exec $n sysctl -qw net.ipv4.conf.v$n.promote_secondaries=1
        ip -n $n link set lo up
    done
    ip -n oa addr add 10.88.0.1/24 dev voa
    ip -n ob addr add 10.88.0.2/24 dev vob
    ip -n oa link set voa up
    ip -n ob link set vob up
}

veth_down() {
    ip netns del oa
    ip netns del ob
}

# Moves NS's interface DEV from address OLD to NEW (/24) and prints when.
move() {
    ip -n "$1" addr add "$4/24" dev "$2"
    ip -n "$1" addr del "$3/24" dev "$2"
    now
}

# Once the call runs, moves NS's address OLD to NEW, waits for both sides
# to end and prints how each did, under TITLE.
change_address() {
    local title=$1 ns=$2 old=$3 new=$4 moved
    in_call caller
    sleep 6
    moved=$(move "$ns" "v$ns" "$old" "$new")
    wait "${JOBS[@]: -2}" || true
    echo "$title"
    for name in listener caller; do
        echo "  $(ends $name); $(gap $name "$moved" "$moved")"
    done
    veth_down
}

address() {
    veth_up
    side oa listener listen --port 9999 --duration 20
    sleep 0.5
    side ob caller connect 10.88.0.1:9999 --duration 20
    change_address "caller's address 10.88.0.2 -> 10.88.0.3 mid-call:" ob 10.88.0.2 10.88.0.3
}

# The listener's address changes; the caller called it by name, so it must
# find the new address through mDNS.
moved() {
    veth_up
    side oa listener listen --port 9999 --name alice --duration 25
    sleep 0.5
    side ob caller connect alice --duration 25
    change_address "listener's address 10.88.0.1 -> 10.88.0.4 mid-call (called by name):" \
        oa 10.88.0.1 10.88.0.4
}

long() {
    wifi_up
    side wa listener listen --port 9999 --duration 90
    sleep 0.5
    side wb caller connect 10.99.0.1:9999 --duration 90
    in_call caller
    sleep 5
    wifi_loss 100
    local down=$(now)
    wait "${JOBS[@]: -2}" || true
    echo "outage of 40 s (the call must end first):"
    for name in listener caller; do
        local after
        after=$(python3 -c "print(f'{$(cat "$OUT/$name.ended") - $down:.1f}')")
        echo "  $(ends $name), ${after} s after the cut"
    done
    wifi_down
}

frozen() {
    wifi_up
    side wa listener listen --port 9999 --duration 60
    sleep 0.5
    side wb caller connect 10.99.0.1:9999 --duration 60
    in_call listener
    sleep 3
    local caller
    caller=$(pgrep -f "vidchat connect 10.99.0.1:9999" | head -1)
    kill -STOP "$caller"
    local stopped=$(now)
    wait "${JOBS[-2]}" || true
    local after
    after=$(python3 -c "print(f'{$(cat "$OUT/listener.ended") - $stopped:.1f}')")
    echo "caller stopped (SIGSTOP) mid-call:"
    echo "  $(ends listener), ${after} s after the stop"
    echo "  listener status lines saying reconnecting: $(grep -c 'reconnecting' "$OUT/listener.err" || true)"
    kill -KILL "$caller"
    wait "${JOBS[-1]}" || true
    wifi_down
}

for part in $PARTS; do
    rm -f "$OUT"/*.jsonl "$OUT"/*.rc "$OUT"/*.ended
    $part
done
echo "(files in $OUT)"
