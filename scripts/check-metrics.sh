#!/usr/bin/env bash
# Scrapes a real exporter running against the fake Buildkite API and runs
# `promtool check metrics` on the exposition. Fails on any promtool output.
#
#   PROMTOOL=.tools/promtool scripts/check-metrics.sh ./buildkite_exporter .build/buildkite-fake
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"

exporter=${1:?usage: check-metrics.sh EXPORTER FAKE}
fake=${2:?usage: check-metrics.sh EXPORTER FAKE}
promtool=${PROMTOOL:-promtool}
command -v "$promtool" >/dev/null || { echo "check-metrics: promtool not found ($promtool)" >&2; exit 1; }

work="$(mktemp -d)"
fake_pid= exporter_pid=
cleanup() {
	stop_pid "$exporter_pid" exporter
	stop_pid "$fake_pid" buildkite-fake
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Both read the token from the environment; it is never a flag.
BUILDKITE_API_TOKEN="check-$RANDOM$RANDOM"
BUILDKITE_AGENT_TOKEN="agent-$RANDOM$RANDOM"
export BUILDKITE_API_TOKEN BUILDKITE_AGENT_TOKEN

# Port 0 everywhere: each process reports the address it got.
"$fake" --listen 127.0.0.1:0 --org demo,other --agents 80 --tick 500ms >"$work/fake.log" 2>&1 &
fake_pid=$!
api_url="$(wait_for_line "$work/fake.log" 'serving http://' 10 "$fake_pid" | grep -Eo 'http://[^ ]+')"

# The job backlog too, when this version of the exporter and the fake have it.
am=$(agent_metrics_flags "$exporter" "$fake" "$work/fake.log" "$fake_pid")
am_flags=()
[ -z "$am" ] || am_flags=("$am")
"$exporter" --buildkite.organization=demo --buildkite.organization=other ${am_flags[@]+"${am_flags[@]}"} \
	--buildkite.api-url="$api_url" --web.listen-address=127.0.0.1:0 \
	--collector.tag=os --log.level=debug >"$work/exporter.log" 2>&1 &
exporter_pid=$!
addr="$(wait_for_line "$work/exporter.log" 'msg="?Listening on' 10 "$exporter_pid" | grep -Eo 'address=[^ ]+' | cut -d= -f2)"
[ -n "$addr" ] || { echo "check-metrics: no listen address in the exporter's log" >&2; exit 1; }

status=0
for i in 1 2; do
	# Let the fleet change between scrapes so departures show up in the second.
	[ "$i" -eq 1 ] || sleep 2
	body="$work/scrape$i.txt"
	if ! curl -fsS --max-time 20 -H 'X-Prometheus-Scrape-Timeout-Seconds: 15' \
		-o "$body" "http://$addr/metrics"; then
		echo "check-metrics: scrape $i failed; exporter log:" >&2
		sed 's/^/    /' "$work/exporter.log" >&2
		exit 1
	fi
	for org in demo other; do
		if ! grep -qx "buildkite_up{organization=\"$org\"} 1" "$body"; then
			echo "check-metrics: scrape $i has no buildkite_up{organization=\"$org\"} 1; exporter log:" >&2
			sed 's/^/    /' "$work/exporter.log" >&2
			exit 1
		fi
	done
	rc=0
	out="$("$promtool" check metrics <"$body" 2>&1)" || rc=$?
	if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
		echo "check-metrics: promtool check metrics on scrape $i (exit $rc):" >&2
		printf '%s\n' "$out" | sed 's/^/    /' >&2
		status=1
	fi
	[ "$status" -ne 0 ] || echo "check-metrics: scrape $i: $(grep -vc "^#" "$body") samples, promtool check metrics clean"
done
exit "$status"
