// Package benchtable measures the exporter at fleet scale: a deterministic
// fleet for the fake API, and the table that `make bench` prints.
package benchtable

import (
	"fmt"
	"time"

	"github.com/buildkite-exporter/buildkite_exporter/client/buildkitetest"
)

// Epoch is the creation time of the oldest agent of a Fleet.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

var (
	queues   = []string{"default", "build", "test", "deploy", "macos", "windows", "gpu", "docker", "release", "nightly"}
	versions = []string{"3.87.1", "3.86.0", "3.85.2"}
	types    = []string{"c5.2xlarge", "m5.xlarge", "c6g.4xlarge", "m6i.2xlarge"}
)

// Fleet returns n connected agents shaped like a large real fleet: ten
// queues (one in ten agents has no queue field and is placed by its queue=
// tag, as older agents are), three versions, four meta_data entries each,
// two in three running a job, one in fifty paused, priorities set on
// most. IDs, names, hostnames and IP addresses are unique.
func Fleet(n int) []buildkitetest.Agent {
	out := make([]buildkitetest.Agent, n)
	for i := range out {
		q := queues[i%len(queues)]
		v := versions[(i/7)%len(versions)]
		osID, arch := "linux", "amd64"
		switch q {
		case "macos":
			osID, arch = "darwin", "arm64"
		case "windows":
			osID = "windows"
		case "gpu":
			arch = "arm64"
		}
		created := Epoch.Add(time.Duration(i) * time.Second)
		connected := created.Add(2 * time.Second)
		lastJob := Epoch.Add(time.Duration(n+i) * time.Second)
		a := buildkitetest.Agent{
			ID:              fmt.Sprintf("0190c8a4-%04x-7c2e-9a1b-%012x", i>>16&0xffff, i),
			Name:            fmt.Sprintf("ci-agent-%s-%d", q, i),
			ConnectionState: buildkitetest.StateConnected,
			Hostname:        fmt.Sprintf("ip-10-%d-%d-%d.ec2.internal", i>>16&0xff, i>>8&0xff, i&0xff),
			IPAddress:       fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff),
			UserAgent:       fmt.Sprintf("buildkite-agent/%s.10524 (%s; %s)", v, osID, arch),
			Version:         v,
			OSID:            osID,
			Arch:            arch,
			Queue:           q,
			MetaData: []string{
				"queue=" + q,
				"docker=true",
				"aws:instance-type=" + types[(i/3)%len(types)],
				fmt.Sprintf("stack=ci-%d", i%50),
			},
			CreatedAt:         created,
			ConnectedAt:       &connected,
			LastJobFinishedAt: &lastJob,
		}
		if i%10 == 9 {
			a.Queue = "" // placed by its queue= tag
		}
		if i%4 != 0 {
			p := i % 5
			a.Priority = &p
		}
		if i%3 != 0 {
			started := lastJob.Add(time.Minute)
			a.Job = &buildkitetest.Job{ID: fmt.Sprintf("0190c8a5-%04x-7d00-8000-%012x", i>>16&0xffff, i), State: "running", StartedAt: &started}
		}
		if i%50 == 49 {
			a.Paused = true
			pausedAt := lastJob.Add(30 * time.Second)
			a.PausedAt = &pausedAt
			a.PausedNote = "draining for maintenance"
		}
		out[i] = a
	}
	return out
}
