#!/usr/bin/env bash
# Installs what the test suite drives for real, when missing: Debian's
# Chromium (browser tests), Node.js with npm (interop test with Node's `ws`),
# HAProxy (the PROXY protocol test behind a real load balancer) and
# Prometheus's promtool (alert rule checks), systemd-analyze and strace (the
# systemd unit's checks), certutil from libnss3-tools (the Chromium test over
# wss:// trusts its test CA through an NSS database). Needs root and apt on a fresh machine; on others it says what is
# missing and the tests that need it report it.
set -euo pipefail

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v strace >/dev/null 2>&1 || need+=(strace)
command -v certutil >/dev/null 2>&1 || need+=(libnss3-tools)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "test-deps: installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
	echo "test-deps: missing ${need[*]} (install them, or run as root with apt)" >&2
fi
