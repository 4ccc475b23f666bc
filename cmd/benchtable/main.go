// Command benchtable measures the exporter against the fake Buildkite API
// and prints one table: agents x latency x page concurrency, with wall
// time against the ideal, API requests, CPU, peak heap, RSS and exposition
// size; then exposition size and write time with and without per-agent
// details, 20 concurrent scrapes, and the idle RSS of the built exporter.
//
//	go run ./cmd/benchtable
//
// The fake runs in a child process (this binary with -fake), so that the
// CPU, heap and RSS measured here are the exporter's alone: the client and
// the collector run in this process, wired as main.go wires them, and a
// scrape is what /metrics does (gather, then text encoding).
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/buildkite-exporter/buildkite_exporter/client"
	"github.com/buildkite-exporter/buildkite_exporter/collector"
	"github.com/buildkite-exporter/buildkite_exporter/internal/benchtable"
)

func main() {
	fakeAgents := flag.Int("fake", -1, "internal: serve the fake with this many agents")
	sizes := flag.String("agents", "1000,10000,50000", "fleet sizes")
	latencies := flag.String("latency", "0s,50ms", "API latencies")
	concs := flag.String("concurrency", "8,1", "page concurrencies")
	binary := flag.Bool("binary", true, "also build the exporter and measure its idle RSS and 20 concurrent scrapes")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	if *cpuProfile != "" && *fakeAgents < 0 {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchtable:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if *fakeAgents >= 0 {
		serveFake(*fakeAgents)
		return
	}
	if err := run(ints(*sizes), durations(*latencies), ints(*concs), *binary); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

// serveFake is the child: it prints its base URL and serves until stdin
// closes.
func serveFake(agents int) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: benchtable.ControlHandler(agents)}
	go func() { _ = srv.Serve(ln) }() // ends when the process exits
	fmt.Printf("http://%s\n", ln.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes stdin
}

type fake struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	root string // http://host:port
}

func startFake(agents int) (*fake, error) {
	cmd := exec.Command(os.Args[0], "-fake", strconv.Itoa(agents))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("fake: %w", err)
	}
	return &fake{cmd: cmd, in: in, root: strings.TrimSpace(line)}, nil
}

func (f *fake) stop() {
	f.in.Close()
	_ = f.cmd.Wait() // killed: the exit status says nothing
}

func (f *fake) get(path string) (string, error) {
	resp, err := http.Get(f.root + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", path, b)
	}
	return string(b), err
}

func (f *fake) setLatency(d time.Duration) error {
	_, err := f.get("/__bench/latency?d=" + d.String())
	return err
}

func (f *fake) requests() int64 {
	s, err := f.get("/__bench/requests")
	if err != nil {
		panic(err)
	}
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// exporter is the client and collector as main.go builds them with the
// flags' defaults, apart from page concurrency and details.
func newExporter(url string, conc int, details bool, minInterval time.Duration) (*collector.Exporter, error) {
	api, err := client.New(client.Config{BaseURL: url, Token: client.StaticToken(benchtable.Token), PageConcurrency: conc})
	if err != nil {
		return nil, err
	}
	return collector.New(api, collector.Config{
		Organizations: []string{benchtable.Org}, AgentDetails: details, QueueRetention: 24 * time.Hour,
		AgentRetention: time.Hour, DepartureLookups: 10, MinInterval: minInterval, Timeout: 5 * time.Minute,
	})
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// scrape does what /metrics does for one request (collector.WriteText,
// uncompressed) and returns the exposition size. It also returns the CPU
// time of the collection (listing, decoding, snapshot), which it runs
// first; the rest of the scrape's CPU is writing /metrics.
func scrape(e *collector.Exporter) (size int64, collectCPU time.Duration, err error) {
	reg := prometheus.NewRegistry()
	sc := e.Scrape(context.Background())
	if err := reg.Register(sc); err != nil {
		return 0, 0, err
	}
	cpu0 := benchtable.CPUTime()
	sc.Snapshots()
	collectCPU = benchtable.CPUTime() - cpu0
	var w countingWriter
	bw := bufio.NewWriterSize(&w, 64<<10)
	if err := collector.WriteText(bw, reg, sc); err != nil {
		return 0, 0, err
	}
	if err := bw.Flush(); err != nil {
		return 0, 0, err
	}
	for _, st := range e.Status() {
		if st.Latest == nil || !st.Latest.OK() {
			return 0, 0, fmt.Errorf("collection failed: %w", st.Latest.Err)
		}
	}
	return w.n, collectCPU, nil
}

// heapSampler records the peak of live plus not yet swept heap objects.
type heapSampler struct {
	peak atomic.Uint64
	stop chan struct{}
	done chan struct{}
}

func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func startHeapSampler() *heapSampler {
	h := &heapSampler{stop: make(chan struct{}), done: make(chan struct{})}
	h.peak.Store(heapObjects())
	go func() {
		defer close(h.done)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-t.C:
				if v := heapObjects(); v > h.peak.Load() {
					h.peak.Store(v)
				}
			}
		}
	}()
	return h
}

