// Package dashboards holds the Grafana dashboards for buildkite_exporter
// (buildkite-fleet.json, buildkite-exporter.json; see README.md).
//
// The package has no code; its tests validate the JSON strictly with the
// Grafana foundation SDK and check every query with the PromQL parser.
package dashboards
