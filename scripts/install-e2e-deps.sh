#!/usr/bin/env bash
# Installs what `make e2e` needs besides Go, as Debian packages, only when
# missing: a real Prometheus and Alertmanager (with amtool) at pinned
# versions for e2e/prometheus_test.go, and Chromium for e2e/status_test.go.
# Run as root on Debian 12 (bookworm), as CI does:
#
#   scripts/install-e2e-deps.sh
#
# The pins are bookworm's candidates; override them with PROMETHEUS_VERSION
# and ALERTMANAGER_VERSION (`apt-cache policy prometheus
# prometheus-alertmanager` lists what the archive has). Chromium is not
# pinned: Debian ships it through bookworm-security only, which keeps just
# the latest build.
#
# The tests start their own Prometheus and Alertmanager on free loopback
# ports with their own data directories, so they do not need (or mind) the
# services the packages install; while installing, a temporary
# policy-rc.d keeps them from starting where none is in place.
set -euo pipefail

PROMETHEUS_VERSION=${PROMETHEUS_VERSION:-2.42.0+ds-5+deb12u1}
ALERTMANAGER_VERSION=${ALERTMANAGER_VERSION:-0.25.0-1+b4}

# installed PACKAGE: the installed version, or nothing.
installed() {
	dpkg-query -W -f='${db:Status-Status} ${Version}\n' "$1" 2>/dev/null |
		sed -n 's/^installed //p'
}

need=()
[ "$(installed prometheus)" = "$PROMETHEUS_VERSION" ] ||
	need+=("prometheus=$PROMETHEUS_VERSION")
[ "$(installed prometheus-alertmanager)" = "$ALERTMANAGER_VERSION" ] ||
	need+=("prometheus-alertmanager=$ALERTMANAGER_VERSION")
[ -n "$(installed chromium)" ] || need+=(chromium)

if [ "${#need[@]}" -eq 0 ]; then
	echo "e2e dependencies present: prometheus $PROMETHEUS_VERSION, prometheus-alertmanager $ALERTMANAGER_VERSION, chromium $(installed chromium)"
	exit 0
fi

if ! command -v apt-get >/dev/null; then
	echo "missing ${need[*]}: this script installs them with apt-get (Debian/Ubuntu) only;" >&2
	echo "otherwise point PROMETHEUS, ALERTMANAGER, AMTOOL and E2E_CHROMIUM at the binaries" >&2
	exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "missing ${need[*]}; run as root: sudo $0" >&2
	exit 1
fi

echo "installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
	# Exit status 101: "action forbidden", honoured by invoke-rc.d and
	# deb-systemd-invoke, so the packages' services are not started.
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 0755 "$policy"
	trap 'rm -f "$policy"' EXIT
fi
apt-get update -q
apt-get install -y -q --no-install-recommends --allow-downgrades "${need[@]}"

prometheus --version 2>&1 | head -n 1
prometheus-alertmanager --version 2>&1 | head -n 1
amtool --version 2>&1 | head -n 1
chromium --version 2>/dev/null || true
