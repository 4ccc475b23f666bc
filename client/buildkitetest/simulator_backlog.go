package buildkitetest

import "math"

// backlogPeriod is how many steps one rise and fall of a queue's backlog
// takes; queues are out of phase with each other.
const backlogPeriod = 30

// driveBacklog sets each queue's jobs on the Agent Metrics API: running is
// what the queue's agents run; the backlog (scheduled, and a smaller number
// waiting) rises and falls with a period of backlogPeriod steps, peaking at
// about as many jobs as the queue has agents on average. It draws nothing
// from the random source, so fleets stay what their seeds make them.
func (s *Simulator) driveBacklog(active []Agent) {
	running := map[string]int{}
	for i := range active {
		if active[i].Job != nil {
			for _, q := range agentQueueKeys(&active[i]) {
				running[q]++
			}
		}
	}
	per := float64(s.cfg.Agents) / float64(len(s.cfg.Queues))
	for i, q := range s.cfg.Queues {
		phase := 2 * math.Pi * float64(s.steps+i*backlogPeriod/len(s.cfg.Queues)) / backlogPeriod
		level := math.Max(0, math.Sin(phase)) // half of each period has no backlog
		scheduled := int(math.Round(level * per))
		waiting := int(math.Round(level * per / 4))
		s.f.SetJobs(s.org, q, scheduled, running[q], waiting)
	}
}
