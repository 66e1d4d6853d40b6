#!/bin/sh
# bench/rivals.sh: build wspush, the baseline, wsbench and the nbio rival
# (bench/rivals/nbio, its own Go module), then compare wspush (A) with nbio (B)
# the way bench/run.sh compares it with the baseline: wsbench compare, a
# fresh server for every run (-a-cmd/-b-cmd), A B A B. Ratios are A/B.
#
#   connect   15,000 handshakes unpaced (-rate 0), ROUNDS rounds (3): issue
#             14's stretch target, handshakes/s >= 1.3x the best rival
#   fanout    10,000 subscribers x 200 x 128 B, as fast as accepted, 1 round
#   baseline  connect again, nbio (A) against bench/baseline (B), 1 round:
#             places the rival beside the yardstick docs/benchmarks.md uses
#
# PIN=1 runs every server on CPU 0 and wsbench on CPU 1 (taskset): on a
# shared 2-core machine an unpinned handshake rate mostly measures how the
# scheduler splits the cores between the client, the server and everything
# else running; pinned, each side has a core (GOMAXPROCS, wspush's loops and
# nbio's pollers follow the affinity: one each) and the rate shows what the
# server costs. docs/benchmarks.md quotes both.
#
# Bounded: about 2 minutes for all three. Results: $OUT/*.json, $OUT/*.html.
#
#   ROUNDS=3 PIN=0 OUT=out/rivals sh bench/rivals.sh [connect fanout baseline]
set -eu
OUT=${OUT:-out/rivals}
ROUNDS=${ROUNDS:-3}
SRC=${SRC:-127.0.0.2-127.0.0.60}
WSPUSH_PORT=${WSPUSH_PORT:-27380}
NBIO_PORT=${NBIO_PORT:-27480}
BASE_PORT=${BASE_PORT:-27580}
PIN=${PIN:-0}
SCENARIOS=${*:-connect fanout baseline}
SERVER_CPU= CLIENT_CPU=
if [ "$PIN" = 1 ]; then
	SERVER_CPU="taskset -c 0" CLIENT_CPU="taskset -c 1"
fi

mkdir -p "$OUT/bin"
BIN=$(cd "$OUT/bin" && pwd)
go build -o "$BIN/wspush" ./cmd/wspush
go build -o "$BIN/baseline" ./bench/baseline
go build -o "$BIN/wsbench" ./cmd/wsbench
(cd bench/rivals/nbio && go build -o "$BIN/nbio" .)

# cmp runs `wsbench compare`: name, server A, server B, then wsbench flags.
cmp() {
	name=$1 a=$2 b=$3
	shift 3
	aport=$(port "$a") bport=$(port "$b")
	acmd=$(server "$a" "$aport") bcmd=$(server "$b" "$bport")
	echo "== $name: $a (A) against $b (B), PIN=$PIN; uptime:$(uptime)"
	$CLIENT_CPU "$BIN/wsbench" compare -no-progress -src "$SRC" \
		-a-name "$a" -a-url "ws://127.0.0.1:$aport/ws" -a-admin "http://127.0.0.1:$((aport + 1))" -a-cmd "$acmd" \
		-b-name "$b" -b-url "ws://127.0.0.1:$bport/ws" -b-admin "http://127.0.0.1:$((bport + 1))" -b-cmd "$bcmd" \
		-json "$OUT/$name.json" -report "$OUT/$name.html" "$@"
	echo "uptime after $name:$(uptime)"
}

# port prints the WebSocket port of server $1.
port() {
	case $1 in
	wspush) echo "$WSPUSH_PORT" ;;
	nbio) echo "$NBIO_PORT" ;;
	baseline) echo "$BASE_PORT" ;;
	esac
}

# server prints the command line of server $1 listening on port $2 (admin: $2 + 1).
server() {
	case $1 in
	wspush) echo "$SERVER_CPU $BIN/wspush -log-level warn -listen 127.0.0.1:$2 -admin 127.0.0.1:$(($2 + 1))" ;;
	*) echo "$SERVER_CPU $BIN/$1 -listen 127.0.0.1:$2 -admin 127.0.0.1:$(($2 + 1))" ;;
	esac
}

for s in $SCENARIOS; do
	case $s in
	connect) cmp connect wspush nbio -scenario connect -rounds "$ROUNDS" -conns 15000 -rate 0 -duration 30s ;;
	fanout) cmp fanout wspush nbio -scenario fanout -rounds 1 -conns 10000 -rate 5000 -messages 200 -size 128 -duration 60s ;;
	baseline) cmp baseline nbio baseline -scenario connect -rounds 1 -conns 15000 -rate 0 -duration 30s ;;
	*) echo "unknown scenario $s" >&2; exit 2 ;;
	esac
done
