package buildkitetest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"
)

// SimConfig configures a Simulator.
type SimConfig struct {
	// Queues are the queue keys unclustered agents serve; default
	// ["default"] when there are no Clusters.
	Queues []string
	// Clusters, when set, are declared in the Fake (AddCluster) and agents
	// are spread over their queues and Queues. Without Clusters every agent
	// sits in the organization's implicit, unlisted cluster (see
	// Agent.ClusterQueueID), as before clusters were modelled.
	Clusters []SimCluster
	Agents   int              // mean fleet size; <= 0 means 60
	Seed     int64            // same seed, same clock readings: same fleet
	Now      func() time.Time // clock for the timestamps it sets; default time.Now
}

// SimCluster is a cluster of a simulated fleet.
type SimCluster struct {
	Name   string
	Queues []SimQueue // the first is the cluster's default queue
}

// SimQueue is a queue of a SimCluster.
type SimQueue struct {
	Key            string
	NoAgents       bool // declared, but no agent ever serves it
	DispatchPaused bool // dispatch paused from the start: its agents take no new jobs
	// NoQueueMetrics makes its GraphQL metrics null (SetQueueMetricsNull),
	// as Buildkite answers without advanced queue metrics.
	NoQueueMetrics bool
}

// DemoFleet is the layout of the demo fleet (cmd/buildkite-fake): three
// clusters and unclustered agents, with what a real organization shows:
//   - "Default cluster" (a new organization's), whose default queue is
//     linux-small, not default; its queue gpu has no agents and null
//     queue metrics on the GraphQL API (the other queues' wait times move
//     with the clock);
//   - "linux" and "macos", which both have a queue keyed default (queue keys
//     are unique only within a cluster); linux's deploy queue is
//     dispatch-paused;
//   - unclustered agents in the queues default and windows.
//
// Agents and Seed are left for the caller.
func DemoFleet() SimConfig {
	return SimConfig{
		Queues: []string{"default", "windows"},
		Clusters: []SimCluster{
			{Name: "Default cluster", Queues: []SimQueue{{Key: "linux-small"}, {Key: "linux-large"}, {Key: "gpu", NoAgents: true, NoQueueMetrics: true}}},
			{Name: "linux", Queues: []SimQueue{{Key: "default"}, {Key: "deploy", DispatchPaused: true}}},
			{Name: "macos", Queues: []SimQueue{{Key: "default"}, {Key: "ios"}}},
		},
	}
}

// DemoDispatchPausedNote is the note of the demo fleet's dispatch-paused queue.
const DemoDispatchPausedNote = "release freeze"

// simSlot is a queue a new agent can join: a cluster's queue, or (cluster
// -1) the unclustered queues as a whole.
type simSlot struct {
	cluster int
	key     string
}

// Simulator drives a living fleet in one organization of a Fake, for the demo and
// for tests that want realistic variety. Agents take and finish jobs, get paused
// and resumed, the fleet scales up and down (new agents join, some disconnect or
// stop, occasionally one is lost), versions and tags are mixed. Agents that left
// stay gettable for a while and are then removed.
//
// Step is not safe for concurrent use with itself; the Fake it drives is, so API
// actions (stop, pause, resume) interleave with it and it plays along.
type Simulator struct {
	f     *Fake
	org   string
	cfg   SimConfig
	rng   *rand.Rand
	steps int
	hosts int
	left  map[string]int    // agent ID -> step at which it was first seen gone
	slots []simSlot         // with Clusters: where new agents go
	names map[string]string // cluster ID -> name
}

// retainSteps is how long an agent that left stays gettable before removal.
const retainSteps = 30

var simVersions = []struct {
	v      string
	weight int
}{{"3.77.0", 30}, {"3.76.2", 25}, {"3.75.1", 20}, {"3.74.0", 15}, {"3.59.0", 10}}

var pauseNotes = []string{"", "investigating flaky disk", "draining for AMI rollout", "debugging job timeouts"}

