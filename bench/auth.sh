#!/bin/sh
# bench/auth.sh: the cost of auth (issue 12), wspush against wspush: A with
# auth off, B with auth on and a token in the URL (wsbench keeps the URL's
# query and adds topics=). Fresh servers every run (-a-cmd/-b-cmd). Needs
# node (to mint the tokens) and openssl (the ES256 key). Bounded: about
# 8 minutes with ROUNDS=3.
#
#   ROUNDS=3 OUT=out/bench-auth sh bench/auth.sh [connect-hs connect-es fanout]
set -eu
OUT=${OUT:-out/bench-auth}
ROUNDS=${ROUNDS:-3}
SRC=${SRC:-127.0.0.2-127.0.0.60}
SCENARIOS=${*:-connect-hs connect-es fanout}

BIN=$OUT/bin
mkdir -p "$BIN"
go build -o "$BIN/wspush" ./cmd/wspush
go build -o "$BIN/wsbench" ./cmd/wsbench
head -c 32 /dev/urandom | base64 | tr -d '\n' >"$OUT/hmac.key"
openssl ecparam -name prime256v1 -genkey -noout -out "$OUT/ec.key"
openssl ec -in "$OUT/ec.key" -pubout -out "$OUT/ec.pub" 2>/dev/null

# mint ALG KEYFILE: a day-long token for sub "bench" allowed every topic.
mint() {
	node -e '
const crypto = require("crypto"), fs = require("fs");
const [alg, file] = process.argv.slice(1);
const b64 = (b) => Buffer.from(b).toString("base64url");
const input = b64(JSON.stringify({ alg, typ: "JWT" })) + "." +
  b64(JSON.stringify({ sub: "bench", exp: Math.floor(Date.now() / 1000) + 86400, topics: ["*"] }));
const key = fs.readFileSync(file, "utf8");
const sig = alg === "HS256"
  ? crypto.createHmac("sha256", key.replace(/\r?\n$/, "")).update(input).digest()
  : crypto.sign("sha256", Buffer.from(input), { key, dsaEncoding: "ieee-p1363" });
process.stdout.write(input + "." + b64(sig));' "$1" "$2"
}
HS=$(mint HS256 "$OUT/hmac.key")
ES=$(mint ES256 "$OUT/ec.key")

OFF="$BIN/wspush -listen 127.0.0.1:27480 -admin 127.0.0.1:27481 -log-level warn"
ON="$BIN/wspush -listen 127.0.0.1:27580 -admin 127.0.0.1:27581 -log-level warn -auth-hmac-secret-file $OUT/hmac.key -auth-public-key-file $OUT/ec.pub"

cmp() { # name, token, then wsbench flags
	name=$1
	tok=$2
	shift 2
	echo "== $name"
	"$BIN/wsbench" compare -no-progress -rounds "$ROUNDS" -src "$SRC" \
		-a-url "ws://127.0.0.1:27480/ws" -a-admin "http://127.0.0.1:27481" -a-cmd "$OFF" \
		-b-url "ws://127.0.0.1:27580/ws?token=$tok" -b-admin "http://127.0.0.1:27581" -b-cmd "$ON" \
		-json "$OUT/$name.json" "$@"
}

for s in $SCENARIOS; do
	case $s in
	connect-hs) cmp connect-hs "$HS" -scenario connect -conns 10000 -rate 0 -duration 30s ;;
	connect-es) cmp connect-es "$ES" -scenario connect -conns 10000 -rate 0 -duration 30s ;;
	fanout) cmp fanout "$HS" -scenario fanout -conns 10000 -rate 5000 -messages 200 -size 128 -duration 60s ;;
	*) echo "unknown scenario $s" >&2; exit 2 ;;
	esac
done
