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
#   smoke     the rival alone, 500 subscribers on 5 topics x 20 messages:
#             fails unless every connection opened and every push arrived
#             in seq order (the rival's check; it has no Go tests)
#
# PIN=1 runs every server on CPU 0 and wsbench on CPU 1 (taskset): on a
# shared 2-core machine an unpinned handshake rate mostly measures how the
# scheduler splits the cores between the client, the server and everything
# else running; pinned, each side has a core (GOMAXPROCS, wspush's loops and
# nbio's pollers follow the affinity: one each) and the rate shows what the
# server costs. docs/benchmarks.md quotes both.
#
# Bounded: about 2.5 minutes for all four. Results: $OUT/*.json, $OUT/*.html.
#
#   ROUNDS=3 PIN=0 OUT=out/rivals sh bench/rivals.sh [smoke connect fanout baseline]
set -eu
OUT=${OUT:-out/rivals}
ROUNDS=${ROUNDS:-3}
SRC=${SRC:-127.0.0.2-127.0.0.60}
WSPUSH_PORT=${WSPUSH_PORT:-29180}
NBIO_PORT=${NBIO_PORT:-29280}
BASE_PORT=${BASE_PORT:-29380}
PIN=${PIN:-0}
SCENARIOS=${*:-smoke connect fanout baseline}
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

# first prints the first value of the JSON number field $1 in file $2.
first() { grep -oE "\"$1\": *[0-9]+" "$2" | head -n 1 | grep -oE '[0-9]+$'; }

# smoke runs a small fanout against a fresh nbio rival and checks its result.
smoke() {
	echo "== smoke: nbio, fanout 500 x 5 topics x 20 messages"
	port=$(port nbio)
	f=$OUT/smoke.json
	rm -f "$f"
	rc=0
	# -server-cmd starts the rival and waits until it accepts
	$CLIENT_CPU "$BIN/wsbench" fanout -no-progress -src "$SRC" -server-cmd "$(server nbio "$port")" \
		-url "ws://127.0.0.1:$port/ws" -admin "http://127.0.0.1:$((port + 1))" \
		-conns 500 -topics 5 -messages 20 -duration 20s -json "$f" || rc=$?
	if [ "$rc" != 0 ] || [ ! -s "$f" ] || [ "$(first connected "$f")" != 500 ] || [ "$(first expected "$f")" != 10000 ] ||
		[ "$(first deliveries "$f")" != 10000 ] || [ "$(first lost "$f")" != 0 ] || [ "$(first out_of_order "$f")" != 0 ]; then
		echo "smoke: FAILED (wsbench exit $rc; $f; wsbench -v shows the server's output)" >&2
		exit 1
	fi
	echo "smoke: ok (500 connected, 10000 of 10000 pushes, 0 lost, 0 out of order)"
}

for s in $SCENARIOS; do
	case $s in
	connect) cmp connect wspush nbio -scenario connect -rounds "$ROUNDS" -conns 15000 -rate 0 -duration 30s ;;
	fanout) cmp fanout wspush nbio -scenario fanout -rounds 1 -conns 10000 -rate 5000 -messages 200 -size 128 -duration 60s ;;
	baseline) cmp baseline nbio baseline -scenario connect -rounds 1 -conns 15000 -rate 0 -duration 30s ;;
	smoke) smoke ;;
	*) echo "unknown scenario $s" >&2; exit 2 ;;
	esac
done
