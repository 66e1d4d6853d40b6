#!/usr/bin/env bash
# Installs what the test suite drives for real, when missing: Debian's
# Chromium (browser test) and Node.js with npm (interop test with Node's
# `ws`). Needs root and apt on a fresh machine; on others it says what is
# missing and the tests that need it report it.
set -euo pipefail

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "test-deps: installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
	echo "test-deps: missing ${need[*]} (install them, or run as root with apt)" >&2
fi
