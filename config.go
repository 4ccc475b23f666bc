package main

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/buildkite-exporter/buildkite_exporter/client"
	"github.com/buildkite-exporter/buildkite_exporter/client/agentmetrics"
	"github.com/buildkite-exporter/buildkite_exporter/client/graphql"
)

// tokenEnv holds the API token when no token file is given, agentTokenEnv
// one agent token (one cluster) when no agent token file is. Tokens are
// never flag values: flags show up in process listings.
const (
	tokenEnv      = "BUILDKITE_API_TOKEN"
	agentTokenEnv = "BUILDKITE_AGENT_TOKEN"
)

type config struct {
	organizations        []string
	tokenFile            string
	apiURL               string
	agentTokenFiles      []string
	agentAPIURL          string
	pageConcurrency      int
	timeout              time.Duration
	minInterval          time.Duration
	agentDetails         bool
	queues               []string
	clusters             bool
	clustersInterval     time.Duration
	queueMetrics         bool
	graphqlURL           string
	queueMetricsInterval time.Duration
	queueRetention       time.Duration
	agentRetention       time.Duration
	departureLookups     int
	tags                 []string
	telemetryPath        string
	timeoutOffset        time.Duration
	maxConnections       int
	idleTimeout          time.Duration
	logLevel             string
	logFormat            string
	web                  *web.FlagConfig
}

// newApp defines the command line; cfg receives the parsed values.
func newApp(cfg *config, stdout io.Writer) *kingpin.Application {
	app := kingpin.New(exporterName, "Prometheus exporter for a Buildkite agent fleet.")
	app.UsageWriter(stdout)
	app.ErrorWriter(stdout)
	app.Version(version.Print(exporterName))
	app.HelpFlag.Short('h')

	app.Flag("buildkite.organization", "Buildkite organization slug; repeatable, each one collected and labelled organization. Env: comma-separated.").
		Envar("BUILDKITE_ORGANIZATION").StringsVar(&cfg.organizations)
	app.Flag("buildkite.token-file", "File holding the Buildkite API token (scope read_agents); re-read when it changes. Without it the token comes from "+tokenEnv+".").
		StringVar(&cfg.tokenFile)
	app.Flag("buildkite.api-url", "Buildkite REST API base URL (a proxy, or a local fake).").
		Envar("BUILDKITE_API_URL").Default(client.DefaultBaseURL).StringVar(&cfg.apiURL)
	app.Flag("buildkite.agent-token-file", "File holding an agent token for the Agent Metrics API (job backlog per queue); repeatable, one per cluster; re-read when it changes. Without it one token may come from "+agentTokenEnv+".").
		StringsVar(&cfg.agentTokenFiles)
	app.Flag("buildkite.agent-api-url", "Buildkite Agent API base URL, for the Agent Metrics API (a proxy, or a local fake).").
		Default(agentmetrics.DefaultBaseURL).StringVar(&cfg.agentAPIURL)
	app.Flag("buildkite.page-concurrency", "List pages fetched at once after the first.").
		Default("8").IntVar(&cfg.pageConcurrency)
	app.Flag("buildkite.timeout", "Upper bound on one collection: used when Prometheus sends no scrape timeout, and caps the one it sends.").
		Default("30s").DurationVar(&cfg.timeout)
	app.Flag("collector.min-interval", "Serve results younger than this from memory (for HA Prometheus pairs and rate limits); 0 = every scrape hits the API.").
		Default("0s").DurationVar(&cfg.minInterval)
	app.Flag("collector.agent-details", "Expose the per-agent families (buildkite_agent_*).").
		Default("true").BoolVar(&cfg.agentDetails)
	app.Flag("collector.queue", "Queue that always gets zero-filled series even when no agent serves it: QUEUE (unclustered) or CLUSTER/QUEUE (cluster name or ID); repeatable.").
		StringsVar(&cfg.queues)
	app.Flag("collector.clusters", "Read clusters and their queues (scope read_clusters): cluster names as buildkite_cluster, cluster queues zero-filled, dispatch state.").
		Default("true").BoolVar(&cfg.clusters)
	app.Flag("collector.clusters-interval", "How often clusters and their queues are re-read; in between the last good read is used.").
		Default("5m").DurationVar(&cfg.clustersInterval)
	app.Flag("collector.queue-metrics", "Read queue wait times and finished jobs from Buildkite's advanced queue metrics over the GraphQL API; the API token then needs GraphQL access.").
		Default("false").BoolVar(&cfg.queueMetrics)
	app.Flag("buildkite.graphql-url", "Buildkite GraphQL API endpoint, for --collector.queue-metrics (a proxy, or a local fake).").
		Default(graphql.DefaultURL).StringVar(&cfg.graphqlURL)
	app.Flag("collector.queue-metrics-interval", "How often queue metrics are polled per organization; in between the last poll is served.").
		Default("1m").DurationVar(&cfg.queueMetricsInterval)
	app.Flag("collector.queue-retention", "How long a queue seen once keeps its zero-filled series.").
		Default("24h").DurationVar(&cfg.queueRetention)
	app.Flag("collector.agent-retention", "How long a departed agent keeps buildkite_agent_departed_timestamp_seconds.").
		Default("1h").DurationVar(&cfg.agentRetention)
	app.Flag("collector.departure-lookups", "At most this many GET agent calls per scrape to learn why agents left; 0 disables.").
		Default("10").IntVar(&cfg.departureLookups)
	app.Flag("collector.tag", "meta_data key counted in buildkite_agents_by_tag; repeatable.").
		StringsVar(&cfg.tags)
	cfg.web = kingpinflag.AddFlags(app, ":9260")
	app.Flag("web.telemetry-path", "Path under which to expose metrics.").
		Default("/metrics").StringVar(&cfg.telemetryPath)
	app.Flag("web.timeout-offset", "Subtracted from Prometheus' X-Prometheus-Scrape-Timeout-Seconds to bound a collection.").
		Default("0.5s").DurationVar(&cfg.timeoutOffset)
	app.Flag("web.max-connections", "Connections served at once; more are closed as they arrive.").
		Default(strconv.Itoa(defaultMaxConnections)).IntVar(&cfg.maxConnections)
	app.Flag("web.idle-timeout", "Close keep-alive connections idle this long (for tests).").
		Hidden().Default(defaultIdleTimeout.String()).DurationVar(&cfg.idleTimeout)
	app.Flag("log.level", "Only log messages with the given severity or above: debug, info, warn, error.").
		Default("info").EnumVar(&cfg.logLevel, "debug", "info", "warn", "error")
	app.Flag("log.format", "Output format of log messages: logfmt or json.").
		Default("logfmt").EnumVar(&cfg.logFormat, "logfmt", "json")
	return app
}