func (h *heapSampler) finish() uint64 {
	close(h.stop)
	<-h.done
	if v := heapObjects(); v > h.peak.Load() {
		h.peak.Store(v)
	}
	return h.peak.Load()
}

func procStatus(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

type cell struct {
	agents, conc int
	latency      time.Duration
	reps         int
	wall         time.Duration // median
	collect      time.Duration // the collection's own duration, median
	ideal        time.Duration
	requests     int64 // per scrape, from the fake; the same every repetition or -1
	clientReqs   int64 // as the collection counted them
	cpu          time.Duration
	cpuCollect   time.Duration // of cpu, the collection's
	peakHeap     uint64        // above the post-GC baseline, in the sampled scrape
	rss          int64
	expo         int64
}

func (c *cell) pages() int { return (c.agents + 99) / 100 }

func reps(agents int, latency time.Duration, conc int) int {
	switch {
	case agents >= 50000:
		return 1 // 500 pages: seconds of CPU a scrape, 25 s at 50 ms one page at a time
	case agents >= 10000:
		return 3
	default:
		return 5
	}
}

func measure(f *fake, agents, conc int, latency time.Duration) (*cell, error) {
	c := &cell{agents: agents, conc: conc, latency: latency, reps: reps(agents, latency, conc)}
	p := c.pages()
	c.ideal = latency * time.Duration(1+(p-1+conc-1)/conc)
	e, err := newExporter(f.root+"/v2", conc, true, 0)
	if err != nil {
		return nil, err
	}
	// Warm-up without latency: connections, the fake's recording of each
	// page, and the exporter's memory of the fleet (steady state).
	if err := f.setLatency(0); err != nil {
		return nil, err
	}
	if _, _, err := scrape(e); err != nil {
		return nil, err
	}
	if err := f.setLatency(latency); err != nil {
		return nil, err
	}
	var walls, collects []time.Duration
	var cpu, cpuCollect time.Duration
	c.requests = -2
	// The repetitions, then one more for the heap: the sampler wakes
	// every millisecond and would cost about 45 ms of CPU a second.
	for rep := range c.reps + 1 {
		sampled := rep == c.reps
		runtime.GC()
		base := heapObjects()
		r0 := f.requests()
		var h *heapSampler
		if sampled {
			h = startHeapSampler()
		}
		cpu0 := benchtable.CPUTime()
		start := time.Now()
		n, collectCPU, err := scrape(e)
		wall := time.Since(start)
		scrapeCPU := benchtable.CPUTime() - cpu0
		if err != nil {
			return nil, err
		}
		reqs := f.requests() - r0
		if c.requests == -2 {
			c.requests = reqs
		} else if c.requests != reqs {
			c.requests = -1
		}
		c.clientReqs = e.Status()[0].Latest.Requests
		c.expo = n
		if sampled {
			if peak := h.finish(); peak > base {
				c.peakHeap = peak - base
			}
			continue
		}
		cpu += scrapeCPU
		cpuCollect += collectCPU
		walls = append(walls, wall)
		collects = append(collects, e.Status()[0].Latest.Duration())
	}
	slices.Sort(walls)
	c.wall = walls[len(walls)/2]
	slices.Sort(collects)
	c.collect = collects[len(collects)/2]
	c.cpu = cpu / time.Duration(c.reps)
	c.cpuCollect = cpuCollect / time.Duration(c.reps)
	c.rss = procStatus(os.Getpid(), "VmRSS")
	return c, nil
}

func mb(b float64) string { return fmt.Sprintf("%.1f MB", b/(1<<20)) }

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/1e6) }

