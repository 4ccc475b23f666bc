package collector

import (
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// historySize is how many past collections an organization remembers for
// the status page.
const historySize = 10

// orgMemory is the only state that outlives a scrape for one organization.
// Listings update it only when they succeed; its size is bounded by the
// retention settings.
type orgMemory struct {
	org         string
	maxDeparted int // departed agents kept at most

	clusterReads clusterReads

	mu     sync.Mutex
	queues map[queueRef]time.Time // queue -> last seen in a successful listing
	// The previous successful listing, sorted by ID (its snapshot's, read
	// only), and when it was made; kept: agents it missed that a lookup
	// showed still connected, sorted by ID.
	listed     []AgentView
	listedAt   time.Time
	kept       []DepartedAgent
	departed   map[string]DepartedAgent
	departures map[departureKey]float64
	latest     *Snapshot
	good       *Snapshot           // the latest successful listing's result, served while listings wait
	history    []CollectionSummary // newest last
	errClass   string              // of the latest collection, "" when it succeeded
	pages      int                 // of the latest successful listing; 0 before one
	hold       string              // why listings wait (hold.key), "" when they do not
	// fieldErrors counts agent members treated as absent, by field, over
	// every listing; fieldErrorsNow: the fields the latest successful
	// listing had errors in (to log once per change).
	fieldErrors    map[string]float64
	fieldErrorsNow map[string]bool
}

// departureKey is by cluster ID in memory, by cluster label in a snapshot.
type departureKey struct{ clusterID, queue, state string }

// CollectionSummary is what the status page shows of one past collection.
type CollectionSummary struct {
	Start, End   time.Time
	Err          error
	Requests     int64
	Pages        int
	Agents       int
	RateLimit    RateLimitSummary
	HasRateLimit bool
}

// RateLimitSummary is the rate-limit state a collection ended with.
type RateLimitSummary struct{ Limit, Remaining, Reset int }

func newOrgMemory(org string, maxDeparted int) *orgMemory {
	return &orgMemory{
		org:         org,
		maxDeparted: maxDeparted,
		queues:      map[queueRef]time.Time{},
		departed:    map[string]DepartedAgent{},
		departures:  map[departureKey]float64{},
		fieldErrors: map[string]float64{},
	}
}

// observe records a successful listing seen at now and returns the agents
// that left since the previous successful listing, sorted by ID. Nothing is
// counted yet: the caller looks up why they left and calls depart.
func (m *orgMemory) observe(agents []AgentView, now time.Time) []DepartedAgent {
	m.mu.Lock()
	defer m.mu.Unlock()
	// Both listings are sorted by ID: one walk over them finds the gone,
	// in order, without a map of the fleet per collection.
	k := 0
	listedNow := func(id string) bool {
		for k < len(agents) && agents[k].ID < id {
			k++
		}
		return k < len(agents) && agents[k].ID == id
	}
	var gone []DepartedAgent
	for i, j := 0, 0; i < len(m.listed) || j < len(m.kept); {
		var d DepartedAgent
		if j == len(m.kept) || (i < len(m.listed) && m.listed[i].ID < m.kept[j].ID) {
			a := &m.listed[i]
			i++
			if listedNow(a.ID) {
				continue
			}
			d = DepartedAgent{ID: a.ID, Name: a.Name, Hostname: a.Hostname, ClusterID: a.ClusterID, Queues: a.Queues, QueueLabel: a.QueueLabel, LastSeen: m.listedAt}
		} else {
			d = m.kept[j]
			j++
			if listedNow(d.ID) {
				continue
			}
		}
		d.State, d.At = stateUnknown, now
		gone = append(gone, d)
	}

	m.seeQueues(agents, now)
	for id := range m.departed {
		if _, back := slices.BinarySearchFunc(agents, id, func(a AgentView, id string) int { return strings.Compare(a.ID, id) }); back {
			delete(m.departed, id) // it came back
		}
	}
	m.listed, m.listedAt, m.kept = agents, now, nil
	return gone
}

// seeQueues records the agents' queues as seen at now; m.mu is held.
func (m *orgMemory) seeQueues(agents []AgentView, now time.Time) {
	var last []string // most agents share their queues with the one before
	lastCluster := ""
	for i := range agents {
		if a := &agents[i]; !slices.Equal(a.Queues, last) || a.ClusterID != lastCluster {
			for _, name := range a.Queues {
				m.queues[queueRef{a.ClusterID, name}] = now
			}
			last, lastCluster = a.Queues, a.ClusterID
		}
	}
}

// stillPresent puts back an agent that Get showed connected: the listing
// skipped it while pages shifted, it did not leave.
func (m *orgMemory) stillPresent(d DepartedAgent) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i, _ := slices.BinarySearchFunc(m.kept, d.ID, func(k DepartedAgent, id string) int { return strings.Compare(k.ID, id) })
	m.kept = slices.Insert(m.kept, i, d)
}

