package status

import (
	_ "embed"
	"fmt"
	"html/template"
	"math"
	"sort"
	"strings"
	"time"
)

//go:embed template.html
var templateText string

var pageTemplate = template.Must(template.New("status").Funcs(template.FuncMap{
	"when":     when,
	"seconds":  humanSeconds,
	"pct":      percent,
	"barClass": barClass,
	"states":   states,
	"queues":   queueBreakdown,
}).Parse(templateText))

// view is the template's data: the page plus the clock the "ago" texts use.
type view struct {
	Page
	Now     time.Time
	Refresh int
}

// Ago says how long before the page was generated t was.
func (v view) Ago(t time.Time) string {
	d := v.Now.Sub(t)
	if d < 0 {
		return "in " + humanDuration(-d)
	}
	if d < time.Second {
		return "just now"
	}
	return humanDuration(d) + " ago"
}

// In says how long after the page was generated t is.
func (v view) In(t time.Time) string {
	d := t.Sub(v.Now)
	if d <= 0 {
		return humanDuration(-d) + " ago"
	}
	return "in " + humanDuration(d)
}

// when formats a time.Time or *time.Time; "—" for none.
func when(v any) string {
	var t time.Time
	switch x := v.(type) {
	case time.Time:
		t = x
	case *time.Time:
		if x != nil {
			t = *x
		}
	}
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// humanSeconds: as humanDuration; seconds beyond a time.Duration are the
// longest one, NaN is "—".
func humanSeconds(s float64) string {
	const limit = float64(math.MaxInt64)
	switch ns := s * float64(time.Second); {
	case math.IsNaN(ns):
		return "—"
	case ns >= limit:
		return humanDuration(math.MaxInt64)
	case ns <= -limit:
		return humanDuration(math.MinInt64)
	default:
		return humanDuration(time.Duration(ns))
	}
}

// humanDuration: "850ms", "12.3s", "4m 05s", "3h 07m", "2d 04h". Any
// Duration: the most negative one, which has no positive counterpart, is
// shown as one nanosecond shorter.
func humanDuration(d time.Duration) string {
	switch {
	case d == math.MinInt64:
		return "-" + humanDuration(math.MaxInt64)
	case d < 0:
		return "-" + humanDuration(-d)
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < 10*time.Second:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm %02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh %02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd %02dh", int(d.Hours())/24, int(d.Hours())%24)
}

// percent of a utilisation, 0 when unknown.
func percent(u *float64) int {
	if u == nil {
		return 0
	}
	return int(math.Round(*u * 100))
}

func barClass(u *float64) string {
	switch p := percent(u); {
	case u == nil:
		return "none"
	case p >= 90:
		return "high"
	case p >= 60:
		return "mid"
	}
	return "low"
}

// states lists the connection states other than connected, e.g.
// "stopping 1, disconnected 2"; "" when there are none.
func states(m map[string]int) string {
	var parts []string
	for k, v := range m {
		if k != "connected" && v > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, v))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func queueBreakdown(m map[string]int) string {
	parts := make([]string, 0, len(m))
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
