# Shared helpers for scripts that run the fake Buildkite API and the exporter.
# Sourced, not executed.

# wait_for_line FILE REGEX SECONDS PID: print the first line of FILE matching
# REGEX (extended), waiting at most SECONDS; fail early if PID exits.
wait_for_line() {
	local file=$1 re=$2 secs=$3 pid=$4 line i
	for ((i = 0; i < secs * 10; i++)); do
		if line="$(grep -E -m1 -- "$re" "$file" 2>/dev/null)"; then
			printf '%s\n' "$line"
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "process $pid exited before printing /$re/; its output:" >&2
			sed 's/^/    /' "$file" >&2
			return 1
		fi
		sleep 0.1
	done
	echo "timed out after ${secs}s waiting for /$re/ in $file:" >&2
	sed 's/^/    /' "$file" >&2
	return 1
}

# stop_pid PID [NAME]: SIGTERM, wait up to 5 s, then SIGKILL.
stop_pid() {
	local pid=$1 name=${2:-$1} i
	[ -n "$pid" ] || return 0
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
		sleep 0.1
	done
	echo "$name ($pid) did not stop within 5s; killing it" >&2
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# wait_for_http URL SECONDS PID: wait until URL answers 200; fail early if
# PID exits.
wait_for_http() {
	local url=$1 secs=$2 pid=$3 i
	for ((i = 0; i < secs * 10; i++)); do
		if curl -fs -o /dev/null --max-time 2 "$url"; then
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "process $pid exited before $url answered" >&2
			return 1
		fi
		sleep 0.1
	done
	echo "timed out after ${secs}s waiting for $url" >&2
	return 1
}

# agent_metrics_flags EXPORTER FAKE FAKE_LOG FAKE_PID: prints the exporter
# flag for the fake's Agent Metrics API (job backlog) when both the fake and
# the exporter support it; the caller exports BUILDKITE_AGENT_TOKEN.
agent_metrics_flags() {
	local exporter=$1 fake=$2 log=$3 pid=$4 line
	# Help output captured first: -h exits non-zero, and grep -q closing the
	# pipe early would fail the pipeline under pipefail.
	local fake_help exporter_help
	fake_help="$("$fake" -h 2>&1 || true)"
	exporter_help="$("$exporter" --help 2>&1 || true)"
	grep -q -- '-agent-token' <<<"$fake_help" || return 0
	grep -q -- '--buildkite.agent-api-url' <<<"$exporter_help" || return 0
	line="$(wait_for_line "$log" 'Agent Metrics API at http://' 5 "$pid")" || return 1
	printf -- '--buildkite.agent-api-url=%s\n' "$(grep -Eo 'http://[^ ]+' <<<"$line")"
}
