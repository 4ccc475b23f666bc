package collector

import (
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
)

// logFieldErrors counts a successful listing's field errors (agent members
// of an unexpected type or format, treated as absent) and logs, once per
// change, each field that starts or stops having them.
func (e *Exporter) logFieldErrors(m *orgMemory, counts map[string]int) {
	appeared, cleared := m.countFieldErrors(counts)
	for _, field := range appeared {
		level.Warn(e.logger).Log("msg", "agent member of an unexpected type or format, treated as absent; the agents still count",
			"organization", m.org, "field", field, "agents", counts[field], "metric", nameFieldErrorsTotal)
	}
	for _, field := range cleared {
		level.Info(e.logger).Log("msg", "agent member decodes again", "organization", m.org, "field", field)
	}
}

// emitFieldErrors writes the field error counters of a snapshot.
func (e *Exporter) emitFieldErrors(s *Snapshot, ch chan<- prometheus.Metric) {
	for _, f := range s.FieldErrors {
		ch <- prometheus.MustNewConstMetric(e.descs.fieldErrors, prometheus.CounterValue, f.Count, s.Organization, f.Field)
	}
}
