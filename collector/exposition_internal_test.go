package collector

import (
	"strconv"
	"strings"
	"testing"

	"github.com/buildkite-exporter/buildkite_exporter/client"
)

// sameEntry must agree with splitting both entries.
func FuzzSameEntry(f *testing.F) {
	for _, s := range [][2]string{
		{"k", "k="}, {"k=", "k"}, {"k=v", "k=v"}, {"k=v", "k=v="}, {"a=", "a=="}, {"=", "=="}, {"a", "b"},
		{"k=v=w", "k=v"}, {"queue=", "queue"}, {"x", "x=y"}, {"ab", "a="}, {"a=b", "a=b"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ka, va := splitTag(a)
		kb, vb := splitTag(b)
		if got, want := sameEntry(a, b), ka == kb && va == vb; got != want {
			t.Fatalf("sameEntry(%q, %q) = %v; split: (%q, %q) and (%q, %q)", a, b, got, ka, va, kb, vb)
		}
	})
}

// needsEscaping must agree with a byte-by-byte scan, at every alignment.
func FuzzNeedsEscaping(f *testing.F) {
	for _, s := range []string{"", "plain-agent-name-1", `a"b`, `0123456789\`, "0123456\n89abcdef", "ünïcödé-\xff", strings.Repeat("x", 17) + `"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := strings.ContainsAny(s, "\\\"\n")
		for i := 0; i <= len(s) && i < 9; i++ {
			if got := needsEscaping(s[i:]); got != strings.ContainsAny(s[i:], "\\\"\n") {
				t.Fatalf("needsEscaping(%q) = %v", s[i:], got)
			}
		}
		if got := needsEscaping("plain", s, "also plain"); got != want {
			t.Fatalf("needsEscaping(..., %q, ...) = %v, want %v", s, got, want)
		}
		ascii := true
		for i := 0; i < len(s); i++ {
			ascii = ascii && s[i] < 0x80
		}
		if got := plainASCII("plain", s); got != (ascii && !want) {
			t.Fatalf("plainASCII(%q) = %v", s, got)
		}
	})
}

// unixMillis must write a number that parses to unixSeconds' float64.
func FuzzUnixMillis(f *testing.F) {
	for _, ms := range []int64{0, 1, 5, 10, 50, 100, 999, 1000, 1001, 1010, 1100, 1764417600123, 1764417600100, 1764417600005, 1764417600000, -1, -1500, 1<<53 - 1, 1 << 53, 1<<62 + 7} {
		f.Add(ms)
	}
	f.Fuzz(func(t *testing.T, ms int64) {
		w := &textWriter{}
		w.unixMillis(ms)
		text := string(w.buf)
		if !strings.HasPrefix(text, "} ") || !strings.HasSuffix(text, "\n") {
			t.Fatalf("unixMillis(%d) wrote %q", ms, text)
		}
		got, err := strconv.ParseFloat(text[2:len(text)-1], 64)
		if want := float64(ms) / 1000; err != nil || got != want {
			t.Fatalf("unixMillis(%d) wrote %q, which parses to %v (%v), want %v", ms, text, got, err, want)
		}
	})
}

// A view built elsewhere than newAgentView (no textIdentity) is written
// the same, escaped.
func TestIdentityWithoutTextIdentity(t *testing.T) {
	built := newAgentView(`o"rg`, client.Agent{ID: `a"1`, Name: "n\\1", Queue: "q\n1", ClusterID: "c\"1"}, nil)
	bare := AgentView{Agent: built.Agent, Cluster: built.Cluster, Queues: built.Queues, QueueLabel: built.QueueLabel}
	write := func(a *AgentView) string {
		w := &textWriter{family: &agentTextFamilies[0], org: `o"rg`}
		w.identity(nameAgentBusy, a, 1)
		return string(w.buf)
	}
	got, want := write(&bare), write(&built)
	if got != want || !strings.Contains(want, `{buildkite_cluster="c\"1",id="a\"1",name="n\\1",organization="o\"rg",queue="q\n1"} 1`) {
		t.Fatalf("without textIdentity:\n%s\nwith it:\n%s", got, want)
	}
}
