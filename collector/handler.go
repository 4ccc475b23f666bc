package collector

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/klauspost/compress/gzhttp"
	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// HandlerConfig is what the /metrics handler serves, and how long a scrape
// may take.
type HandlerConfig struct {
	Fleet *Exporter     // nil without organizations
	Jobs  *JobsExporter // nil without agent tokens
	// QueueMetrics is nil unless --collector.queue-metrics.
	QueueMetrics *QueueMetricsExporter
	Shared       prometheus.Gatherer // what lives across scrapes (request counters, build info)
	// Timeout bounds a collection when the scrape sends no timeout, and
	// caps the one it sends (--buildkite.timeout).
	Timeout time.Duration
	// TimeoutOffset is taken off the scrape's timeout (--web.timeout-offset).
	TimeoutOffset time.Duration
	Logger        log.Logger
}

// NewHandler returns the /metrics handler. Each request collects with the
// deadline X-Prometheus-Scrape-Timeout-Seconds (at most Timeout) minus
// TimeoutOffset, else Timeout, and answers in the text format 0.0.4 (which
// every Prometheus accepts), gzipped when the scraper accepts gzip.
func NewHandler(cfg HandlerConfig) (http.Handler, error) {
	if cfg.Timeout <= 0 || cfg.TimeoutOffset < 0 {
		return nil, errors.New("collector: the timeout must be positive and the offset not negative")
	}
	if cfg.Shared == nil {
		cfg.Shared = prometheus.NewRegistry()
	}
	if cfg.Logger == nil {
		cfg.Logger = log.NewNopLogger()
	}
	// BestSpeed: the exposition compresses well anyway (20.6 MB to 1.4 MB
	// at 10,000 agents), and at tens of thousands of agents a higher level
	// costs more CPU than the scrape. gzip only: the README promises it,
	// and Prometheus asks for it.
	compress, err := gzhttp.NewWrapper(gzhttp.CompressionLevel(gzip.BestSpeed), gzhttp.EnableZstd(false))
	if err != nil {
		return nil, err
	}
	return compress(&handler{cfg}), nil
}

type handler struct{ cfg HandlerConfig }

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	timeout := scrapeTimeout(r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds"), h.cfg.Timeout, h.cfg.TimeoutOffset)
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	reg := prometheus.NewRegistry()
	var scrapes []*Scrape
	var collectors []prometheus.Collector
	if h.cfg.Fleet != nil {
		s := h.cfg.Fleet.Scrape(ctx)
		scrapes, collectors = append(scrapes, s), append(collectors, s)
	}
	if h.cfg.Jobs != nil {
		collectors = append(collectors, h.cfg.Jobs.Bind(ctx))
	}
	if h.cfg.QueueMetrics != nil {
		collectors = append(collectors, h.cfg.QueueMetrics.Bind(ctx))
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			http.Error(w, "cannot register a collector", http.StatusInternalServerError)
			return
		}
	}
	w.Header().Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	// This scrape's registry before the shared one, so that the request
	// counters include the requests of this collection.
	if err := WriteText(w, prometheus.Gatherers{reg, h.cfg.Shared}, scrapes...); err != nil {
		level.Error(h.cfg.Logger).Log("msg", "error writing metrics", "err", err)
	}
}

// scrapeTimeout is the header's seconds, at most limit, minus offset; when
// the offset would leave nothing, those seconds alone; without a usable
// header, limit.
func scrapeTimeout(header string, limit, offset time.Duration) time.Duration {
	seconds, err := strconv.ParseFloat(strings.TrimSpace(header), 64)
	if err != nil || !(seconds > 0) { // also refuses NaN
		return limit
	}
	timeout := limit
	if seconds < limit.Seconds() {
		timeout = time.Duration(seconds * float64(time.Second))
	}
	if timeout-offset > 0 {
		return timeout - offset
	}
	return timeout
}
