//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"
)

// queueRow is one row of the status page's queue table as the browser shows
// it.
type queueRow struct {
	Cluster     string `json:"cluster"`
	Queue       string `json:"queue"`
	Connected   string `json:"connected"`
	Busy        string `json:"busy"`
	Idle        string `json:"idle"`
	Paused      string `json:"paused"`
	Utilisation string `json:"utilisation"`
}

// readQueueTable reads the queue table out of the rendered DOM.
const readQueueTable = `[...document.querySelectorAll('table.queues tr[data-queue]')].map(tr => ({
	cluster: tr.dataset.cluster,
	queue: tr.dataset.queue,
	connected: tr.querySelector('[data-col=connected]').innerText.trim(),
	busy: tr.querySelector('[data-col=busy]').innerText.trim(),
	idle: tr.querySelector('[data-col=idle]').innerText.trim(),
	paused: tr.querySelector('[data-col=paused]').innerText.trim(),
	utilisation: tr.querySelector('.pct').innerText.trim(),
}))`

// TestStatusPage loads /status in headless Chromium against the exporter
// and the fake fleet, checks that the queue table shows what /metrics
// exposes, and saves a screenshot for the README (docs/status.png).
func TestStatusPage(t *testing.T) {
	chromium := ChromiumPath(t)
	fake := StartFake(t, FakeOptions{Agents: 30, Seed: 1, Tick: time.Hour})
	exp := StartExporterForFake(t, fake, "demo")

	// Before any scrape the page says so.
	if body := Get(t, exp.URL+"/status", http.StatusOK); !strings.Contains(body, "Not collected yet: scrape") {
		t.Errorf("before the first scrape the page does not say it is not collected yet")
	}
	// The landing page links to the status page.
	if body := Get(t, exp.URL+"/", http.StatusOK); !strings.Contains(body, `href="/status"`) {
		t.Errorf("the landing page does not link to /status")
	}

	// One scrape: the page shows what it saw.
	metrics := Metrics(t, Get(t, exp.URL+"/metrics", http.StatusOK))
	if up, ok := Value(metrics, "buildkite_up", map[string]string{"organization": "demo"}); !ok || up != 1 {
		t.Fatalf("buildkite_up = %v (present: %v)", up, ok)
	}
	// Queues are per cluster: the demo fleet has a queue "default" in
	// several clusters.
	var queues []string
	for _, m := range metrics["buildkite_agents_busy"].GetMetric() {
		labels := map[string]string{}
		for _, lp := range m.GetLabel() {
			labels[lp.GetName()] = lp.GetValue()
		}
		queues = append(queues, labels["buildkite_cluster"]+"/"+labels["queue"])
	}
	if len(queues) == 0 {
		t.Fatal("no buildkite_agents_busy series")
	}
	want := map[string]queueRow{}
	totalConnected := 0.0
	for _, q := range queues {
		cluster, queue, _ := strings.Cut(q, "/")
		series := map[string]string{"organization": "demo", "buildkite_cluster": cluster, "queue": queue}
		connected, ok1 := Value(metrics, "buildkite_agents", map[string]string{"organization": "demo", "buildkite_cluster": cluster, "queue": queue, "connection_state": "connected"})
		busy, ok2 := Value(metrics, "buildkite_agents_busy", series)
		idle, ok3 := Value(metrics, "buildkite_agents_idle", series)
		paused, ok4 := Value(metrics, "buildkite_agents_paused", series)
		if !ok1 || !ok2 || !ok3 || !ok4 {
			t.Fatalf("queue %s: a fleet series is missing", q)
		}
		totalConnected += connected
		want[q] = queueRow{Cluster: cluster, Queue: queue, Connected: num(connected), Busy: num(busy), Idle: num(idle), Paused: num(paused)}
	}
	if totalConnected == 0 {
		t.Fatal("the fake fleet has no connected agent; the comparison would prove little")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	t.Cleanup(cancelAlloc) // kills the browser and waits for it
	browser, cancelBrowser := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancelBrowser)

	if err := chromedp.Do(browser,
		chromedp.Navigate(exp.URL+"/status"),
		chromedp.WaitVisible(chromedp.CSS("table.queues")),
	); err != nil {
		t.Fatalf("loading /status in Chromium: %v", err)
	}
	title, err := chromedp.Run(browser, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	if title != "Buildkite exporter status" {
		t.Errorf("title %q", title)
	}
	rows, err := chromedp.Run(browser, chromedp.Evaluate[[]queueRow](readQueueTable))
	if err != nil {
		t.Fatalf("reading the queue table: %v", err)
	}
	got := map[string]queueRow{}
	for _, r := range rows {
		got[r.Cluster+"/"+r.Queue] = r
	}
	if len(got) != len(want) {
		t.Errorf("the page shows %d queues, /metrics %d: %v vs %v", len(got), len(want), rows, queues)
	}
	for q, w := range want {
		g, ok := got[q]
		if !ok {
			t.Errorf("queue %s is not on the page", q)
			continue
		}
		if g.Connected != w.Connected || g.Busy != w.Busy || g.Idle != w.Idle || g.Paused != w.Paused {
			t.Errorf("queue %s: page connected/busy/idle/paused = %s/%s/%s/%s, /metrics %s/%s/%s/%s",
				q, g.Connected, g.Busy, g.Idle, g.Paused, w.Connected, w.Busy, w.Idle, w.Paused)
		}
		if c, _ := strconv.Atoi(w.Connected); c > 0 {
			b, _ := strconv.Atoi(w.Busy)
			if wantPct := fmt.Sprintf("%d%%", min(100, (200*b+c)/(2*c))); g.Utilisation != wantPct {
				t.Errorf("queue %s: utilisation %s, want %s", q, g.Utilisation, wantPct)
			}
		}
	}
	body, err := chromedp.Run(browser, chromedp.Text(chromedp.CSS("body")))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"demo", "Latest collections", "Agent versions", "Agents idle the longest", "Jobs running the longest", "Recently departed agents"} {
		if !strings.Contains(body, s) {
			t.Errorf("the page lacks %q", s)
		}
	}
	if strings.Contains(body, DemoToken) || strings.Contains(body, "Bearer") {
		t.Error("the page shows the token")
	}

	// The JSON has the same numbers.
	var page struct {
		Organizations []struct {
			Organization string `json:"organization"`
			OK           bool   `json:"ok"`
			Queues       []struct {
				Cluster   string `json:"buildkite_cluster"`
				Queue     string `json:"queue"`
				Connected int    `json:"connected"`
				Busy      int    `json:"busy"`
			} `json:"queues"`
		} `json:"organizations"`
	}
	if err := json.Unmarshal([]byte(Get(t, exp.URL+"/status?format=json", http.StatusOK)), &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Organizations) != 1 || !page.Organizations[0].OK || len(page.Organizations[0].Queues) != len(want) {
		t.Fatalf("JSON: %+v", page)
	}
	for _, q := range page.Organizations[0].Queues {
		if w := want[q.Cluster+"/"+q.Queue]; strconv.Itoa(q.Connected) != w.Connected || strconv.Itoa(q.Busy) != w.Busy {
			t.Errorf("JSON queue %s/%s: connected/busy %d/%d, /metrics %s/%s", q.Cluster, q.Queue, q.Connected, q.Busy, w.Connected, w.Busy)
		}
	}

	// The screenshot the README shows.
	png, err := chromedp.Run(browser, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	docs := filepath.Join(RepoRoot(t), "docs")
	if err := os.MkdirAll(docs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(docs, "status.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("saved %s (%d bytes)", filepath.Join(docs, "status.png"), len(png))
}

// TestStatusPageProtected: --web.config.file protects /status like
// /metrics.
func TestStatusPageProtected(t *testing.T) {
	fake := StartFake(t, FakeOptions{})
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webConfig := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(webConfig, []byte("basic_auth_users:\n  prometheus: "+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	exp := StartExporterForFake(t, fake, "demo", "--web.config.file", webConfig)
	for _, path := range []string{"/status", "/status?format=json", "/metrics"} {
		Get(t, exp.URL+path, http.StatusUnauthorized)
		req := mustRequest(t, exp.URL+path)
		req.SetBasicAuth("prometheus", "s3cret")
		Do(t, req, http.StatusOK)
	}
}

func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