func run(sizes []int, latencies []time.Duration, concs []int, binary bool) error {
	start := time.Now()
	fmt.Printf("benchtable: %s, %s/%s, GOMAXPROCS %d, %d CPUs; load average at start: %s\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), runtime.NumCPU(), loadavg())
	fmt.Println("In-process exporter (client + collector + gather + text encoding, as /metrics); the fake API in a child process,")
	fmt.Println("answers recorded on first request and replayed, with the latency added per request. Per cell: one warm-up scrape")
	fmt.Println("at 0 ms, then the repetitions; wall = median; CPU = getrusage user+sys of this process per scrape; peak heap =")
	fmt.Println("heap objects above the post-GC baseline, sampled every 1 ms in one more scrape (the sampler's own CPU is kept out of")
	fmt.Println("the CPU columns); RSS = VmRSS after the cell (cells run smallest")
	fmt.Println("fleet first; the process keeps what earlier cells grew). Per-agent details on (the flag's default).")
	fmt.Println()
	var cells []*cell
	var expoRows []string
	for _, n := range sizes {
		f, err := startFake(n)
		if err != nil {
			return err
		}
		for _, lat := range latencies {
			for _, conc := range concs {
				c, err := measure(f, n, conc, lat)
				if err != nil {
					f.stop()
					return fmt.Errorf("%d agents, %v, concurrency %d: %w", n, lat, conc, err)
				}
				cells = append(cells, c)
				fmt.Fprintf(os.Stderr, "  measured %d agents %v c=%d: %v (%s elapsed)\n", n, lat, conc, c.wall, time.Since(start).Round(time.Second))
			}
		}
		rows, err := exposition(f, n)
		if err != nil {
			f.stop()
			return err
		}
		expoRows = append(expoRows, rows...)
		f.stop()
	}

	fmt.Printf("%7s %7s %4s %6s %9s %9s %9s %6s %6s %8s %8s %9s %8s %8s %8s %9s %9s %10s %10s\n",
		"agents", "latency", "conc", "pages", "scrape", "collect", "ideal", "ratio", "ratioC", "vs c=1", "requests", "CPU", "CPU/1k", "coll/1k", "write/1k", "heap", "heap/1k", "RSS", "expo")
	for _, c := range cells {
		ratio, ratioC, speed := "-", "-", "-"
		if c.ideal > 0 {
			ratio = fmt.Sprintf("%.2f", float64(c.wall)/float64(c.ideal))
			ratioC = fmt.Sprintf("%.2f", float64(c.collect)/float64(c.ideal))
		}
		if c.conc != 1 {
			for _, o := range cells {
				if o.agents == c.agents && o.latency == c.latency && o.conc == 1 {
					speed = fmt.Sprintf("%.1fx", float64(o.wall)/float64(c.wall))
				}
			}
		}
		reqs := strconv.FormatInt(c.requests, 10)
		if c.requests < 0 {
			reqs = "varied"
		} else if c.requests != int64(c.pages()) || c.clientReqs != c.requests {
			reqs += "!"
		}
		k := float64(c.agents) / 1000
		perK := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/1e6/k) }
		fmt.Printf("%7d %7s %4d %6d %9s %9s %9s %6s %6s %8s %8s %9s %8s %8s %8s %9s %9s %10s %10s\n",
			c.agents, c.latency, c.conc, c.pages(), ms(c.wall), ms(c.collect), ms(c.ideal), ratio, ratioC, speed, reqs,
			ms(c.cpu), perK(c.cpu), perK(c.cpuCollect), perK(c.cpu-c.cpuCollect), mb(float64(c.peakHeap)), mb(float64(c.peakHeap)/k),
			mb(float64(c.rss)), mb(float64(c.expo)))
	}
	fmt.Println("scrape = wall time of the whole /metrics answer (collection, gather, text encoding); collect = the collection alone")
	fmt.Println("(listing, decoding, snapshot); ratio = scrape / ideal, ratioC = collect / ideal, ideal = latency x (1 + ceil((pages-1)")
	fmt.Println("/concurrency)); vs c=1 = scrape wall at concurrency 1 / scrape wall; CPU, heap, RSS, expo: whole scrape;")
	fmt.Println("coll/1k = CPU of the collection (listing, decoding, snapshot) per 1,000 agents, write/1k = the rest (writing /metrics);")
	fmt.Println("requests = API requests the fake received per scrape (! if not ceil(agents/100) or not what the client counted);")
	fmt.Println("repetitions per cell: 5 at 1,000 agents, 3 at 10,000, 1 at 50,000 (seconds of CPU per scrape; 25 s at 50 ms, c=1), plus the sampled one.")
	fmt.Println()
	fmt.Printf("Time to write /metrics (collection served from memory: --collector.min-interval), CPU per write (3 writes, 1 at 50,000):\n")
	fmt.Printf("%7s %-11s %12s %9s %9s %10s\n", "agents", "details", "bytes", "series", "CPU", "CPU/1k")
	for _, r := range expoRows {
		fmt.Println(r)
	}
	fmt.Println()
	if err := concurrentScrapes(); err != nil {
		return err
	}
	if binary {
		if err := idleRSS(); err != nil {
			return err
		}
	}
	fmt.Printf("\nload average at end: %s; total %s\n", loadavg(), time.Since(start).Round(time.Second))
	return nil
}

