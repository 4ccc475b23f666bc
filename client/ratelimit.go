package client

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// A 429 closes its budget for the reset seconds it names, kept within these
// bounds: at least a second so that a "0" does not let a storm through, at
// most an hour so that garbage cannot block forever.
const (
	defaultRateLimitReset = 60
	minRateLimitReset     = 1
	maxRateLimitReset     = 3600
)

// Header prefixes of the two REST budgets.
const (
	restPrefix     = "RateLimit-"
	restUserPrefix = "RateLimit-User-"
)

// budget is what the client knows of one rate-limit budget.
type budget struct {
	last         RateLimit
	known        bool
	blockedUntil time.Time // after a 429
}

// RateLimits returns both REST budgets for requests to org.
func (c *Client) RateLimits(org string) RateLimits {
	c.mu.Lock()
	defer c.mu.Unlock()
	rl := RateLimits{RestUser: c.user.last, HasRestUser: c.user.known}
	if b := c.orgs[org]; b != nil {
		rl.Rest, rl.HasRest = b.last, b.known
	}
	return rl
}

// RateLimit returns org's own budget (scope rest), as RateLimits(org).Rest,
// and false when no response for org carried its headers yet.
func (c *Client) RateLimit(org string) (RateLimit, bool) {
	rl := c.RateLimits(org)
	return rl.Rest, rl.HasRest
}

// BlockedUntil returns when the latest 429 window that stops requests to
// org ends (its own, or the token user's, which stops every organization),
// or the zero time when none is in force.
func (c *Client) BlockedUntil(org string) time.Time {
	until, _ := c.blocked(org)
	return until
}

// blocked returns the later of org's and the user's 429 windows still in
// force, and its scope.
func (c *Client) blocked(org string) (time.Time, string) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	until, scope := time.Time{}, ""
	if b := c.orgs[org]; b != nil && now.Before(b.blockedUntil) {
		until, scope = b.blockedUntil, ScopeRest
	}
	if now.Before(c.user.blockedUntil) && c.user.blockedUntil.After(until) {
		until, scope = c.user.blockedUntil, ScopeRestUser
	}
	return until, scope
}

// gate refuses a request for org while a 429 window is in force.
func (c *Client) gate(org string) error {
	if until, scope := c.blocked(org); !until.IsZero() {
		return &RateLimitError{Org: org, Scope: scope, ResetAt: until}
	}
	return nil
}

// orgBudgetLocked returns org's budget, creating it; c.mu must be held.
func (c *Client) orgBudgetLocked(org string) *budget {
	b := c.orgs[org]
	if b == nil {
		b = &budget{}
		c.orgs[org] = b
	}
	return b
}

// recordHeaders keeps both budgets from any answer's headers.
func (c *Client) recordHeaders(org string, _ int, h http.Header) {
	rest, okRest := parseRateLimit(h, restPrefix)
	user, okUser := parseRateLimit(h, restUserPrefix)
	if !okRest && !okUser {
		return
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if okRest {
		rest.ObservedAt = now
		c.orgBudgetLocked(org).observe(rest)
	}
	if okUser {
		user.ObservedAt = now
		c.user.observe(user)
	}
}

// observe keeps rl as the budget's latest state, except that within one
// window (same limit, same reset time give or take a second) the
// remaining budget only goes down: of concurrent requests, the answer that
// arrives last may have been counted first.
func (b *budget) observe(rl RateLimit) {
	if b.known && rl.Limit == b.last.Limit && rl.Remaining > b.last.Remaining {
		if d := rl.ResetAt().Sub(b.last.ResetAt()); d <= time.Second && d >= -time.Second {
			return
		}
	}
	b.last, b.known = rl, true
}

// rateLimited closes the budget a 429 names and returns the error for it.
func (c *Client) rateLimited(org string, e *APIError) *RateLimitError {
	scope := limitScope(e)
	prefix := restPrefix
	if scope == ScopeRestUser {
		prefix = restUserPrefix
	}
	reset := defaultRateLimitReset
	if n, ok := headerInt(e.Header, prefix+"Reset"); ok {
		reset = n
	} else if e.Reset >= 0 {
		reset = e.Reset
	}
	until := c.now().Add(time.Duration(min(max(reset, minRateLimitReset), maxRateLimitReset)) * time.Second)
	c.mu.Lock()
	defer c.mu.Unlock()
	b := &c.user
	if scope == ScopeRest {
		b = c.orgBudgetLocked(org)
	}
	if until.After(b.blockedUntil) {
		b.blockedUntil = until
	}
	return &RateLimitError{Org: org, Scope: scope, ResetAt: until, Sent: true, Message: e.Message}
}

// limitScope tells which budget a 429 is about: the body's scope when it
// names one, else rest_user when the user headers say that budget is
// spent, else rest.
func limitScope(e *APIError) string {
	switch e.LimitScope {
	case ScopeRest, ScopeRestUser:
		return e.LimitScope
	}
	if e.Header.Get(restUserPrefix+"Warning") != "" {
		return ScopeRestUser
	}
	if n, ok := headerInt(e.Header, restUserPrefix+"Remaining"); ok && n <= 0 {
		if m, ok := headerInt(e.Header, restPrefix+"Remaining"); !ok || m > 0 {
			return ScopeRestUser
		}
	}
	return ScopeRest
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
