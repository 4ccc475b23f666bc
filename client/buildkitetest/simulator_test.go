package buildkitetest

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// runSim steps a simulator on a clock advancing 2 s per step and returns the fleet.
func runSim(seed int64, steps int) ([]Agent, *Fake) {
	f := NewFake()
	c := NewClock(epoch)
	sim := NewSimulator(f, "demo", SimConfig{Queues: []string{"default", "deploy", "macos"}, Agents: 40, Seed: seed, Now: c.Now})
	for range steps {
		c.Advance(2 * time.Second)
		sim.Step()
	}
	return f.Agents("demo"), f
}

func TestSimulatorDeterministic(t *testing.T) {
	a, _ := runSim(7, 50)
	b, _ := runSim(7, 50)
	if !reflect.DeepEqual(a, b) {
		t.Error("same seed and clock gave different fleets")
	}
	c, _ := runSim(8, 50)
	if reflect.DeepEqual(a, c) {
		t.Error("different seeds gave the same fleet")
	}
}

func TestSimulatorStepChangesFleet(t *testing.T) {
	f := NewFake()
	c := NewClock(epoch)
	sim := NewSimulator(f, "demo", SimConfig{Queues: []string{"default", "deploy"}, Agents: 40, Seed: 1, Now: c.Now})
	if n := len(f.Agents("demo")); n != 40 {
		t.Fatalf("initial fleet %d, want 40", n)
	}
	before := f.Agents("demo")
	c.Advance(2 * time.Second)
	sim.Step()
	if reflect.DeepEqual(before, f.Agents("demo")) {
		t.Error("Step changed nothing")
	}

	seen := map[string]bool{} // connection states and features observed over time
	versions := map[string]bool{}
	active := map[int]bool{}
	for range 200 {
		c.Advance(2 * time.Second)
		sim.Step()
		n := 0
		for _, a := range f.Agents("demo") {
			seen[a.ConnectionState] = true
			versions[a.Version] = true
			if a.ConnectionState == StateConnected || a.ConnectionState == StateStopping {
				n++
			}
			queues := 0
			for _, m := range a.MetaData {
				if strings.HasPrefix(m, "queue=") {
					queues++
				}
				if m == "os=linux" {
					seen["os tag"] = true
				}
				if strings.HasPrefix(m, "instance-type=") {
					seen["instance-type tag"] = true
				}
			}
			seen[map[int]string{0: "no queue", 1: "one queue", 2: "two queues"}[queues]] = true
			if a.Paused {
				seen["paused"] = true
			}
			if a.Job != nil {
				seen["busy"] = true
				if a.Job.StartedAt == nil {
					seen["assigned"] = true
				}
			}
			if a.LastJobFinishedAt != nil && a.LastJobFinishedAt.After(epoch) {
				seen["finished a job"] = true
			}
			if a.OSID == "" {
				seen["old api fields"] = true
			}
		}
		active[n] = true
	}
	for _, k := range []string{StateConnected, StateDisconnected, StateStopped, StateLost, "no queue", "one queue", "two queues",
		"paused", "busy", "assigned", "finished a job", "os tag", "instance-type tag", "old api fields"} {
		if !seen[k] {
			t.Errorf("never saw %q", k)
		}
	}
	if len(versions) < 3 {
		t.Errorf("versions %v: want a mix", versions)
	}
	if len(active) < 5 {
		t.Errorf("fleet size barely moved: %v", active)
	}
	// Agents that left are removed eventually: the fake does not grow without bound.
	if n := len(f.Agents("demo")); n > 100 {
		t.Errorf("%d agents kept", n)
	}
}

// The simulator plays along with API actions made between steps.
func TestSimulatorWithAPI(t *testing.T) {
	s, c := newTestServer(t)
	sim := NewSimulator(s.Fake, "demo", SimConfig{Agents: 10, Seed: 3, Now: c.Now})
	var busy string
	for _, a := range s.Agents("demo") {
		if a.Job != nil {
			busy = a.ID
			break
		}
	}
	if busy == "" {
		t.Fatal("no busy agent")
	}
	if r := do(t, s, "PUT", "/organizations/demo/agents/"+busy+"/stop", token, `{"force":false}`); r.status != 204 {
		t.Fatalf("stop: %d %s", r.status, r.body)
	}
	for range 100 {
		c.Advance(2 * time.Second)
		sim.Step()
	}
	if a, ok := s.Agent("demo", busy); ok && a.ConnectionState != StateStopped {
		t.Errorf("stopping agent ended %s", a.ConnectionState)
	}
}