// exposition measures writing /metrics from a collection in memory.
func exposition(f *fake, n int) ([]string, error) {
	if err := f.setLatency(0); err != nil {
		return nil, err
	}
	var rows []string
	for _, details := range []bool{true, false} {
		e, err := newExporter(f.root+"/v2", 8, details, time.Hour)
		if err != nil {
			return nil, err
		}
		if _, _, err := scrape(e); err != nil { // the collection, kept for an hour
			return nil, err
		}
		writes := 3
		if n >= 50000 {
			writes = 1
		}
		var size int64
		cpu0 := benchtable.CPUTime()
		for range writes {
			if size, _, err = scrape(e); err != nil {
				return nil, err
			}
		}
		cpu := (benchtable.CPUTime() - cpu0) / time.Duration(writes)
		series, err := countSeries(e)
		if err != nil {
			return nil, err
		}
		name := "on"
		if !details {
			name = "off"
		}
		rows = append(rows, fmt.Sprintf("%7d %-11s %12d %9d %9s %10s", n, name, size, series, ms(cpu),
			fmt.Sprintf("%.2f ms", float64(cpu)/1e6/(float64(n)/1000))))
	}
	return rows, nil
}

// countSeries counts the series of one scrape of e: the lines of its
// exposition that are not comments.
func countSeries(e *collector.Exporter) (int, error) {
	reg := prometheus.NewRegistry()
	sc := e.Scrape(context.Background())
	if err := reg.Register(sc); err != nil {
		return 0, err
	}
	var buf bytes.Buffer
	if err := collector.WriteText(&buf, reg, sc); err != nil {
		return 0, err
	}
	n := 0
	for line := range bytes.Lines(buf.Bytes()) {
		if line[0] != '#' {
			n++
		}
	}
	return n, nil
}

// concurrentScrapes runs 20 scrapes at once against 10,000 agents at 50 ms
// and counts what reached the fake. Each scrape writes its own exposition
// of the shared collection.
func concurrentScrapes() error {
	const agents, scrapes = 10000, 20
	f, err := startFake(agents)
	if err != nil {
		return err
	}
	defer f.stop()
	e, err := newExporter(f.root+"/v2", 8, true, 0)
	if err != nil {
		return err
	}
	if _, _, err := scrape(e); err != nil { // warm-up
		return err
	}
	if err := f.setLatency(50 * time.Millisecond); err != nil {
		return err
	}
	r0 := f.requests()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, scrapes)
	sizes := make([]int64, scrapes)
	for i := range scrapes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sizes[i], _, errs[i] = scrape(e)
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	got := f.requests() - r0
	verdict := "no extra requests"
	if got != agents/100 {
		verdict = fmt.Sprintf("%d EXTRA requests", got-agents/100)
	}
	fmt.Printf("20 concurrent scrapes, 10,000 agents, 50 ms, concurrency 8 (in-process, details on): %d API requests in all (one scrape needs %d): %s; wall %s; every scrape wrote %d bytes\n",
		got, agents/100, verdict, ms(wall), sizes[0])
	return nil
}

