#!/usr/bin/env bash
# Runs every fuzz target in the module briefly (FUZZTIME each, default 3000x).
# The default is a count of inputs, not a duration: with a duration, Go 1.26's
# fuzz coordinator can fail a target with a bare "context deadline exceeded"
# at the end of the window when workers are starved of CPU (go.dev/issue/75804,
# fixed in Go 1.27). A count has no deadline to race.
# Targets are discovered with `go test -list`, so a new Fuzz function is picked
# up without editing this file. A crash fails the run and leaves the input in
# the package's testdata/fuzz/ for `go test` to replay.
set -euo pipefail
cd "$(dirname "$0")/.."
GO="${GO:-go}"
FUZZTIME="${FUZZTIME:-3000x}"

# `go test -list` prints the matching names of a package, then its "ok" line.
listing="$("$GO" test -list '^Fuzz' ./...)"
targets=()
names=()
while IFS= read -r line; do
	case "$line" in
	Fuzz*) names+=("$line") ;;
	"ok "*)
		pkg="$(awk '{print $2}' <<<"$line")"
		for n in ${names[@]+"${names[@]}"}; do targets+=("$pkg $n"); done
		names=()
		;;
	esac
done <<<"$listing"

if [ "${#targets[@]}" -eq 0 ]; then
	echo "fuzz: no fuzz targets found (go test -list '^Fuzz' ./... listed none)" >&2
	exit 1
fi

for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	echo ">> fuzz $pkg $name ($FUZZTIME)"
	"$GO" test -run='^$' -fuzz="^${name}\$" -fuzztime="$FUZZTIME" "$pkg"
done
echo "fuzz: ${#targets[@]} target(s) passed"
