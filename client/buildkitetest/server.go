package buildkitetest

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
)

// Server is a Fake on an httptest server, for tests.
type Server struct {
	*Fake

	// URL is the base URL for the client: the server's root + "/v2".
	URL string

	// AgentURL is the base URL for the Agent Metrics API client: the
	// server's root + "/v3".
	AgentURL string

	// GraphQLURL is the GraphQL endpoint: the server's root + "/graphql".
	GraphQLURL string

	// HTTPServer is the underlying server, e.g. for its TLS certificate.
	HTTPServer *httptest.Server

	cancel context.CancelFunc
}

// NewServer starts a Server with a new Fake, like httptest.NewServer. Close it when done.
func NewServer() *Server { return newServer(false) }

// NewTLSServer starts a Server over TLS, like httptest.NewTLSServer; use Client
// for an http.Client that trusts it.
func NewTLSServer() *Server { return newServer(true) }

func newServer(tls bool) *Server {
	f := NewFake()
	hs := httptest.NewUnstartedServer(f.Handler())
	// Requests derive from this context, so Close also ends pending Delay faults
	// instead of waiting them out.
	ctx, cancel := context.WithCancel(context.Background())
	hs.Config.BaseContext = func(net.Listener) context.Context { return ctx }
	if tls {
		hs.StartTLS()
	} else {
		hs.Start()
	}
	return &Server{Fake: f, URL: hs.URL + "/v2", AgentURL: hs.URL + "/v3", GraphQLURL: hs.URL + "/graphql", HTTPServer: hs, cancel: cancel}
}

// Client returns an http.Client configured for the server (trusting its TLS
// certificate when it has one).
func (s *Server) Client() *http.Client { return s.HTTPServer.Client() }

// Close shuts the server down, abandoning pending delayed answers.
func (s *Server) Close() {
	s.cancel()
	s.HTTPServer.Close()
}