// idleRSS builds the exporter, starts it against the fake and reads its
// RSS: idle before any scrape, after one scrape, and after 20 concurrent
// scrapes (counting the fake's requests).
func idleRSS() error {
	dir, err := os.MkdirTemp("", "benchtable")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "buildkite_exporter")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build: %w", err)
	}
	fmt.Println("Built exporter (go build .), its own process; defaults (per-agent details on), --buildkite.api-url at the fake:")
	for _, agents := range []int{1000, 10000} {
		if err := binaryRun(bin, agents); err != nil {
			return err
		}
	}
	return nil
}

func binaryRun(bin string, agents int) error {
	f, err := startFake(agents)
	if err != nil {
		return err
	}
	defer f.stop()
	if err := f.setLatency(50 * time.Millisecond); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "--buildkite.organization="+benchtable.Org, "--buildkite.api-url="+f.root+"/v2",
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Env = append(os.Environ(), "BUILDKITE_API_TOKEN="+benchtable.Token)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait() // interrupted: the exit status says nothing
	}()
	pid := cmd.Process.Pid
	up := false
	for range 100 {
		if resp, err := http.Get("http://" + addr + "/"); err == nil {
			resp.Body.Close()
			up = true
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !up {
		return errors.New("the exporter did not start")
	}
	time.Sleep(500 * time.Millisecond)
	idle := procStatus(pid, "VmRSS")
	get := func() (int64, error) {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return n, fmt.Errorf("/metrics: %s", resp.Status)
		}
		return n, err
	}
	r0 := f.requests()
	size, err := get()
	if err != nil {
		return err
	}
	one := f.requests() - r0
	afterOne := procStatus(pid, "VmRSS")
	r0 = f.requests()
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = get()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	twenty := f.requests() - r0
	afterTwenty := procStatus(pid, "VmRSS")
	// Sequential scrapes as Prometheus makes them (Go's client asks for
	// gzip, as Prometheus does): wall time and the process's CPU.
	const sequential = 5
	var walls []time.Duration
	cpu0 := procCPU(pid)
	for range sequential {
		start := time.Now()
		if _, err := get(); err != nil {
			return err
		}
		walls = append(walls, time.Since(start))
	}
	cpu := (procCPU(pid) - cpu0) / sequential
	slices.Sort(walls)
	fmt.Printf("  %6d agents, 50 ms: RSS idle (no scrape yet) %s; one scrape: %d requests, %s written, RSS after %s; 20 concurrent scrapes: %d requests in all, RSS after %s;\n"+
		"                 %d scrapes one after another (gzip): wall median %s, CPU %s per scrape (%.1f ms per 1,000 agents); peak RSS (VmHWM) %s\n",
		agents, mb(float64(idle)), one, mb(float64(size)), mb(float64(afterOne)), twenty, mb(float64(afterTwenty)),
		sequential, ms(walls[len(walls)/2]), ms(cpu), float64(cpu)/1e6/(float64(agents)/1000), mb(float64(procStatus(pid, "VmHWM"))))
	return nil
}

// procCPU is a process's user plus system CPU time from /proc/pid/stat
// (in clock ticks of 10 ms).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces: the fields start after its ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func ints(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchtable:", err)
			os.Exit(2)
		}
		out = append(out, n)
	}
	return out
}

func durations(s string) []time.Duration {
	var out []time.Duration
	for _, f := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchtable:", err)
			os.Exit(2)
		}
		out = append(out, d)
	}
	return out
}
