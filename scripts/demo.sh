#!/usr/bin/env bash
# make demo: the exporter against a simulated, ever-changing Buildkite fleet,
# all on loopback, no Buildkite account needed. Ctrl-C stops both.
#
#   scripts/demo.sh ./buildkite_exporter .build/buildkite-fake
#
# Environment: DEMO_FAKE_LISTEN (127.0.0.1:9261), DEMO_LISTEN (127.0.0.1:9260),
# DEMO_AGENTS (60 per organization), DEMO_TICK (2s), DEMO_ORGS (demo).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"

exporter=${1:?usage: demo.sh EXPORTER FAKE}
fake=${2:?usage: demo.sh EXPORTER FAKE}
fake_listen=${DEMO_FAKE_LISTEN:-127.0.0.1:9261}
listen=${DEMO_LISTEN:-127.0.0.1:9260}
orgs=${DEMO_ORGS:-demo}

# The fake accepts this token and the exporter sends it; both read it from the
# environment (a token is never a flag value). A real token in your
# environment is replaced, so it never reaches the fake.
BUILDKITE_API_TOKEN=demo-token
BUILDKITE_AGENT_TOKEN=demo-agent-token
export BUILDKITE_API_TOKEN BUILDKITE_AGENT_TOKEN

logs="$(mktemp -d)"
fake_pid= exporter_pid=
stopping=
cleanup() {
	[ -z "$stopping" ] || return 0
	stopping=1
	# On Ctrl-C the terminal signalled both processes already: give them a
	# moment to stop on their own before sending SIGTERM.
	local i
	for ((i = 0; i < 20; i++)); do
		kill -0 "$exporter_pid" 2>/dev/null || kill -0 "$fake_pid" 2>/dev/null || break
		sleep 0.1
	done
	stop_pid "$exporter_pid" exporter
	stop_pid "$fake_pid" buildkite-fake
	rm -rf "$logs"
	echo "demo: stopped"
}
trap cleanup EXIT
trap 'echo; exit 0' INT
trap 'exit 143' TERM HUP

# A fake that knows clusters writes one agent token per cluster, so the job
# backlog covers every cluster (an agent token sees its own cluster only).
fake_flags=()
if "$fake" -h 2>&1 | grep -q -- '-agent-token-dir'; then
	mkdir -m 700 "$logs/agent-tokens"
	fake_flags=(--agent-token-dir "$logs/agent-tokens")
fi

# Fleet first: the fake's stdout is kept in a file to learn when it listens.
"$fake" --listen "$fake_listen" --org "$orgs" --agents "${DEMO_AGENTS:-60}" --tick "${DEMO_TICK:-2s}" \
	${fake_flags[@]+"${fake_flags[@]}"} >"$logs/fake.log" 2>&1 &
fake_pid=$!
api_url="$(wait_for_line "$logs/fake.log" 'serving http://' 10 "$fake_pid" | grep -Eo 'http://[^ ]+')"

org_flags=()
IFS=, read -ra org_list <<<"$orgs"
for o in "${org_list[@]}"; do org_flags+=("--buildkite.organization=$o"); done
# The job backlog too, when this version of the exporter and the fake have it.
am=$(agent_metrics_flags "$exporter" "$fake" "$logs/fake.log" "$fake_pid")
am_flags=()
[ -z "$am" ] || am_flags=("$am")
if [ -n "$am" ] && [ ${#fake_flags[@]} -gt 0 ]; then
	for f in "$logs"/agent-tokens/*.token; do am_flags+=("--buildkite.agent-token-file=$f"); done
	unset BUILDKITE_AGENT_TOKEN # the files name every cluster's token
fi

# Queue wait times from the fake's GraphQL API (same clusters and queues),
# when this version of the exporter and the fake have them.
qm_flags=()
if grep -q -- '--collector.queue-metrics' <<<"$("$exporter" --help 2>&1 || true)" &&
	gql_line="$(wait_for_line "$logs/fake.log" 'GraphQL API at http://' 5 "$fake_pid")"; then
	qm_flags=(--collector.queue-metrics --buildkite.graphql-url="$(grep -Eo 'http://[^ ]+' <<<"$gql_line")")
fi

# The exporter logs to this terminal.
"$exporter" "${org_flags[@]}" ${am_flags[@]+"${am_flags[@]}"} ${qm_flags[@]+"${qm_flags[@]}"} --buildkite.api-url="$api_url" \
	--web.listen-address="$listen" --collector.tag=os --collector.tag=instance-type &
exporter_pid=$!
probe=$listen; [ "${probe%%:*}" != "" ] || probe="127.0.0.1$listen"
wait_for_http "http://$probe/" 15 "$exporter_pid"

base="http://localhost:${listen##*:}"
cat <<MSG

  buildkite_exporter demo: a simulated fleet ($orgs, ~${DEMO_AGENTS:-60} agents, changing every ${DEMO_TICK:-2s})

    exporter     $base/
    metrics      $base/metrics
MSG
if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$base/status" || true)" = 200 ]; then
	echo "    status       $base/status"
fi
cat <<MSG
    fake API     $api_url  (token: demo-token)

  Try:  curl -s $base/metrics | grep -E '^buildkite_(up|agents_busy)'
MSG
if [ ${#qm_flags[@]} -gt 0 ]; then
	echo "        curl -s $base/metrics | grep -E '^buildkite_queue_wait_time_seconds.*p95'"
fi
cat <<MSG
  Ctrl-C stops both.

MSG

# Run until Ctrl-C, or until either process dies (then stop the other).
set +e
wait -n "$fake_pid" "$exporter_pid"
rc=$?
set -e
if [ -z "$stopping" ]; then
	echo "demo: a process exited unexpectedly (exit $rc); fake API log:" >&2
	sed 's/^/    /' "$logs/fake.log" >&2
	exit 1
fi
