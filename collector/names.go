package collector

import "github.com/prometheus/client_golang/prometheus"

// Metric family names, as the contract fixes them. Dashboards and alert
// tests check their queries against MetricNames.
const (
	nameUp                 = "buildkite_up"
	nameScrapeDuration     = "buildkite_scrape_duration_seconds"
	nameScrapeRequests     = "buildkite_scrape_api_requests"
	nameRateLimitLimit     = "buildkite_api_rate_limit_limit"
	nameRateLimitRemaining = "buildkite_api_rate_limit_remaining"
	nameRateLimitReset     = "buildkite_api_rate_limit_reset_seconds"
	nameAPIRequestsTotal   = "buildkite_exporter_api_requests_total"
	nameBuildInfo          = "buildkite_exporter_build_info"
	nameCollectionTime     = "buildkite_collection_timestamp_seconds"
	nameFieldErrorsTotal   = "buildkite_exporter_agent_field_errors_total"

	nameAgents          = "buildkite_agents"
	nameAgentsBusy      = "buildkite_agents_busy"
	nameAgentsIdle      = "buildkite_agents_idle"
	nameAgentsPaused    = "buildkite_agents_paused"
	nameAgentsByVersion = "buildkite_agents_by_version"
	nameAgentsByTag     = "buildkite_agents_by_tag"
	nameDeparturesTotal = "buildkite_agent_departures_total"

	nameAgentInfo            = "buildkite_agent_info"
	nameAgentMetaData        = "buildkite_agent_meta_data"
	nameAgentBusy            = "buildkite_agent_busy"
	nameAgentPaused          = "buildkite_agent_paused"
	nameAgentPriority        = "buildkite_agent_priority"
	nameAgentCreated         = "buildkite_agent_created_timestamp_seconds"
	nameAgentConnected       = "buildkite_agent_connected_timestamp_seconds"
	nameAgentLastJobFinished = "buildkite_agent_last_job_finished_timestamp_seconds"
	nameAgentLastJobAge      = "buildkite_agent_last_job_finished_age_seconds"
	nameAgentJobStarted      = "buildkite_agent_job_started_timestamp_seconds"
	nameAgentDeparted        = "buildkite_agent_departed_timestamp_seconds"

	nameQueueJobs      = "buildkite_queue_jobs"
	nameAgentMetricsUp = "buildkite_agent_metrics_up"

	nameClustersUp              = "buildkite_clusters_up"
	nameQueueDispatchPaused     = "buildkite_queue_dispatch_paused"
	nameQueueDispatchPausedTime = "buildkite_queue_dispatch_paused_timestamp_seconds"
	nameQueueWaitTime           = "buildkite_queue_wait_time_seconds"
	nameQueueFinishedJobs       = "buildkite_queue_finished_jobs"
	nameQueueMetricsTime        = "buildkite_queue_metrics_timestamp_seconds"
	nameQueueMetricsUp          = "buildkite_queue_metrics_up"
)

// MetricNames lists every metric family the exporter can expose.
func MetricNames() []string {
	return []string{
		nameUp, nameScrapeDuration, nameScrapeRequests,
		nameRateLimitLimit, nameRateLimitRemaining, nameRateLimitReset,
		nameAPIRequestsTotal, nameBuildInfo,
		nameCollectionTime, nameFieldErrorsTotal,
		nameAgents, nameAgentsBusy, nameAgentsIdle, nameAgentsPaused,
		nameAgentsByVersion, nameAgentsByTag, nameDeparturesTotal,
		nameAgentInfo, nameAgentMetaData, nameAgentBusy, nameAgentPaused,
		nameAgentPriority, nameAgentCreated, nameAgentConnected,
		nameAgentLastJobFinished, nameAgentLastJobAge, nameAgentJobStarted,
		nameAgentDeparted,
		nameQueueJobs, nameAgentMetricsUp,
		nameClustersUp, nameQueueDispatchPaused, nameQueueDispatchPausedTime,
		nameQueueWaitTime, nameQueueFinishedJobs, nameQueueMetricsTime, nameQueueMetricsUp,
	}
}

// The rate-limit families are emitted by more than one collector: the
// fleet exporter (REST scopes rest, rest_user) and the queue metrics
// exporter (GraphQL scopes graphql, graphql_user). A registry accepts them
// together only with one help text and one label set (organization,
// scope), so both build them here.
const (
	helpRateLimitLimit     = "Limit of the latest API response that carried the budget's rate-limit headers: REST requests (scopes rest, rest_user) or GraphQL complexity points (graphql, graphql_user)."
	helpRateLimitRemaining = "Remaining budget of the latest API response that carried the budget's rate-limit headers (may be negative)."
	helpRateLimitReset     = "Seconds until the budget's rate-limit window resets, as the latest API response that carried its headers said."
)

// rateLimitDescs are the rate-limit families of one budget.
type rateLimitDescs struct{ limit, remaining, reset *prometheus.Desc }

// newRateLimitDescs returns the rate-limit families of scope, with a
// variable organization label. scope is a constant label, so that each
// collector's descriptors stay distinct in a registry.
func newRateLimitDescs(scope string) rateLimitDescs {
	org, labels := []string{"organization"}, prometheus.Labels{"scope": scope}
	return rateLimitDescs{
		limit:     prometheus.NewDesc(nameRateLimitLimit, helpRateLimitLimit, org, labels),
		remaining: prometheus.NewDesc(nameRateLimitRemaining, helpRateLimitRemaining, org, labels),
		reset:     prometheus.NewDesc(nameRateLimitReset, helpRateLimitReset, org, labels),
	}
}

func (d rateLimitDescs) describe(ch chan<- *prometheus.Desc) {
	ch <- d.limit
	ch <- d.remaining
	ch <- d.reset
}

// emit writes one budget's gauges.
func (d rateLimitDescs) emit(ch chan<- prometheus.Metric, org string, limit, remaining, reset int) {
	gauge(ch, d.limit, float64(limit), org)
	gauge(ch, d.remaining, float64(remaining), org)
	gauge(ch, d.reset, float64(reset), org)
}
