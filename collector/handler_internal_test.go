package collector

import (
	"testing"
	"time"
)

// The header's timeout, capped at the configured one, less the offset.
func TestScrapeTimeout(t *testing.T) {
	const limit, offset = 30 * time.Second, 500 * time.Millisecond
	tests := []struct {
		header string
		want   time.Duration
	}{
		{"", limit},
		{"10", 9500 * time.Millisecond},
		{" 10 ", 9500 * time.Millisecond},
		{"0.4", 400 * time.Millisecond}, // the offset would leave nothing
		{"30", limit - offset},
		{"60", limit - offset}, // capped
		{"86400", limit - offset},
		{"1e300", limit - offset},
		{"+Inf", limit - offset},
		{"0", limit},
		{"-3", limit},
		{"NaN", limit},
		{"abc", limit},
	}
	for _, tt := range tests {
		if got := scrapeTimeout(tt.header, limit, offset); got != tt.want {
			t.Errorf("scrapeTimeout(%q) = %v, want %v", tt.header, got, tt.want)
		}
	}
}
