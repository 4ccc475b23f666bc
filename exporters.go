package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/go-kit/log"
	"github.com/prometheus/common/version"

	"github.com/buildkite-exporter/buildkite_exporter/client"
	"github.com/buildkite-exporter/buildkite_exporter/client/agentmetrics"
	"github.com/buildkite-exporter/buildkite_exporter/client/graphql"
	"github.com/buildkite-exporter/buildkite_exporter/collector"
)

// userAgent is what every client sends.
func userAgent() string { return exporterName + "/" + version.Version }

// newAPIExporters builds what the API token feeds: the fleet exporter over
// the REST API and, with --collector.queue-metrics only, the queue metrics
// exporter over the GraphQL API. Both clients read the same token source.
func newAPIExporters(cfg *config, metrics *collector.HandlerConfig, requests *collector.APIRequestCounter, warn client.TokenWarning, logger log.Logger) error {
	token, err := client.APIToken(cfg.tokenFile, tokenEnv, warn)
	if err != nil {
		return fmt.Errorf("--buildkite.token-file: %w", err)
	}
	if token == nil {
		return errors.New("no API token: set " + tokenEnv + " or give --buildkite.token-file")
	}
	if metrics.Fleet, err = newFleetExporter(cfg, token, requests, logger); err != nil {
		return err
	}
	if cfg.queueMetrics {
		metrics.QueueMetrics, err = newQueueMetricsExporter(cfg, token, requests, logger)
	}
	return err
}

// newFleetExporter builds the REST client and the fleet exporter.
func newFleetExporter(cfg *config, token client.TokenSource, requests *collector.APIRequestCounter, logger log.Logger) (*collector.Exporter, error) {
	if err := httpURL("buildkite.api-url", cfg.apiURL); err != nil {
		return nil, err
	}
	api, err := client.New(client.Config{BaseURL: cfg.apiURL, Token: token, PageConcurrency: cfg.pageConcurrency,
		Observer: requests, UserAgent: userAgent()})
	if err != nil {
		return nil, err
	}
	return collector.New(api, collector.Config{
		Organizations: cfg.organizations, AgentDetails: cfg.agentDetails, Queues: cfg.queues,
		QueueRetention: cfg.queueRetention, AgentRetention: cfg.agentRetention, DepartureLookups: cfg.departureLookups,
		Tags: cfg.tags, MinInterval: cfg.minInterval, Timeout: cfg.timeout, Logger: logger,
		Clusters: cfg.clusters, ClustersInterval: cfg.clustersInterval,
	})
}

// newQueueMetricsExporter builds the GraphQL client and the queue metrics
// exporter; a poll is bounded by --buildkite.timeout.
func newQueueMetricsExporter(cfg *config, token client.TokenSource, requests *collector.APIRequestCounter, logger log.Logger) (*collector.QueueMetricsExporter, error) {
	if err := httpURL("buildkite.graphql-url", cfg.graphqlURL); err != nil {
		return nil, err
	}
	api, err := graphql.New(graphql.Config{URL: cfg.graphqlURL, Token: token, Observer: requests, UserAgent: userAgent()})
	if err != nil {
		return nil, err
	}
	return collector.NewQueueMetricsExporter(api, collector.QueueMetricsConfig{Organizations: cfg.organizations,
		Interval: cfg.queueMetricsInterval, Timeout: cfg.timeout, Logger: logger})
}

// newJobsExporter builds an Agent Metrics client per agent token and the
// jobs exporter over them. Each client counts its requests under its
// token's name (the file's base name, or the environment variable's) until
// an answer names the organization.
func newJobsExporter(cfg *config, tokens []client.NamedToken, requests *collector.APIRequestCounter, logger log.Logger) (*collector.JobsExporter, error) {
	if err := httpURL("buildkite.agent-api-url", cfg.agentAPIURL); err != nil {
		return nil, err
	}
	sources := make([]collector.JobsSource, 0, len(tokens))
	for _, t := range tokens {
		api, err := agentmetrics.New(agentmetrics.Config{BaseURL: cfg.agentAPIURL, Token: t.Source, Name: filepath.Base(t.Name),
			Observer: requests, UserAgent: userAgent()})
		if err != nil {
			return nil, err
		}
		sources = append(sources, collector.JobsSource{Name: t.Name, API: api})
	}
	return collector.NewJobsExporter(sources, collector.JobsConfig{Queues: cfg.queues, QueueRetention: cfg.queueRetention,
		MinInterval: cfg.minInterval, Timeout: cfg.timeout, Logger: logger})
}
