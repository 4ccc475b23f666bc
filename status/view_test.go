package status

import (
	"math"
	"strings"
	"testing"
	"time"
)

// humanDuration and humanSeconds take any value, however absurd, and
// answer a short text: no recursion without end, no panic.
func TestHumanDurationAnyValue(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0ms"},
		{850 * time.Millisecond, "850ms"},
		{12300 * time.Millisecond, "12s"},
		{-4*time.Minute - 5*time.Second, "-4m 05s"},
		{50 * time.Hour, "2d 02h"},
		{math.MaxInt64, "106751d 23h"},
		{math.MinInt64, "-106751d 23h"},
		{math.MinInt64 + 1, "-106751d 23h"},
	} {
		if got := humanDuration(tt.d); got != tt.want {
			t.Errorf("humanDuration(%d) = %q, want %q", int64(tt.d), got, tt.want)
		}
	}
	for _, tt := range []struct {
		s    float64
		want string
	}{
		{1.5, "1.5s"},
		{-1.5, "-1.5s"},
		{9.3e9, "106751d 23h"}, // beyond a Duration: the longest one
		{-1e300, "-106751d 23h"},
		{math.Inf(1), "106751d 23h"},
		{math.Inf(-1), "-106751d 23h"},
		{math.NaN(), "—"},
	} {
		if got := humanSeconds(tt.s); got != tt.want {
			t.Errorf("humanSeconds(%v) = %q, want %q", tt.s, got, tt.want)
		}
	}
	for _, d := range []time.Duration{math.MinInt64, -1, 1, math.MaxInt64} {
		v := view{Now: time.Unix(0, 0)}
		for _, s := range []string{v.Ago(v.Now.Add(d)), v.In(v.Now.Add(d))} {
			if s == "" || strings.Contains(s, "%!") {
				t.Errorf("ago/in of %d: %q", int64(d), s)
			}
		}
	}
}
