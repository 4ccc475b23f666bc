package buildkitetest

import "math"

// backlogPeriod is how many steps one rise and fall of a queue's backlog
// takes; queues are out of phase with each other.
const backlogPeriod = 30

// simQueueRef is a queue of the simulated fleet as the Agent Metrics API
// names it: cluster name ("" for unclustered) and key.
type simQueueRef struct{ cluster, key string }

// driveBacklog sets each queue's jobs on the Agent Metrics API: running is
// what the queue's agents run; the backlog (scheduled, and a smaller number
// waiting) rises and falls with a period of backlogPeriod steps, peaking at
// about as many jobs as the queue has agents on average. It draws nothing
// from the random source, so fleets stay what their seeds make them.
func (s *Simulator) driveBacklog(active []Agent) {
	queues := s.backlogQueues()
	running := map[simQueueRef]int{}
	for i := range active {
		a := &active[i]
		if a.Job == nil {
			continue
		}
		served := "default"
		if a.ClusterID != "" {
			served = s.defaultQueue(a.ClusterID)
		}
		for _, q := range agentQueueKeys(a, served) {
			running[simQueueRef{s.names[a.ClusterID], q}]++
		}
	}
	per := float64(s.cfg.Agents) / float64(len(queues))
	for i, q := range queues {
		phase := 2 * math.Pi * float64(s.steps+i*backlogPeriod/len(queues)) / backlogPeriod
		level := math.Max(0, math.Sin(phase)) // half of each period has no backlog
		scheduled := int(math.Round(level * per))
		waiting := int(math.Round(level * per / 4))
		if len(s.cfg.Clusters) == 0 {
			s.f.SetJobs(s.org, q.key, scheduled, running[q], waiting)
		} else {
			s.f.SetClusterJobs(s.org, q.cluster, q.key, scheduled, running[q], waiting)
		}
	}
}

// backlogQueues lists every queue of the fleet: each cluster's, then the
// unclustered ones.
func (s *Simulator) backlogQueues() []simQueueRef {
	var out []simQueueRef
	for _, c := range s.cfg.Clusters {
		for _, q := range c.Queues {
			out = append(out, simQueueRef{c.Name, q.Key})
		}
	}
	for _, q := range s.cfg.Queues {
		out = append(out, simQueueRef{"", q})
	}
	return out
}

// defaultQueue is the default queue key of a cluster of cfg.Clusters.
func (s *Simulator) defaultQueue(clusterID string) string {
	for _, c := range s.cfg.Clusters {
		if ClusterID(s.org, c.Name) == clusterID && len(c.Queues) > 0 {
			return c.Queues[0].Key
		}
	}
	return "default"
}
