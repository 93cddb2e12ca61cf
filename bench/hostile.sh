#!/usr/bin/env bash
# Hostile clients against `vidchat listen --yes`, then checks: one log line
# per client, no panic, peak RSS under 100 MB, and a real call still works.
# Then a call's TCP stream is captured (tcpdump on loopback; root) and
# searched for JPEG markers and plaintext message or host names.
# Usage: sudo bench/hostile.sh
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
cargo build --release --locked -q
BIN=$PWD/target/release/vidchat
OUT=target/bench/hostile
mkdir -p "$OUT"
command -v tcpdump >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tcpdump >/dev/null; }

start_listener() { # LOG -> sets LP, PORT
    "$BIN" listen --port 0 --bind 127.0.0.1 --yes --source test --no-window --duration 3 >"$1.out" 2>"$1" &
    LP=$!
    for _ in $(seq 100); do grep -q 'port [0-9]' "$1.out" 2>/dev/null && break; sleep 0.05; done
    PORT=$(grep -o 'port [0-9]*' "$1.out" | head -1 | cut -d' ' -f2)
}

start_listener "$OUT/listen.err"
echo "hostile clients against vidchat listen on port $PORT:"
EXPECTED=$(python3 bench/hostile.py "$PORT" | tee /dev/stderr | tail -1)
PEAK=$(awk '/VmHWM/ {print $2}' /proc/$LP/status)
"$BIN" connect "127.0.0.1:$PORT" --yes --source test --no-window --duration 2 2>"$OUT/connect.err"
wait $LP
# A line per refusal, within the door's log budget; what a burst pushes
# out or goes past the budget is counted in its "door:" lines.
LINES=$(grep -c '^refused connection' "$OUT/listen.err" || true)
COUNTED=$(grep '^door:' "$OUT/listen.err" | grep -oE '(pushed out [0-9]+|[0-9]+ more refused)' | grep -oE '[0-9]+' | awk '{n += $1} END {print n + 0}')
REFUSED=$((LINES + COUNTED))
echo
echo "listener log: a line per client within its budget, then counts:"
grep -E '^(refused connection|door:)' "$OUT/listen.err" | sed -E 's/from [^ ]+: /from ...: /; s/^/  /' | sort | uniq -c | sort -rn
echo
echo "refused: $REFUSED of $EXPECTED clients ($LINES in lines of their own); panics: $(grep -c panicked "$OUT/listen.err" || true); peak RSS: $((PEAK / 1024)) MB"
echo "real call afterwards: $(grep 'call ended' "$OUT/connect.err")"
if ! { [ "$REFUSED" = "$EXPECTED" ] && [ "$PEAK" -lt 102400 ] && grep -q 'call ended: you hung up' "$OUT/connect.err"; }; then
    echo "FAILED: not every hostile client was refused, or memory grew, or the real call failed" >&2
    exit 1
fi

echo
echo "a real caller while 40 strangers hold connections open (30 silent, 10 stalled mid-Hello):"
start_listener "$OUT/crowd.err"
python3 - "$PORT" <<'PYEOF' &
import socket, sys, time
conns = [socket.create_connection(("127.0.0.1", int(sys.argv[1]))) for _ in range(40)]
for c in conns[::4]:
    c.send(b"\x16\x00\x00\x00\x00")
time.sleep(8)
PYEOF
CROWD=$!
sleep 0.5
T0=$(date +%s%6N)
"$BIN" connect "127.0.0.1:$PORT" --yes --source test --no-window --duration 2 --stats "$OUT/crowd.jsonl" 2>"$OUT/crowd-connect.err"
wait $LP
kill $CROWD 2>/dev/null || true
FIRST=$(python3 -c "import json,sys; print(min(json.loads(l)['shown_us'] for l in open(sys.argv[1])))" "$OUT/crowd.jsonl")
echo "  first frame $(( (FIRST - T0) / 1000 )) ms after the caller started; $(grep 'call ended' "$OUT/crowd-connect.err")"

echo
echo "capturing a 3 s call on loopback:"
start_listener "$OUT/capture.err"
tcpdump -i lo -U -w "$OUT/call.pcap" "tcp port $PORT" 2>/dev/null &
TP=$!
sleep 1
"$BIN" connect "127.0.0.1:$PORT" --yes --source test --no-window --duration 3 2>/dev/null
wait $LP
sleep 1; kill $TP; wait $TP 2>/dev/null || true
python3 - "$OUT/call.pcap" "$(hostname)" <<'PYEOF'
import sys
data = open(sys.argv[1], "rb").read()
print(f"  {len(data)} bytes captured (a plaintext call would hold each marker once per frame, ~90 times)")
for label, needle in [("JPEG start FF D8 FF", b"\xff\xd8\xff"), ("JFIF", b"JFIF"), ("host name", sys.argv[2].encode()),
                      ("'Frame'", b"Frame"), ("'Ping'", b"Ping"), ("'Bye'", b"Bye")]:
    chance = len(data) / 256 ** len(needle)
    print(f"  {label:<22} found {data.count(needle):4} times; random bytes would hold it {chance:8.1f} times")
PYEOF
