package collector

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/go-kit/log/level"

	"github.com/buildkite-exporter/buildkite_exporter/client"
)

// BudgetAPI is what pacing needs of the client: both REST budgets of an
// organization and the end of a 429 window in force. *client.Client
// implements it. An AgentAPI without it is paced on its RateLimit alone
// (scope rest) and never seen blocked.
type BudgetAPI interface {
	RateLimits(org string) client.RateLimits
	BlockedUntil(org string) time.Time
}

// restOnly adapts an AgentAPI without BudgetAPI.
type restOnly struct{ api AgentAPI }

func (r restOnly) RateLimits(org string) client.RateLimits {
	rl, ok := r.api.RateLimit(org)
	return client.RateLimits{Rest: rl, HasRest: ok}
}

func (restOnly) BlockedUntil(string) time.Time { return time.Time{} }

// errBudget is the error of a result served without a collection when no
// earlier result exists: the budget did not cover a listing.
var errBudget = fmt.Errorf("%w: the budget left does not cover a listing", client.ErrRateLimited)

// hold is why a listing is not started now: a 429 window in force
// (blocked), or a known budget below the requests the listing needs.
type hold struct {
	blocked bool
	scope   string // of the short budget; "" for a 429 window of unknown scope
	needed  int    // requests the listing needs
	left    int    // budget left
	reset   time.Duration
}

// key tells holds apart for logging once per change.
func (h *hold) key() string {
	if h == nil {
		return ""
	}
	if h.blocked {
		return "blocked" // the client's window does not say its scope
	}
	return "paced " + h.scope
}

// budgetHold returns why org's listing must wait now, or nil. needed is
// the previous listing's page count (1 when unknown). Pacing looks only at
// budgets whose window has not reset yet.
func (e *Exporter) budgetHold(org string, needed int) *hold {
	now := e.now()
	if until := e.budgets.BlockedUntil(org); until.After(now) {
		return &hold{blocked: true, reset: until.Sub(now)}
	}
	rl := e.budgets.RateLimits(org)
	var worst *hold
	for _, b := range []struct {
		scope string
		rl    client.RateLimit
		known bool
	}{{client.ScopeRest, rl.Rest, rl.HasRest}, {client.ScopeRestUser, rl.RestUser, rl.HasRestUser}} {
		resetAt := b.rl.ResetAt()
		if !b.known || !now.Before(resetAt) || b.rl.Remaining >= needed {
			continue
		}
		if worst == nil || resetAt.Sub(now) > worst.reset {
			worst = &hold{scope: b.scope, needed: needed, left: b.rl.Remaining, reset: resetAt.Sub(now)}
		}
	}
	return worst
}

// held serves org's latest result, with the current budgets, when its
// listing must wait (pacing, or a 429 window); nil when it may start.
// Nothing is sent to the API.
func (e *Exporter) held(m *orgMemory) *Snapshot {
	h := e.budgetHold(m.org, m.pagesNeeded())
	if h == nil {
		return nil
	}
	e.logHold(m, h)
	if s := m.latestResult(); s != nil {
		return s // Collection sets the current budgets
	}
	now := e.now()
	s := &Snapshot{Organization: m.org, Start: now, End: now, Err: errBudget}
	e.setRateLimits(s)
	m.clusterReads.fill(s)
	s.FieldErrors = m.fieldErrorCounts()
	m.past(s, m.knownQueues(now, e.cfg.QueueRetention, e.cfg.Queues), e.cfg.AgentRetention)
	return s
}

// setRateLimits sets both REST budgets as the client knows them now.
func (e *Exporter) setRateLimits(s *Snapshot) {
	rl := e.budgets.RateLimits(s.Organization)
	s.RateLimit, s.HasRateLimit = rl.Rest, rl.HasRest
	s.UserRateLimit, s.HasUserRateLimit = rl.RestUser, rl.HasRestUser
}

// logHold logs, once per change, why listings of org wait.
func (e *Exporter) logHold(m *orgMemory, h *hold) {
	if _, changed := m.setHold(h.key()); !changed {
		return
	}
	if h.blocked {
		level.Warn(e.logger).Log("msg", "rate limited (HTTP 429): no request until the reset; serving the latest complete result",
			"organization", m.org, "scope", h.scope, "reset_seconds", seconds(h.reset), "served_collection", m.servedAt())
		return
	}
	level.Warn(e.logger).Log("msg", "rate-limit budget too low for a listing; serving the latest complete result until the window resets",
		"organization", m.org, "scope", h.scope, "requests_needed", h.needed, "budget_left", h.left,
		"reset_seconds", seconds(h.reset), "served_collection", m.servedAt())
}

// logResume logs, once, that listings of org run again after a hold.
func (e *Exporter) logResume(m *orgMemory) {
	if previous, changed := m.setHold(""); changed {
		level.Info(e.logger).Log("msg", "the rate-limit budget covers a listing again; collections resume",
			"organization", m.org, "was", previous)
	}
}

// seconds rounds d up to whole seconds, as RateLimit-Reset counts.
func seconds(d time.Duration) int { return int(math.Ceil(d.Seconds())) }

// rateLimited returns the 429 that ended a listing: one Buildkite sent,
// or the client refusing to send inside a 429 window; nil for any other
// outcome.
func rateLimited(err error) *client.RateLimitError {
	var rle *client.RateLimitError
	if errors.As(err, &rle) {
		return rle
	}
	return nil
}

// lookupBudget is how many departure lookups this collection may make:
// at most Config.DepartureLookups, keeping a tenth of each REST budget
// whose window is open (at least 5 requests) in reserve for listings.
func (e *Exporter) lookupBudget(org string) int {
	budget := e.cfg.DepartureLookups
	now := e.now()
	rl := e.budgets.RateLimits(org)
	for _, b := range []struct {
		rl    client.RateLimit
		known bool
	}{{rl.Rest, rl.HasRest}, {rl.RestUser, rl.HasRestUser}} {
		if b.known && b.rl.Limit > 0 && now.Before(b.rl.ResetAt()) {
			reserve := max(b.rl.Limit/10, 5)
			budget = min(budget, max(b.rl.Remaining-reserve, 0))
		}
	}
	return budget
}