// exitCode carries kingpin's exit code out of its Terminate callback, so
// --help and --version return from run instead of exiting the process.
type exitCode int

func parse(app *kingpin.Application, args []string) (code int, done bool) {
	app.Terminate(func(code int) { panic(exitCode(code)) })
	defer func() {
		if r := recover(); r != nil {
			c, ok := r.(exitCode)
			if !ok {
				panic(r)
			}
			code, done = int(c), true
		}
	}()
	if _, err := app.Parse(args); err != nil {
		app.Errorf("%s; try --help", err)
		return 2, true
	}
	return 0, false
}

// validate checks the flags, each once and by its name, and splits the
// comma-separated lists. The URLs are checked only when their API is used.
func (cfg *config) validate() error {
	cfg.organizations = splitList(cfg.organizations)
	cfg.queues = splitList(cfg.queues)
	cfg.tags = splitList(cfg.tags)
	switch {
	case !strings.HasPrefix(cfg.telemetryPath, "/"):
		return fmt.Errorf("--web.telemetry-path %q must start with /", cfg.telemetryPath)
	case cfg.pageConcurrency < 1:
		return fmt.Errorf("--buildkite.page-concurrency must be at least 1, not %d", cfg.pageConcurrency)
	case cfg.departureLookups < 0:
		return fmt.Errorf("--collector.departure-lookups must not be negative, not %d", cfg.departureLookups)
	case cfg.queueMetrics && len(cfg.organizations) == 0:
		return errors.New("--collector.queue-metrics needs an organization (--buildkite.organization) and its API token")
	case cfg.queueMetricsInterval <= 0:
		return fmt.Errorf("--collector.queue-metrics-interval must be positive, not %v", cfg.queueMetricsInterval)
	case cfg.clustersInterval <= 0:
		return fmt.Errorf("--collector.clusters-interval must be positive, not %v", cfg.clustersInterval)
	case cfg.timeout <= 0:
		return fmt.Errorf("--buildkite.timeout must be positive, not %v", cfg.timeout)
	case cfg.timeoutOffset < 0:
		return fmt.Errorf("--web.timeout-offset must not be negative, not %v", cfg.timeoutOffset)
	case cfg.maxConnections < 1:
		return fmt.Errorf("--web.max-connections must be at least 1, not %d", cfg.maxConnections)
	case cfg.idleTimeout <= 0:
		return fmt.Errorf("--web.idle-timeout must be positive, not %v", cfg.idleTimeout)
	}
	return nil
}

// httpURL checks that a URL flag is an http(s) URL with a host.
func httpURL(flag, value string) error {
	if u, err := url.Parse(value); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--%s %q is not an http(s) URL with a host", flag, value)
	}
	return nil
}

// splitList accepts both repeated flags and comma-separated values.
func splitList(values []string) []string {
	var out []string
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}
