package client

import (
	"time"

	"github.com/buildkite-exporter/buildkite_exporter/client/internal/httpapi"
)

// A 429 that names no reset closes its budget for a minute, Buildkite's
// REST window.
const defaultRateLimitReset = 60

// newBudgets returns the REST budgets (scopes rest and rest_user).
func newBudgets(now func() time.Time) *httpapi.Budgets {
	return httpapi.NewBudgets(httpapi.BudgetsConfig{
		KeyScope: ScopeRest, UserScope: ScopeRestUser, DefaultReset: defaultRateLimitReset, Now: now,
		Error: func(org, scope string, until time.Time, e *APIError) error {
			rle := &RateLimitError{Org: org, Scope: scope, ResetAt: until}
			if e != nil {
				rle.Sent, rle.Message = true, e.Message
			}
			return rle
		},
	})
}

// RateLimits returns both REST budgets for requests to org.
func (c *Client) RateLimits(org string) RateLimits {
	l := c.budgets.RateLimits(org)
	return RateLimits{Rest: RateLimit(l.Key), RestUser: RateLimit(l.User), HasRest: l.HasKey, HasRestUser: l.HasUser}
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
	until, _ := c.budgets.BlockedUntil(org)
	return until
}
