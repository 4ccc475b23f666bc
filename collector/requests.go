package collector

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// APIRequestCounter counts every API request the client makes, by
// organization and HTTP status. It lives across scrapes; main wires it to
// the client as its Observer.
type APIRequestCounter struct {
	vec *prometheus.CounterVec
}

// NewAPIRequestCounter returns a counter to register once.
func NewAPIRequestCounter() *APIRequestCounter {
	return &APIRequestCounter{vec: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: nameAPIRequestsTotal,
		Help: "Buildkite API requests made, by organization and HTTP status code (error when no response arrived).",
	}, []string{"organization", "code"})}
}

// ObserveRequest counts one request; code 0 means no response.
func (c *APIRequestCounter) ObserveRequest(org string, code int) {
	label := "error"
	if code > 0 {
		label = strconv.Itoa(code)
	}
	c.vec.WithLabelValues(labelValue(org), label).Inc()
}

// Describe implements prometheus.Collector.
func (c *APIRequestCounter) Describe(ch chan<- *prometheus.Desc) { c.vec.Describe(ch) }

// Collect implements prometheus.Collector.
func (c *APIRequestCounter) Collect(ch chan<- prometheus.Metric) { c.vec.Collect(ch) }
