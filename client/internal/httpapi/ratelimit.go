package httpapi

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RateLimit is what one answer's headers said of one budget. It converts
// to client.RateLimit, which documents it.
type RateLimit struct {
	Limit, Remaining, Reset int
	ObservedAt              time.Time
}

// resetAt is when the window resets.
func (r RateLimit) resetAt() time.Time { return r.ObservedAt.Add(time.Duration(r.Reset) * time.Second) }

// A 429 closes its budget for the reset seconds it names, kept within these
// bounds: at least a second so that a "0" does not let a storm through, at
// most an hour so that garbage cannot block forever.
const (
	minRateLimitReset = 1
	maxRateLimitReset = 3600
)

// Header prefixes of a key's budget and of the token user's; the REST and
// GraphQL APIs send the same ones.
const (
	keyPrefix  = "RateLimit-"
	userPrefix = "RateLimit-User-"
)

// BudgetsConfig describes the two budgets of one API.
type BudgetsConfig struct {
	// KeyScope and UserScope name the key's (organization's) budget and
	// the token user's, as 429 bodies name them ("rest", "rest_user").
	KeyScope, UserScope string
	// DefaultReset is how many seconds a 429 that names no reset closes
	// its budget.
	DefaultReset int
	// Now is the clock; required.
	Now func() time.Time
	// Error builds the error for a request to key under the budget scope,
	// closed until then: e is the 429 when Buildkite answered one, nil
	// when the request was refused unsent. Required.
	Error func(key, scope string, until time.Time, e *APIError) error
}

// Budgets keeps the rate-limit budgets of one token on one API: one per
// key (organization) and the token user's, shared by every key, each with
// its latest headers and the window of its latest 429. Its methods fit a
// Requester's hooks: Gate as Config.Gate, Record as Config.Header. It is
// safe for concurrent use.
type Budgets struct {
	cfg  BudgetsConfig
	mu   sync.Mutex
	keys map[string]*budget
	user budget
}

// budget is what is known of one budget.
type budget struct {
	last         RateLimit
	known        bool
	blockedUntil time.Time // after a 429
}

// Limits are the two budgets that apply to requests for one key.
type Limits struct {
	Key, User       RateLimit
	HasKey, HasUser bool // false until an answer carried the budget's headers
}

// NewBudgets returns empty budgets.
func NewBudgets(cfg BudgetsConfig) *Budgets {
	return &Budgets{cfg: cfg, keys: map[string]*budget{}}
}

// RateLimits returns both budgets for requests to key.
func (b *Budgets) RateLimits(key string) Limits {
	b.mu.Lock()
	defer b.mu.Unlock()
	l := Limits{User: b.user.last, HasUser: b.user.known}
	if k := b.keys[key]; k != nil {
		l.Key, l.HasKey = k.last, k.known
	}
	return l
}

// BlockedUntil returns the later of key's and the user's 429 windows still
// in force, and its scope; the zero time when none is.
func (b *Budgets) BlockedUntil(key string) (time.Time, string) {
	now := b.cfg.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	until, scope := time.Time{}, ""
	if k := b.keys[key]; k != nil && now.Before(k.blockedUntil) {
		until, scope = k.blockedUntil, b.cfg.KeyScope
	}
	if now.Before(b.user.blockedUntil) && b.user.blockedUntil.After(until) {
		until, scope = b.user.blockedUntil, b.cfg.UserScope
	}
	return until, scope
}

// Gate refuses a request for key while a 429 window is in force.
func (b *Budgets) Gate(key string) error {
	if until, scope := b.BlockedUntil(key); !until.IsZero() {
		return b.cfg.Error(key, scope, until, nil)
	}
	return nil
}

