// Package alerts holds the Prometheus recording and alerting rules for
// buildkite_exporter: buildkite.rules.yml, buildkite.alerts.yml, their
// runbook (RUNBOOK.md) and promtool unit tests (tests/*.test.yml).
//
// The package has no code; its tests run `promtool check rules` and
// `promtool test rules` (promtool from $PROMTOOL, else PATH; they fail when
// it is missing) and check the rules' metadata, runbook anchors, test
// coverage and metric names.
package alerts
