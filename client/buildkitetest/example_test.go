package buildkitetest_test

import (
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/buildkite-exporter/buildkite_exporter/client/buildkitetest"
)

func ExampleNewServer() {
	s := buildkitetest.NewServer()
	defer s.Close()
	s.AddToken("secret") // read_agents and write_agents
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	s.SetClock(func() time.Time { return now })
	s.PutAgent("acme", buildkitetest.Agent{ID: "a1", Name: "ci-1", Version: "3.77.0"})
	s.PutAgent("acme", buildkitetest.Agent{ID: "a2", ConnectionState: "lost"}) // not listed
	s.InjectFault(buildkitetest.Fault{Match: buildkitetest.MatchPage(1), Times: 1, Status: 502})

	for range 2 {
		req, _ := http.NewRequest("GET", s.URL+"/organizations/acme/agents", nil)
		req.Header.Set("Authorization", "Bearer secret")
		resp, err := s.Client().Do(req)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, resp.Header.Get("RateLimit-Scope"), len(body) > 100)
	}
	fmt.Println(len(s.Requests()))
	// Output:
	// 502 rest false
	// 200 rest true
	// 2
}
