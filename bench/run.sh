#!/bin/sh
# bench/run.sh: build wspush, the baseline and wsbench, then compare them
# (A = wspush, B = baseline) on connect, fanout (throughput and latency at a
# fixed rate), slow, churn and the latency curve, and measure wspush's paced
# fan-out against the syscall floor (sparse). Every run starts a fresh server
# (-a-cmd/-b-cmd/-server-cmd) so memory figures do not inherit an earlier
# run. Bounded: about 7 minutes with ROUNDS=2 (the curve runs CURVE_ROUNDS=1
# rounds of 3 s steps). Results: $OUT/*.json, $OUT/*.html, $OUT/curve.svg;
# ratios are A/B.
#
# inbox: 10,000 topics of one subscriber each fed through POST
# /publish/batch (batches of 100, offered 200k publishes/s), then by single
# POST /publish for the CPU per publish beside it (wspush only: the baseline
# has no batch endpoint).
#
#   ROUNDS=3 OUT=out/bench sh bench/run.sh [connect fanout latency slow churn curve sparse inbox]
set -eu
OUT=${OUT:-out/bench}
ROUNDS=${ROUNDS:-2}
CURVE_ROUNDS=${CURVE_ROUNDS:-1}
SRC=${SRC:-127.0.0.2-127.0.0.60}
APORT=${APORT:-27180}
BPORT=${BPORT:-27080}
SCENARIOS=${*:-connect fanout latency slow churn curve sparse inbox}

BIN=$OUT/bin
mkdir -p "$BIN"
go build -o "$BIN/wspush" ./cmd/wspush
go build -o "$BIN/baseline" ./bench/baseline
go build -o "$BIN/wsbench" ./cmd/wsbench

AADM=$((APORT + 1))
BADM=$((BPORT + 1))
WSPUSH="$BIN/wspush -listen 127.0.0.1:$APORT -admin 127.0.0.1:$AADM -log-level warn"
BASE="$BIN/baseline -listen 127.0.0.1:$BPORT -admin 127.0.0.1:$BADM"

cmp() { # name, then wsbench flags; extra server flags in AFLAGS/BFLAGS
	name=$1
	shift
	echo "== $name"
	"$BIN/wsbench" compare -no-progress -rounds "$ROUNDS" -src "$SRC" \
		-a-url "ws://127.0.0.1:$APORT/ws" -a-admin "http://127.0.0.1:$AADM" -a-cmd "$WSPUSH ${AFLAGS:-}" \
		-b-url "ws://127.0.0.1:$BPORT/ws" -b-admin "http://127.0.0.1:$BADM" -b-cmd "$BASE ${BFLAGS:-}" \
		-json "$OUT/$name.json" -report "$OUT/$name.html" "$@"
}

for s in $SCENARIOS; do
	case $s in
	connect) cmp connect -scenario connect -conns 15000 -rate 5000 -duration 30s ;;
	fanout) cmp fanout -scenario fanout -conns 10000 -rate 5000 -messages 200 -size 128 -duration 60s ;;
	latency) cmp latency -scenario fanout -conns 10000 -rate 5000 -messages 60 -size 128 -pub-rate 5 -duration 30s ;;
	slow)
		AFLAGS="-sndbuf 16384 -max-buffered 131072" BFLAGS="-sndbuf 16384" \
			cmp slow -scenario slow -conns 2000 -rate 5000 -messages 400 -size 512 -pub-rate 40 -slow 0.1 -duration 30s
		;;
	churn) cmp churn -scenario churn -conns 200 -rate 1000 -duration 10s ;;
	curve)
		cmp curve -scenario curve -rounds "$CURVE_ROUNDS" -a-name wspush -b-name baseline -conns 10000 -rate 5000 \
			-steps 10k,25k,50k,100k,200k,300k,500k,1M -step-duration 3s -svg "$OUT/curve.svg"
		;;
	sparse)
		echo "== sparse"
		"$BIN/wsbench" sparse -no-progress -rounds "$ROUNDS" -src "$SRC" -server-cmd "$WSPUSH ${AFLAGS:-}" \
			-url "ws://127.0.0.1:$APORT/ws" -admin "http://127.0.0.1:$AADM" \
			-conns 10000 -rate 5000 -pub-rate 5 -messages 50 -duration 30s -json "$OUT/sparse.json"
		;;
	inbox)
		echo "== inbox"
		"$BIN/wsbench" inbox -no-progress -src "$SRC" -server-cmd "$WSPUSH ${AFLAGS:-}" \
			-url "ws://127.0.0.1:$APORT/ws" -admin "http://127.0.0.1:$AADM" \
			-conns 10000 -rate 5000 -batch 100 -pub-rate 200000 -messages 50 -publishers 8 -single-messages 3 -duration 30s \
			-json "$OUT/inbox.json"
		;;
	*) echo "unknown scenario $s" >&2; exit 2 ;;
	esac
done