// depart counts a departure once in each of the agent's queues.
func (m *orgMemory) depart(d DepartedAgent) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.departed[d.ID] = d
	for _, q := range d.Queues {
		m.departures[departureKey{d.ClusterID, q, d.State}]++
	}
}

// expire forgets queues and departed agents not seen in a successful
// listing within their retention, and the oldest departed agents beyond
// maxDeparted. Configured queues and those the clusters API lists keep
// their departure counters.
func (m *orgMemory) expire(now time.Time, queueRetention, agentRetention time.Duration, configured []string) {
	view, _ := m.clusterReads.current()
	keep := map[queueRef]bool{}
	for _, q := range configured {
		keep[view.configuredQueue(q)] = true
	}
	if view != nil {
		for _, q := range view.queues {
			keep[q] = true
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for q, seen := range m.queues {
		if now.Sub(seen) > queueRetention {
			delete(m.queues, q)
		}
	}
	for k := range m.departures {
		ref := queueRef{k.clusterID, k.queue}
		if _, known := m.queues[ref]; !known && !keep[ref] {
			delete(m.departures, k)
		}
	}
	for id, d := range m.departed {
		if now.Sub(d.LastSeen) > agentRetention {
			delete(m.departed, id)
		}
	}
	m.dropOldestDeparted()
}

// dropOldestDeparted keeps the newest maxDeparted departed agents: last
// seen latest, then gone latest, then (of equal age) the highest IDs.
func (m *orgMemory) dropOldestDeparted() {
	excess := len(m.departed) - m.maxDeparted
	if excess <= 0 {
		return
	}
	all := make([]DepartedAgent, 0, len(m.departed))
	for _, d := range m.departed {
		all = append(all, d)
	}
	slices.SortFunc(all, func(a, b DepartedAgent) int {
		if c := a.LastSeen.Compare(b.LastSeen); c != 0 {
			return c
		}
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	for _, d := range all[:excess] {
		delete(m.departed, d.ID)
	}
}

// knownQueues returns the queues seen within retention, those the last
// good clusters read lists and the configured ones, by label, sorted.
func (m *orgMemory) knownQueues(now time.Time, retention time.Duration, configured []string) []queueLabel {
	view, _ := m.clusterReads.current()
	m.mu.Lock()
	var refs []queueRef
	for q, seen := range m.queues {
		if now.Sub(seen) <= retention {
			refs = append(refs, q)
		}
	}
	m.mu.Unlock()
	if view != nil {
		refs = append(refs, view.queues...)
	}
	for _, q := range configured {
		refs = append(refs, view.configuredQueue(q))
	}
	return resolveQueues(view, refs)
}

// past fills the snapshot's memory of the past: departed agents within
// retention at the snapshot's end, and the departure counters, zero-filled
// for every known queue; clusters by label, as the last good clusters read
// names them.
func (m *orgMemory) past(s *Snapshot, knownQueues []queueLabel, agentRetention time.Duration) {
	view, _ := m.clusterReads.current()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, d := range m.departed {
		if s.End.Sub(d.LastSeen) <= agentRetention {
			d.Cluster = view.label(d.ClusterID)
			s.Departed = append(s.Departed, d)
		}
	}
	sort.Slice(s.Departed, func(i, j int) bool {
		if !s.Departed[i].At.Equal(s.Departed[j].At) {
			return s.Departed[i].At.After(s.Departed[j].At)
		}
		return s.Departed[i].ID < s.Departed[j].ID
	})
	// By label values: two cluster IDs of one label add up.
	counts := make(map[departureKey]float64, len(m.departures)+len(knownQueues)*len(zeroFilledDepartureStates))
	for _, q := range knownQueues {
		for _, state := range zeroFilledDepartureStates {
			counts[departureKey{q.cluster, q.queue, state}] = 0
		}
	}
	for k, n := range m.departures {
		counts[departureKey{view.label(k.clusterID), k.queue, k.state}] += n
	}
	s.Departures = make([]DepartureCount, 0, len(counts))
	for k, n := range counts {
		s.Departures = append(s.Departures, DepartureCount{Cluster: k.clusterID, Queue: k.queue, State: k.state, Count: n})
	}
	sort.Slice(s.Departures, func(i, j int) bool {
		a, b := s.Departures[i], s.Departures[j]
		if a.Cluster != b.Cluster {
			return a.Cluster < b.Cluster
		}
		if a.Queue != b.Queue {
			return a.Queue < b.Queue
		}
		return a.State < b.State
	})
}

// record keeps s as the latest snapshot and in the history, and reports
// whether the kind of failure changed (so the caller logs once per change).
func (m *orgMemory) record(s *Snapshot) (changed bool, previous string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.latest = s
	if s.OK() {
		m.pages = s.Pages
		m.good = s
	}
	m.rememberLocked(s)
	class := ""
	if s.Err != nil {
		class = errorClass(s.Err)
	}
	previous, m.errClass = m.errClass, class
	return previous != class, previous
}

// remember keeps s in the history only: a collection whose result is not
// served (a listing the client refused inside another organization's 429
// window).
func (m *orgMemory) remember(s *Snapshot) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rememberLocked(s)
}

func (m *orgMemory) rememberLocked(s *Snapshot) {
	sum := CollectionSummary{
		Start: s.Start, End: s.End, Err: s.Err, Requests: s.Requests, Pages: s.Pages,
		Agents: len(s.Agents), HasRateLimit: s.HasRateLimit,
		RateLimit: RateLimitSummary{Limit: s.RateLimit.Limit, Remaining: s.RateLimit.Remaining, Reset: s.RateLimit.Reset},
	}
	if len(m.history) == historySize {
		copy(m.history, m.history[1:])
		m.history = m.history[:historySize-1]
	}
	m.history = append(m.history, sum)
}

// latestResult is what is served while listings wait: the latest
// complete (successful) listing's result, else the latest failed one, nil
// before any.
func (m *orgMemory) latestResult() *Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.good != nil {
		return m.good
	}
	return m.latest
}

// goodResult is the latest complete (successful) listing's result, nil
// before one.
func (m *orgMemory) goodResult() *Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.good
}

// pagesNeeded is what the next listing is expected to cost: the latest
// successful listing's page count, 1 when unknown.
func (m *orgMemory) pagesNeeded() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return max(m.pages, 1)
}

