package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// window is the error the test budgets build.
type window struct {
	key, scope string
	until      time.Time
	sent       bool
}

func (w *window) Error() string { return fmt.Sprintf("%+v", *w) }

func newTestBudgets(now *time.Time) *Budgets {
	return NewBudgets(BudgetsConfig{
		KeyScope: "rest", UserScope: "rest_user", DefaultReset: 60,
		Now: func() time.Time { return *now },
		Error: func(key, scope string, until time.Time, e *APIError) error {
			return &window{key: key, scope: scope, until: until, sent: e != nil}
		},
	})
}

func headers(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func TestBudgetsRateLimited(t *testing.T) {
	for _, tc := range []struct {
		name      string
		body      string // the 429 body's scope
		reset     int    // the 429 body's reset, -1 for none
		h         http.Header
		wantScope string
		wantReset time.Duration
	}{
		{"body scope user", "rest_user", -1, headers("RateLimit-User-Reset", "9", "RateLimit-Reset", "20"), "rest_user", 9 * time.Second},
		{"body scope key", "rest", -1, headers("RateLimit-User-Remaining", "0", "RateLimit-Reset", "20"), "rest", 20 * time.Second},
		{"unknown body scope", "graphql", -1, headers("RateLimit-Reset", "20"), "rest", 20 * time.Second},
		{"user warning", "", -1, headers("RateLimit-User-Warning", "x", "RateLimit-User-Reset", "9"), "rest_user", 9 * time.Second},
		{"user spent", "", -1, headers("RateLimit-User-Remaining", "0", "RateLimit-Remaining", "5"), "rest_user", time.Minute},
		{"both spent", "", -1, headers("RateLimit-User-Remaining", "-1", "RateLimit-Remaining", "0"), "rest", time.Minute},
		{"body reset", "", 17, headers("RateLimit-Reset", "soon"), "rest", 17 * time.Second},
		{"header before body", "", 17, headers("RateLimit-Reset", "42"), "rest", 42 * time.Second},
		{"fractional header", "", -1, headers("RateLimit-Reset", "1.2"), "rest", 2 * time.Second},
		{"zero", "", -1, headers("RateLimit-Reset", "0"), "rest", time.Second},
		{"negative", "", -1, headers("RateLimit-Reset", "-50"), "rest", time.Second},
		{"huge", "", -1, headers("RateLimit-Reset", "1e300"), "rest", time.Hour},
		{"NaN", "", -1, headers("RateLimit-Reset", "NaN"), "rest", time.Minute},
		{"huge body", "", 1 << 30, nil, "rest", time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := epoch
			b := newTestBudgets(&now)
			err := b.RateLimited("acme", &APIError{StatusCode: 429, LimitScope: tc.body, Reset: tc.reset, Header: tc.h})
			want := window{key: "acme", scope: tc.wantScope, until: epoch.Add(tc.wantReset), sent: true}
			var got *window
			if !errors.As(err, &got) || *got != want {
				t.Fatalf("RateLimited = %v, want %+v", err, want)
			}
			if until, scope := b.BlockedUntil("acme"); !until.Equal(want.until) || scope != want.scope {
				t.Errorf("BlockedUntil = %v, %q", until, scope)
			}
			want.sent = false
			if err := b.Gate("acme"); !errors.As(err, &got) || *got != want {
				t.Errorf("Gate = %v, want %+v", err, want)
			}
			// A user window stops every key, a key's only that key.
			if err := b.Gate("other"); (err != nil) != (tc.wantScope == "rest_user") {
				t.Errorf("Gate(other) = %v", err)
			}
			now = want.until
			if err := b.Gate("acme"); err != nil {
				t.Errorf("Gate after the window = %v", err)
			}
		})
	}
}

// TestBudgetsWindowsKeepTheLater: a shorter 429 does not shorten a
// window, and the later of the key's and the user's wins.
func TestBudgetsWindowsKeepTheLater(t *testing.T) {
	now := epoch
	b := newTestBudgets(&now)
	_ = b.RateLimited("acme", &APIError{LimitScope: "rest", Reset: 100})
	_ = b.RateLimited("acme", &APIError{LimitScope: "rest", Reset: 10})
	_ = b.RateLimited("acme", &APIError{LimitScope: "rest_user", Reset: 50})
	if until, scope := b.BlockedUntil("acme"); !until.Equal(epoch.Add(100*time.Second)) || scope != "rest" {
		t.Errorf("BlockedUntil = %v, %q; want the key's 100 s", until, scope)
	}
	now = epoch.Add(60 * time.Second)
	_ = b.RateLimited("acme", &APIError{LimitScope: "rest_user", Reset: 300})
	if until, scope := b.BlockedUntil("acme"); !until.Equal(now.Add(300*time.Second)) || scope != "rest_user" {
		t.Errorf("BlockedUntil = %v, %q; want the user's", until, scope)
	}
	if until, _ := b.BlockedUntil("never-seen"); until.IsZero() {
		t.Error("the user's window does not stop an unseen key")
	}
}