// NewSimulator creates the organization in f and fills it with cfg.Agents agents,
// some of them busy.
func NewSimulator(f *Fake, org string, cfg SimConfig) *Simulator {
	if len(cfg.Queues) == 0 && len(cfg.Clusters) == 0 {
		cfg.Queues = []string{"default"}
	}
	if cfg.Agents <= 0 {
		cfg.Agents = 60
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Simulator{
		f:    f,
		org:  org,
		cfg:  cfg,
		rng:  rand.New(rand.NewPCG(uint64(cfg.Seed), 0x6275696c646b6974)),
		left: map[string]int{},
	}
	f.AddOrganization(org)
	s.declareClusters()
	now := cfg.Now()
	for i := 0; i < cfg.Agents; i++ {
		// Spread registrations over the last day so created_at varies.
		created := now.Add(-time.Duration(s.rng.IntN(24*3600)) * time.Second)
		a := s.newAgent(created)
		if s.rng.Float64() < 0.5 {
			a.Job = s.newJob(now)
		}
		f.PutAgent(org, a)
	}
	return s
}

// declareClusters puts cfg.Clusters into the Fake and lists the slots new
// agents join.
func (s *Simulator) declareClusters() {
	s.names = map[string]string{}
	for i, c := range s.cfg.Clusters {
		var keys []string
		for _, q := range c.Queues {
			keys = append(keys, q.Key)
			if !q.NoAgents {
				s.slots = append(s.slots, simSlot{i, q.Key})
			}
		}
		if len(keys) == 0 {
			keys = []string{""}
		}
		id := s.f.AddCluster(s.org, c.Name, keys[0], keys[1:]...)
		s.names[id] = c.Name
		for _, q := range c.Queues {
			if q.DispatchPaused {
				s.f.SetDispatchPaused(s.org, id, QueueID(id, q.Key), true, DemoDispatchPausedNote)
			}
			if q.NoQueueMetrics {
				s.f.SetQueueMetricsNull(s.org, c.Name, q.Key, true)
			}
		}
	}
	if len(s.cfg.Clusters) > 0 && len(s.cfg.Queues) > 0 {
		s.slots = append(s.slots, simSlot{cluster: -1})
	}
}

// Step advances the fleet by one tick.
func (s *Simulator) Step() {
	s.steps++
	now := s.cfg.Now()
	var active []Agent
	for _, a := range s.f.Agents(s.org) {
		switch a.ConnectionState {
		case StateConnected, StateStopping:
			active = append(active, a)
		default:
			if at, ok := s.left[a.ID]; !ok {
				s.left[a.ID] = s.steps
			} else if s.steps-at >= retainSteps {
				s.f.RemoveAgent(s.org, a.ID)
				delete(s.left, a.ID)
			}
		}
	}
	for _, a := range active {
		s.advance(a, now)
	}
	s.scale(len(active), active, now)
	s.driveBacklog(active)
}

// advance moves one agent along: jobs start and finish, pauses end, stopping
// agents stop once idle.
func (s *Simulator) advance(a Agent, now time.Time) {
	r := s.rng.Float64()
	var mutate func(*Agent)
	switch {
	case a.Job != nil:
		mutate = busyStep(a, r, now)
	case a.ConnectionState == StateStopping:
		mutate = func(x *Agent) { setGone(x, StateStopped, now) }
	case a.Paused:
		expired := a.PausedAt != nil && !now.Before(a.PausedAt.Add(time.Duration(a.PausedTimeoutInMinutes)*time.Minute))
		if !expired && r >= 0.15 {
			return
		}
		mutate = func(x *Agent) { x.Paused, x.PausedAt, x.PausedNote, x.PausedTimeoutInMinutes = false, nil, "", 0 }
	case r < 0.02:
		note := pauseNotes[s.rng.IntN(len(pauseNotes))]
		timeout := []int{5, 15, 60}[s.rng.IntN(3)]
		mutate = func(x *Agent) {
			x.Paused, x.PausedAt, x.PausedNote, x.PausedTimeoutInMinutes = true, ptr(now), note, timeout
		}
	case r < 0.47:
		if s.f.dispatchPaused(s.org, &a) {
			return // Buildkite dispatches no job to it
		}
		job := s.newJob(now)
		mutate = func(x *Agent) {
			if x.Job == nil && !x.Paused {
				x.Job = job
			}
		}
	}
	if mutate != nil {
		s.f.UpdateAgent(s.org, a.ID, mutate)
	}
}

// busyStep is what happens to an agent with a job: an assigned job starts,
// a running one finishes (with chance 0.35; a stopping agent then stops);
// nil when nothing happens.
func busyStep(a Agent, r float64, now time.Time) func(*Agent) {
	switch {
	case a.Job.StartedAt == nil:
		return func(x *Agent) {
			if x.Job != nil {
				x.Job.State, x.Job.StartedAt = "running", ptr(now)
			}
		}
	case r < 0.35:
		stopping := a.ConnectionState == StateStopping
		return func(x *Agent) {
			x.Job, x.LastJobFinishedAt = nil, ptr(now)
			if stopping {
				setGone(x, StateStopped, now)
			}
		}
	}
	return nil
}

func setGone(x *Agent, state string, now time.Time) {
	x.ConnectionState = state
	x.DisconnectedAt = ptr(now)
	switch state {
	case StateStopped:
		x.StoppedAt = ptr(now)
	case StateLost:
		x.LostAt = ptr(now)
	}
}

// scale moves the fleet towards a target that swings around cfg.Agents (an
// autoscaling group following a daily load curve, compressed), and loses an
// agent now and then.
func (s *Simulator) scale(n int, active []Agent, now time.Time) {
	base := float64(s.cfg.Agents)
	target := int(math.Round(base + base/5*math.Sin(2*math.Pi*float64(s.steps)/40) + base/20*(s.rng.Float64()*2-1)))
	maxMove := max(1, s.cfg.Agents/10)
	switch {
	case n < target:
		for i := 0; i < min(target-n, maxMove); i++ {
			s.f.PutAgent(s.org, s.newAgent(now))
		}
	case n > target:
		// Scale-in takes idle agents: most disconnect, a few are stopped from the UI.
		var idle []Agent
		for _, a := range active {
			if a.Job == nil && a.ConnectionState == StateConnected {
				idle = append(idle, a)
			}
		}
		for i := 0; i < min(n-target, maxMove, len(idle)); i++ {
			j := i + s.rng.IntN(len(idle)-i)
			idle[i], idle[j] = idle[j], idle[i]
			state := StateDisconnected
			if s.rng.Float64() < 0.2 {
				state = StateStopped
			}
			s.f.UpdateAgent(s.org, idle[i].ID, func(x *Agent) { setGone(x, state, now) })
		}
	}
	if len(active) > 0 && s.rng.Float64() < 0.05 {
		id := active[s.rng.IntN(len(active))].ID
		s.f.UpdateAgent(s.org, id, func(x *Agent) {
			if x.ConnectionState == StateConnected {
				x.ConnectionState, x.LostAt = StateLost, ptr(now)
			}
		})
	}
}

func (s *Simulator) uuid() string {
	var b [16]byte
	for i := range b {
		b[i] = byte(s.rng.UintN(256))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func (s *Simulator) newJob(now time.Time) *Job {
	if s.rng.Float64() < 0.2 {
		return &Job{ID: s.uuid(), State: "assigned"} // not started yet
	}
	started := now.Add(-time.Duration(s.rng.IntN(300)) * time.Second)
	return &Job{ID: s.uuid(), State: "running", StartedAt: &started}
}

// simPlace is where a new agent goes: the queue tags it gets, the queue key
// it serves, its cluster and queue IDs ("" when unclustered), and a hint of
// its platform (mac, windows).
type simPlace struct {
	tags               []string
	queue              string
	clusterID, queueID string
	hint               string
}

// place picks a new agent's queues.
func (s *Simulator) place() simPlace {
	if len(s.cfg.Clusters) == 0 {
		p := s.unclustered()
		p.clusterID, p.queueID = "", uuidFrom("queue:"+s.org+":"+p.queue) // the implicit cluster
		return p
	}
	slot := s.slots[s.rng.IntN(len(s.slots))]
	if slot.cluster < 0 {
		return s.unclustered()
	}
	c := s.cfg.Clusters[slot.cluster]
	id := ClusterID(s.org, c.Name)
	p := simPlace{tags: []string{slot.key}, queue: slot.key, clusterID: id, queueID: QueueID(id, slot.key), hint: c.Name + "/" + slot.key}
	if slot.key == c.Queues[0].Key && s.rng.Float64() < 0.3 {
		p.tags = nil // no queue tag: serves the cluster's default queue
	}
	return p
}

// unclustered picks among cfg.Queues: mostly one, sometimes two, now and
// then none (serving "default").
func (s *Simulator) unclustered() simPlace {
	qs := s.cfg.Queues
	var queues []string
	switch r := s.rng.Float64(); {
	case r < 0.05: // no queue tag: serves "default"
	case r < 0.15 && len(qs) > 1:
		i := s.rng.IntN(len(qs) - 1)
		queues = []string{qs[i], qs[i+1]}
	default:
		queues = []string{qs[s.rng.IntN(len(qs))]}
	}
	queue := "default"
	if len(queues) > 0 {
		queue = queues[0]
	}
	return simPlace{tags: queues, queue: queue, hint: queue}
}

func (s *Simulator) newAgent(created time.Time) Agent {
	s.hosts++
	p := s.place()

	osID, arch, instance := "linux", "amd64", []string{"c6i.xlarge", "m6i.large", "c6i.2xlarge"}[s.rng.IntN(3)]
	hostname := fmt.Sprintf("ip-10-0-%d-%d.ec2.internal", s.rng.IntN(16), 1+s.rng.IntN(254))
	switch {
	case strings.Contains(p.hint, "mac"):
		osID, arch, instance = "darwin", "arm64", "mac2.metal"
		hostname = fmt.Sprintf("mac-mini-%03d", s.hosts)
	case strings.Contains(p.hint, "windows"):
		osID, instance = "windows", "m6i.xlarge"
		hostname = fmt.Sprintf("WIN-CI-%03d", s.hosts)
	case s.rng.Float64() < 0.25:
		arch, instance = "arm64", "c7g.xlarge"
	}

	w := s.rng.IntN(100)
	version := simVersions[0].v
	for _, v := range simVersions {
		if w < v.weight {
			version = v.v
			break
		}
		w -= v.weight
	}

	meta := []string{}
	for _, q := range p.tags {
		meta = append(meta, "queue="+q)
	}
	meta = append(meta, "os="+osID, "instance-type="+instance)
	if s.rng.Float64() < 0.1 {
		meta = append(meta, "spot") // tags need not have "="
	}
	var priority *int
	if s.rng.Float64() < 0.2 {
		priority = ptr(1 + s.rng.IntN(10))
	}

	id := s.uuid()
	a := Agent{
		ID:              id,
		Name:            fmt.Sprintf("%s-%d", strings.SplitN(hostname, ".", 2)[0], 1+s.rng.IntN(4)),
		ConnectionState: StateConnected,
		Hostname:        hostname,
		IPAddress:       fmt.Sprintf("10.0.%d.%d", s.rng.IntN(256), 1+s.rng.IntN(254)),
		UserAgent:       fmt.Sprintf("buildkite-agent/%s.%d (%s; %s)", version, 10000+s.rng.IntN(1000), osID, arch),
		Version:         version,
		OSID:            osID,
		Arch:            arch,
		Queue:           p.queue,
		MetaData:        meta,
		Priority:        priority,
		CreatedAt:       created,
		ConnectedAt:     ptr(created),
		ClusterQueueID:  p.queueID,
		ClusterID:       p.clusterID,
	}
	if version == "3.59.0" {
		// Old agents as older API responses show them: no os_id/arch/queue.
		a.OSID, a.Arch, a.Queue = "", "", ""
		a.Extra = map[string]any{"queue": Omit}
	}
	return a
}