// Record keeps both budgets from any answer's headers.
func (b *Budgets) Record(key string, _ int, h http.Header) {
	own, okOwn := parseRateLimit(h, keyPrefix)
	user, okUser := parseRateLimit(h, userPrefix)
	if !okOwn && !okUser {
		return
	}
	now := b.cfg.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if okOwn {
		own.ObservedAt = now
		b.keyLocked(key).observe(own)
	}
	if okUser {
		user.ObservedAt = now
		b.user.observe(user)
	}
}

// keyLocked returns key's budget, creating it; b.mu must be held.
func (b *Budgets) keyLocked(key string) *budget {
	k := b.keys[key]
	if k == nil {
		k = &budget{}
		b.keys[key] = k
	}
	return k
}

// observe keeps rl as the budget's latest state, except that within one
// window (same limit, same reset time give or take a second) the
// remaining budget only goes down: of concurrent requests, the answer that
// arrives last may have been counted first.
func (k *budget) observe(rl RateLimit) {
	if k.known && rl.Limit == k.last.Limit && rl.Remaining > k.last.Remaining {
		if d := rl.resetAt().Sub(k.last.resetAt()); d <= time.Second && d >= -time.Second {
			return
		}
	}
	k.last, k.known = rl, true
}

// RateLimited closes the budget the 429 e names for the reset it names
// and returns the error for it.
func (b *Budgets) RateLimited(key string, e *APIError) error {
	scope, prefix := b.scope(e), keyPrefix
	if scope == b.cfg.UserScope {
		prefix = userPrefix
	}
	until := b.cfg.Now().Add(time.Duration(resetSeconds(e, prefix, b.cfg.DefaultReset)) * time.Second)
	b.mu.Lock()
	defer b.mu.Unlock()
	k := &b.user
	if scope == b.cfg.KeyScope {
		k = b.keyLocked(key)
	}
	if until.After(k.blockedUntil) {
		k.blockedUntil = until
	}
	return b.cfg.Error(key, scope, until, e)
}

// scope tells which budget a 429 is about: the body's scope when it names
// one of the two, else the user's when the user headers say that budget
// is spent, else the key's.
func (b *Budgets) scope(e *APIError) string {
	switch e.LimitScope {
	case b.cfg.KeyScope, b.cfg.UserScope:
		return e.LimitScope
	}
	if e.Header.Get(userPrefix+"Warning") != "" {
		return b.cfg.UserScope
	}
	if n, ok := headerInt(e.Header, userPrefix+"Remaining"); ok && n <= 0 {
		if m, ok := headerInt(e.Header, keyPrefix+"Remaining"); !ok || m > 0 {
			return b.cfg.UserScope
		}
	}
	return b.cfg.KeyScope
}

// resetSeconds is how long a 429 closes its budget: the budget's Reset
// header (a number of seconds, rounded up), else the body's reset, else
// def; at least minRateLimitReset, at most maxRateLimitReset.
func resetSeconds(e *APIError, prefix string, def int) int {
	reset := def
	if f, err := strconv.ParseFloat(strings.TrimSpace(e.Header.Get(prefix+"Reset")), 64); err == nil && !math.IsNaN(f) {
		reset = int(math.Ceil(min(max(f, -1), maxRateLimitReset)))
	} else if e.Reset >= 0 {
		reset = e.Reset
	}
	return min(max(reset, minRateLimitReset), maxRateLimitReset)
}

// parseRateLimit reads the Limit, Remaining and Reset headers under prefix;
// false when none of them is present and numeric.
func parseRateLimit(h http.Header, prefix string) (RateLimit, bool) {
	var rl RateLimit
	found := false
	for _, f := range [...]struct {
		name string
		dst  *int
	}{{"Limit", &rl.Limit}, {"Remaining", &rl.Remaining}, {"Reset", &rl.Reset}} {
		if n, ok := headerInt(h, prefix+f.name); ok {
			*f.dst, found = n, true
		}
	}
	return rl, found
}

func headerInt(h http.Header, name string) (int, bool) {
	v := h.Get(name)
	if v == "" {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	return n, err == nil
}
