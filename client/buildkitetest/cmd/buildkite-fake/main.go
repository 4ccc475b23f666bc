// Command buildkite-fake serves a fake Buildkite REST Agents API with a simulated,
// ever-changing fleet, for demos and manual testing of the exporter:
//
//	go run ./client/buildkitetest/cmd/buildkite-fake --agents 100 --org demo,other
//
// Each organization gets the demo fleet (buildkitetest.DemoFleet): three
// clusters, one of them with a dispatch-paused queue, and unclustered agents.
//
// It prints the base URLs to point a client at: the REST API (/v2), the
// Agent Metrics API (/v3) and the GraphQL API (/graphql, queue wait times of
// the same clusters and queues). The agent token (--agent-token) is registered for
// the first cluster of the first organization; with --agent-token-dir, the
// fake also writes one agent token file per cluster (and one for the
// unclustered agents) of every organization into that directory, for the
// exporter's --buildkite.agent-token-file. Tokens are never printed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/buildkite-exporter/buildkite_exporter/client/buildkitetest"
)

func main() {
	err := run(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "buildkite-fake:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("buildkite-fake", flag.ContinueOnError)
	defaultToken := os.Getenv("BUILDKITE_API_TOKEN")
	if defaultToken == "" {
		defaultToken = "demo-token"
	}
	defaultAgentToken := os.Getenv("BUILDKITE_AGENT_TOKEN")
	if defaultAgentToken == "" {
		defaultAgentToken = "demo-agent-token"
	}
	listen := fs.String("listen", "127.0.0.1:9261", "address to listen on")
	// The default is not shown in -help, since it may be a real token from the environment.
	token := fs.String("token", "", "API token to accept (default $BUILDKITE_API_TOKEN or \"demo-token\")")
	agentToken := fs.String("agent-token", "", "agent token to accept on the Agent Metrics API, for the first organization (default $BUILDKITE_AGENT_TOKEN or \"demo-agent-token\")")
	orgs := fs.String("org", "demo", "organization slug; comma-separated for several")
	agents := fs.Int("agents", 60, "mean number of agents per organization")
	tick := fs.Duration("tick", 2*time.Second, "how often the fleet changes")
	seed := fs.Int64("seed", 1, "simulation seed")
	latency := fs.Duration("latency", 0, "latency added to every request")
	rateLimit := fs.Int("rate-limit", 0, "requests per organization per minute; 0 = unlimited")
	tokenDir := fs.String("agent-token-dir", "", "directory to write one agent token file per cluster into (files *.token, mode 0600)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *token == "" {
		*token = defaultToken
	}
	if *agentToken == "" {
		*agentToken = defaultAgentToken
	}
	if *tick <= 0 {
		return errors.New("--tick must be positive")
	}

	fake := buildkitetest.NewFake()
	fake.AddToken(*token)
	fake.SetRateLimit(*rateLimit)
	sims, err := newFleets(fake, *orgs, *agents, *seed, *agentToken, *tokenDir)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: withLatency(fake.Handler(), *latency), ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Printf("buildkite-fake: serving %s (organizations: %s)\n", baseURL(ln.Addr()), *orgs)
	fmt.Printf("buildkite-fake: Agent Metrics API at %s\n", strings.TrimSuffix(baseURL(ln.Addr()), "/v2")+"/v3")
	fmt.Printf("buildkite-fake: GraphQL API at %s\n", strings.TrimSuffix(baseURL(ln.Addr()), "/v2")+"/graphql")

	t := time.NewTicker(*tick)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			for _, s := range sims {
				s.Step()
			}
		case err := <-errc:
			return err
		case <-ctx.Done():
			stop() // a second signal kills the process the default way
			shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(shutdown); err != nil {
				return err
			}
			fmt.Println("buildkite-fake: stopped")
			return nil
		}
	}
}

// newFleets gives every organization of the comma-separated orgs the demo
// fleet and its agent tokens.
func newFleets(fake *buildkitetest.Fake, orgs string, agents int, seed int64, agentToken, tokenDir string) ([]*buildkitetest.Simulator, error) {
	var sims []*buildkitetest.Simulator
	for i, org := range strings.Split(orgs, ",") {
		org = strings.TrimSpace(org)
		if org == "" {
			continue
		}
		cfg := buildkitetest.DemoFleet()
		cfg.Agents = agents
		cfg.Seed = seed + int64(i) // different fleets per organization
		sims = append(sims, buildkitetest.NewSimulator(fake, org, cfg))
		if err := addAgentTokens(fake, org, agentToken, len(sims) == 1, tokenDir); err != nil {
			return nil, err
		}
	}
	if len(sims) == 0 {
		return nil, errors.New("--org names no organization")
	}
	return sims, nil
}

// addAgentTokens registers agent tokens for org's clusters: base for the
// first cluster of the first organization, base-ORG-N for the others (N
// counting the clusters from 1, 0 for the unclustered agents), each written
// to dir/ORG-N.token when dir is set.
func addAgentTokens(fake *buildkitetest.Fake, org, base string, first bool, dir string) error {
	names := []string{""}
	for _, c := range fake.Clusters(org) {
		names = append(names, c.Name)
	}
	for n, name := range names {
		tok := fmt.Sprintf("%s-%s-%d", base, org, n)
		if first && n == 1 {
			tok = base
		}
		fake.AddAgentToken(tok, org, name)
		if dir == "" {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%d.token", org, n)), []byte(tok+"\n"), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// baseURL is the URL a client should use; an unspecified listen address is
// reachable on loopback.
func baseURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String() + "/v2"
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/v2"
}

func withLatency(h http.Handler, d time.Duration) http.Handler {
	if d <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
		h.ServeHTTP(w, r)
	})
}
