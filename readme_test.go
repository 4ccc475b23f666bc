package main

import (
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/buildkite-exporter/buildkite_exporter/collector"
)

var readmeRow = regexp.MustCompile("^\\| `([^`]+)` \\|([^|]*)\\|([^|]*)\\|")

// readmeRows returns the first three cells of README table rows whose first
// cell is code, keyed by that code.
func readmeRows(t *testing.T) map[string][2]string {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string][2]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if m := readmeRow.FindStringSubmatch(line); m != nil {
			rows[m[1]] = [2]string{strings.TrimSpace(m[2]), strings.TrimSpace(m[3])}
		}
	}
	return rows
}

// TestREADMEFlags keeps the README's flag table true: every flag documented
// with its env var and default, and no documented flag missing.
func TestREADMEFlags(t *testing.T) {
	rows := readmeRows(t)
	documented := map[string]bool{}
	for cell := range rows {
		if strings.HasPrefix(cell, "--") {
			documented[cell] = true
		}
	}
	var cfg config
	app := newApp(&cfg, io.Discard)
	for _, f := range app.Model().Flags {
		if f.Hidden || f.Name == "help" || f.Name == "version" {
			continue // kingpin's own
		}
		cell := "--" + f.Name
		if f.IsBoolFlag() && f.String() != "" && len(f.Default) > 0 && f.Default[0] == "true" {
			cell = "--[no-]" + f.Name
		}
		row, ok := rows[cell]
		if !ok {
			t.Errorf("flag %s is not in the README's flag table", cell)
			continue
		}
		delete(documented, cell)
		if f.Envar != "" && !strings.Contains(row[0], "`"+f.Envar+"`") {
			t.Errorf("flag %s: README env %q, code %q", cell, row[0], f.Envar)
		}
		if f.Envar == "" && row[0] != "" {
			t.Errorf("flag %s: README names env %q, the code none", cell, row[0])
		}
		want := "none"
		switch {
		case len(f.Default) > 0 && f.IsBoolFlag():
			want = map[string]string{"true": "on", "false": "off"}[f.Default[0]]
		case len(f.Default) > 0 && f.Default[0] != "":
			want = "`" + f.Default[0] + "`"
		case f.Name == "buildkite.organization":
			want = "required"
		case f.IsBoolFlag():
			want = "off"
		}
		if row[1] != want {
			t.Errorf("flag %s: README default %q, code %q", cell, row[1], want)
		}
	}
	for cell := range documented {
		t.Errorf("README documents %s, which the binary does not have", cell)
	}
}

// TestREADMEMetrics keeps the README's metric tables equal to what the
// collector can emit.
func TestREADMEMetrics(t *testing.T) {
	var documented []string
	for cell := range readmeRows(t) {
		if strings.HasPrefix(cell, "buildkite_") {
			documented = append(documented, cell)
		}
	}
	sort.Strings(documented)
	code := collector.MetricNames()
	sort.Strings(code)
	if strings.Join(documented, "\n") != strings.Join(code, "\n") {
		t.Errorf("README metrics and collector.MetricNames differ:\nREADME: %v\ncode:   %v", documented, code)
	}
}
