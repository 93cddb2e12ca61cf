#!/usr/bin/env bash
# Soak: one long headless call on loopback (test pattern, 640x480@30), the
# listener's and caller's RSS and open file descriptors sampled every 10 s.
# Prints the samples and the growth from the first sample after warm-up.
# Usage: bench/soak.sh [MINUTES]   (default 30)
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
MIN=${1:-30}
SECS=$((MIN * 60))
cargo build --release --locked -q
BIN=$PWD/target/release/vidchat
OUT=target/bench/soak
mkdir -p "$OUT"
"$BIN" listen --port 0 --bind 127.0.0.1 --yes --source test --no-window --duration "$SECS" \
    >"$OUT/listen.out" 2>"$OUT/listen.err" &
LP=$!
for _ in $(seq 100); do grep -q 'port [0-9]' "$OUT/listen.out" 2>/dev/null && break; sleep 0.05; done
PORT=$(grep -o 'port [0-9]*' "$OUT/listen.out" | head -1 | cut -d' ' -f2)
"$BIN" connect "127.0.0.1:$PORT" --yes --source test --no-window --duration "$SECS" 2>"$OUT/connect.err" &
CP=$!
sample() { # PID -> "rss_kb fds"
    echo "$(awk '/VmRSS/ {print $2}' /proc/"$1"/status 2>/dev/null || echo 0) $(ls /proc/"$1"/fd 2>/dev/null | wc -l)"
}
echo "t_s listen_rss_kb listen_fds connect_rss_kb connect_fds" | tee "$OUT/samples.txt"
t=0
while kill -0 $LP 2>/dev/null && kill -0 $CP 2>/dev/null; do
    echo "$t $(sample $LP) $(sample $CP)" | tee -a "$OUT/samples.txt"
    sleep 10; t=$((t + 10))
done
wait $LP; LRC=$?
wait $CP; CRC=$?
echo "exit codes: listen $LRC, connect $CRC"
awk 'NR==2 {next} NR==3 {l0=$2; lf0=$3; c0=$4; cf0=$5} {l=$2; lf=$3; c=$4; cf=$5}
     END {printf "growth after the first 10 s: listen RSS %+d kB, fds %+d; connect RSS %+d kB, fds %+d\n", l-l0, lf-lf0, c-c0, cf-cf0}' "$OUT/samples.txt"
tail -2 "$OUT/listen.err"