// setHold records why listings wait ("" when they do not) and returns the
// previous reason and whether it changed.
func (m *orgMemory) setHold(key string) (previous string, changed bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	previous, m.hold = m.hold, key
	return previous, previous != key
}

// servedAt describes the result served while listings wait, for the log.
func (m *orgMemory) servedAt() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.good == nil {
		return "none (buildkite_up 0)"
	}
	return m.good.Collected.UTC().Format(time.RFC3339)
}

// countFieldErrors adds a successful listing's field errors and returns
// the fields that have errors now and had none in the previous listing,
// and those that had and have none now, sorted.
func (m *orgMemory) countFieldErrors(counts map[string]int) (appeared, cleared []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := make(map[string]bool, len(counts))
	for field, n := range counts {
		field = labelValue(field)
		m.fieldErrors[field] += float64(n)
		now[field] = true
		if !m.fieldErrorsNow[field] {
			appeared = append(appeared, field)
		}
	}
	for field := range m.fieldErrorsNow {
		if !now[field] {
			cleared = append(cleared, field)
		}
	}
	m.fieldErrorsNow = now
	sort.Strings(appeared)
	sort.Strings(cleared)
	return appeared, cleared
}

// fieldErrorCounts returns the field error counters, sorted by field.
func (m *orgMemory) fieldErrorCounts() []FieldErrorCount {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]FieldErrorCount, 0, len(m.fieldErrors))
	for field, n := range m.fieldErrors {
		out = append(out, FieldErrorCount{Field: field, Count: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	return out
}

// fresh returns the latest snapshot when it ended less than minInterval
// before now.
func (m *orgMemory) fresh(now time.Time, minInterval time.Duration) *Snapshot {
	if minInterval <= 0 {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.latest != nil && now.Sub(m.latest.End) < minInterval {
		return m.latest
	}
	return nil
}

// status returns the latest snapshot and a copy of the history.
func (m *orgMemory) status() (*Snapshot, []CollectionSummary) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.latest, append([]CollectionSummary(nil), m.history...)
}
