// Command buildkite_exporter exposes a Buildkite agent fleet to Prometheus.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/buildkite-exporter/buildkite_exporter/client"
	"github.com/buildkite-exporter/buildkite_exporter/collector"
	"github.com/buildkite-exporter/buildkite_exporter/status"
)

const exporterName = "buildkite_exporter"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	var cfg config
	if code, done := parse(newApp(&cfg, stdout), args); done {
		return code
	}
	logger, toolkitLogger := newLogger(stderr, cfg.logFormat, cfg.logLevel)
	mux, err := setup(&cfg, logger)
	if err != nil {
		level.Error(logger).Log("msg", "cannot start", "err", err)
		return 1
	}
	return serve(&cfg, mux, logger, toolkitLogger)
}

// setup validates the configuration and builds the clients, the collectors
// and the routes: /metrics (or --web.telemetry-path), /status and the
// landing page.
func setup(cfg *config, logger log.Logger) (*http.ServeMux, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	warn := func(msg, file string) { level.Warn(logger).Log("msg", msg, "file", file) }
	agentTokens, err := client.AgentTokens(cfg.agentTokenFiles, agentTokenEnv, warn)
	if err != nil {
		return nil, fmt.Errorf("--buildkite.agent-token-file: %w", err)
	}
	if len(cfg.organizations) == 0 && len(agentTokens) == 0 {
		return nil, errors.New("no organization: give --buildkite.organization or BUILDKITE_ORGANIZATION (with an API token), " +
			"or an agent token with --buildkite.agent-token-file or " + agentTokenEnv + " (job backlog only), or both")
	}
	requests := collector.NewAPIRequestCounter()
	metrics := collector.HandlerConfig{Timeout: cfg.timeout, TimeoutOffset: cfg.timeoutOffset, Logger: logger}
	statuses := func() []collector.OrgStatus { return nil }
	if len(cfg.organizations) > 0 {
		if err := newAPIExporters(cfg, &metrics, requests, warn, logger); err != nil {
			return nil, err
		}
		statuses = metrics.Fleet.Status
	}
	if len(agentTokens) > 0 {
		if metrics.Jobs, err = newJobsExporter(cfg, agentTokens, requests, logger); err != nil {
			return nil, err
		}
	}
	shared := prometheus.NewRegistry()
	shared.MustRegister(versioncollector.NewCollector(exporterName), collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), requests)
	metrics.Shared = shared
	handler, err := collector.NewHandler(metrics)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle(cfg.telemetryPath, handler)
	if cfg.telemetryPath != "/status" {
		mux.Handle("/status", status.Handler(statuses, time.Now, status.MetricsPath(cfg.telemetryPath)))
	}
	if cfg.telemetryPath != "/" {
		landing, err := web.NewLandingPage(web.LandingConfig{
			Name: "Buildkite Exporter", Description: "Prometheus exporter for a Buildkite agent fleet", Version: version.Info(),
			Links: []web.LandingLinks{{Address: cfg.telemetryPath, Text: "Metrics"}, {Address: "/status", Text: "Status"}},
		})
		if err != nil {
			return nil, fmt.Errorf("the landing page: %w", err)
		}
		mux.Handle("/", landing)
	}
	keyvals := []any{"msg", "starting " + exporterName, "version", version.Info(), "organizations", strings.Join(cfg.organizations, ","),
		"api_url", cfg.apiURL, "job_backlog", metrics.Jobs != nil, "queue_metrics", metrics.QueueMetrics != nil}
	if metrics.Jobs != nil {
		keyvals = append(keyvals, "agent_api_url", cfg.agentAPIURL)
	}
	level.Info(logger).Log(keyvals...)
	return mux, nil
}

// serve serves mux until SIGINT or SIGTERM.
func serve(cfg *config, mux *http.ServeMux, logger log.Logger, toolkitLogger *slog.Logger) int {
	listeners, err := listen(cfg.web, cfg.maxConnections, logger)
	if err != nil {
		level.Error(logger).Log("msg", "cannot listen", "err", err)
		return 1
	}
	server := newServer(cfg, mux)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	serveErr := make(chan error, 1)
	go func() { serveErr <- web.ServeMultiple(listeners, server, cfg.web, toolkitLogger) }()
	select {
	case err := <-serveErr:
		level.Error(logger).Log("msg", "server stopped", "err", err)
		return 1
	case <-ctx.Done():
		level.Info(logger).Log("msg", "shutting down")
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := server.Shutdown(shutdownCtx); err != nil {
			level.Error(logger).Log("msg", "shutdown", "err", err)
			return 1
		}
		return 0
	}
}