func TestBudgetsRecord(t *testing.T) {
	type step struct {
		advance time.Duration
		key     string
		h       http.Header
	}
	at := func(d time.Duration, limit, remaining, reset int) RateLimit {
		return RateLimit{Limit: limit, Remaining: remaining, Reset: reset, ObservedAt: epoch.Add(d)}
	}
	for _, tc := range []struct {
		name  string
		steps []step
		want  Limits // for key "acme"
	}{
		{"none", []step{{0, "acme", headers("Other", "1")}}, Limits{}},
		{"both", []step{{0, "acme", headers("RateLimit-Limit", "200", "RateLimit-Remaining", "150", "RateLimit-Reset", "30",
			"RateLimit-User-Limit", "50", "RateLimit-User-Remaining", "-2", "RateLimit-User-Reset", " 9 ")}},
			Limits{Key: at(0, 200, 150, 30), User: at(0, 50, -2, 9), HasKey: true, HasUser: true}},
		{"user shared", []step{{0, "other", headers("RateLimit-User-Limit", "50", "RateLimit-Remaining", "1")}},
			Limits{User: at(0, 50, 0, 0), HasUser: true}},
		{"out of order in one window", []step{
			{0, "acme", headers("RateLimit-Limit", "200", "RateLimit-Remaining", "150", "RateLimit-Reset", "30")},
			{time.Second, "acme", headers("RateLimit-Limit", "200", "RateLimit-Remaining", "151", "RateLimit-Reset", "30")}},
			Limits{Key: at(0, 200, 150, 30), HasKey: true}},
		{"going down", []step{
			{0, "acme", headers("RateLimit-Limit", "200", "RateLimit-Remaining", "150", "RateLimit-Reset", "30")},
			{time.Second, "acme", headers("RateLimit-Limit", "200", "RateLimit-Remaining", "149", "RateLimit-Reset", "29")}},
			Limits{Key: at(time.Second, 200, 149, 29), HasKey: true}},
		{"new window", []step{
			{0, "acme", headers("RateLimit-Limit", "200", "RateLimit-Remaining", "0", "RateLimit-Reset", "2")},
			{3 * time.Second, "acme", headers("RateLimit-Limit", "200", "RateLimit-Remaining", "199", "RateLimit-Reset", "60")}},
			Limits{Key: at(3*time.Second, 200, 199, 60), HasKey: true}},
		{"new limit", []step{
			{0, "acme", headers("RateLimit-Limit", "200", "RateLimit-Remaining", "10", "RateLimit-Reset", "30")},
			{0, "acme", headers("RateLimit-Limit", "400", "RateLimit-Remaining", "210", "RateLimit-Reset", "30")}},
			Limits{Key: at(0, 400, 210, 30), HasKey: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := epoch
			b := newTestBudgets(&now)
			for _, s := range tc.steps {
				now = epoch.Add(s.advance)
				b.Record(s.key, http.StatusOK, s.h)
			}
			if got := b.RateLimits("acme"); got != tc.want {
				t.Errorf("RateLimits = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// FuzzBudgetsRateLimited: any 429 closes a window of one to 3600 seconds
// under one of the two scopes.
func FuzzBudgetsRateLimited(f *testing.F) {
	f.Add("rest_user", 5, "0", "3", "-1", "1.5")
	f.Add("", -1, "", "", "NaN", "Inf")
	f.Fuzz(func(t *testing.T, scope string, reset int, userRemaining, keyRemaining, userReset, keyReset string) {
		now := epoch
		b := newTestBudgets(&now)
		h := headers("RateLimit-User-Remaining", userRemaining, "RateLimit-Remaining", keyRemaining,
			"RateLimit-User-Reset", userReset, "RateLimit-Reset", keyReset)
		var w *window
		if err := b.RateLimited("k", &APIError{LimitScope: scope, Reset: max(reset, -1), Header: h}); !errors.As(err, &w) {
			t.Fatalf("RateLimited = %v", err)
		}
		if d := w.until.Sub(epoch); d < time.Second || d > time.Hour || (w.scope != "rest" && w.scope != "rest_user") {
			t.Errorf("window %+v", *w)
		}
	})
}
