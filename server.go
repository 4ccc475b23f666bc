package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/mdlayher/vsock"
	"github.com/prometheus/exporter-toolkit/web"
)

// The web server's bounds. A scraper holds its connection for a scrape
// (at most --buildkite.timeout) plus the time to write /metrics; in between
// Prometheus keeps it idle for a scrape interval. Nothing else should hold
// one.
const (
	// readHeaderTimeout bounds a client that connects and sends nothing
	// or sends its headers a byte at a time.
	readHeaderTimeout = 10 * time.Second
	// defaultIdleTimeout closes keep-alive connections unused that long:
	// the longest common scrape interval, so that Prometheus reuses its
	// connection while a client that left one open frees it within a
	// minute. Closing one Prometheus is about to reuse costs a new TCP
	// handshake, not a failed scrape (net/http retries an idempotent GET
	// on a connection closed before it was answered).
	defaultIdleTimeout = 60 * time.Second
	// writeTimeoutMargin is the time left to write /metrics once the
	// collection, bounded by --buildkite.timeout, is done: a large fleet's
	// text is a few MiB, seconds on the slowest link that scrapes it.
	writeTimeoutMargin = 30 * time.Second
	// defaultMaxConnections bounds the connections served at once. A
	// scraper that never reads its answer holds a gzip writer and buffered
	// text until the write timeout, about 0.9 MiB each with 10,000 agents:
	// 300 of them took 285 MiB, 100 take 117 MiB, inside the 128 MiB of
	// examples/kubernetes. An exporter has a handful of legitimate clients
	// (one or two Prometheus, probes, a person), far below it.
	defaultMaxConnections = 100
)

// newServer returns the HTTP server of handler with the timeouts above.
func newServer(cfg *config, handler http.Handler) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       cfg.idleTimeout,
		WriteTimeout:      cfg.timeout + writeTimeoutMargin,
	}
}

// listen opens the listeners exporter-toolkit's web.ListenAndServe would
// (each --web.listen-address, vsock:// ones included, or the systemd
// sockets with --web.systemd-socket), each limited to maxConns connections
// at once, so that web.ServeMultiple serves them with TLS and basic auth
// from --web.config.file as before.
func listen(flags *web.FlagConfig, maxConns int, logger log.Logger) ([]net.Listener, error) {
	var listeners []net.Listener
	if flags.WebSystemdSocket != nil && *flags.WebSystemdSocket {
		level.Info(logger).Log("msg", "listening on systemd activated listeners instead of port listeners")
		activated, err := activation.Listeners()
		if err != nil {
			return nil, fmt.Errorf("--web.systemd-socket: %w", err)
		}
		for _, l := range activated {
			if l != nil { // a socket that is not a listener
				listeners = append(listeners, l)
			}
		}
		if len(listeners) == 0 {
			return nil, errors.New("--web.systemd-socket: no socket activation file descriptors found")
		}
	} else {
		for _, address := range *flags.WebListenAddresses {
			l, err := listenAddress(address)
			if err != nil {
				closeAll(listeners)
				return nil, fmt.Errorf("--web.listen-address: %w", err)
			}
			listeners = append(listeners, l)
		}
		if len(listeners) == 0 {
			return nil, errors.New("no --web.listen-address")
		}
	}
	limit := newConnLimit(maxConns, logger)
	for i, l := range listeners {
		listeners[i] = &limitListener{Listener: l, limit: limit}
	}
	return listeners, nil
}

// listenAddress listens on one TCP address or vsock://:port.
func listenAddress(address string) (net.Listener, error) {
	if !strings.HasPrefix(address, "vsock://") {
		return net.Listen("tcp", address)
	}
	u, err := url.Parse(address)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(u.Port(), 10, 32)
	if err != nil {
		return nil, fmt.Errorf("%s: no port: %w", address, err)
	}
	return vsock.Listen(uint32(port), nil)
}

func closeAll(listeners []net.Listener) {
	for _, l := range listeners {
		l.Close()
	}
}

// connLimit counts the connections open across the listeners. Over the
// limit a new connection is closed at once rather than left waiting in
// the kernel's queue (as netutil.LimitListener does) for a slot that idle
// connections may hold for a minute: the client sees a reset it can act
// on, not a scrape that hangs.
type connLimit struct {
	slots   chan struct{}
	logger  log.Logger
	refused atomic.Int64

	mu      sync.Mutex
	lastLog time.Time
}

func newConnLimit(maxConns int, logger log.Logger) *connLimit {
	return &connLimit{slots: make(chan struct{}, maxConns), logger: logger}
}

// refuse closes c and logs, at most once a minute, that the limit is
// reached.
func (cl *connLimit) refuse(c net.Conn) {
	c.Close()
	total := cl.refused.Add(1)
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if now := time.Now(); now.Sub(cl.lastLog) >= time.Minute {
		cl.lastLog = now
		level.Warn(cl.logger).Log("msg", "connection limit reached; closing new connections", "limit", cap(cl.slots),
			"refused_total", total, "remote", c.RemoteAddr().String())
	}
}

// limitListener accepts connections while its connLimit has room.
type limitListener struct {
	net.Listener
	limit *connLimit
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.limit.slots <- struct{}{}:
			return &limitedConn{Conn: c, release: sync.OnceFunc(func() { <-l.limit.slots })}, nil
		default:
			l.limit.refuse(c)
		}
	}
}

// limitedConn gives its slot back when closed, once.
type limitedConn struct {
	net.Conn
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}
