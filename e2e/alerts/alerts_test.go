// Package alerts checks the Prometheus recording and alerting rules in the
// exporter's alerts/ directory (buildkite.rules.yml, buildkite.alerts.yml,
// RUNBOOK.md, tests/*.test.yml). It lives in the e2e module because it
// needs Prometheus' PromQL parser, which the exporter itself does not.
//
// The tests run `promtool check rules` and `promtool test rules` (promtool
// from $PROMTOOL, else PATH) and fail when it is missing: `make unit-test`
// installs a pinned promtool into .tools/. They also check the rules'
// metadata, runbook anchors, test coverage and metric names.
package alerts

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"

	"github.com/buildkite-exporter/buildkite_exporter/collector"
)

// rulesDir is the directory under test, relative to this package.
const rulesDir = "../../alerts"

// TestMain runs the tests in rulesDir, so that file names in the tests and in
// their messages are those of alerts/ (promtool resolves a test file's
// rule_files relative to the test file).
func TestMain(m *testing.M) {
	if err := os.Chdir(rulesDir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

const runbookBase = "https://github.com/buildkite-exporter/buildkite_exporter/blob/main/alerts/RUNBOOK.md#"

// The rule files this directory ships, and the promtool unit tests.
var (
	recordingRuleFiles = []string{"buildkite.rules.yml"}
	alertingRuleFiles  = []string{"buildkite.alerts.yml"}
)

type ruleFile struct {
	Groups []ruleGroup `yaml:"groups"`
}

type ruleGroup struct {
	Name     string `yaml:"name"`
	Interval string `yaml:"interval"`
	Rules    []rule `yaml:"rules"`
}

type rule struct {
	Record        string            `yaml:"record"`
	Alert         string            `yaml:"alert"`
	Expr          string            `yaml:"expr"`
	For           string            `yaml:"for"`
	KeepFiringFor string            `yaml:"keep_firing_for"`
	Labels        map[string]string `yaml:"labels"`
	Annotations   map[string]string `yaml:"annotations"`
}

type testFile struct {
	RuleFiles          []string    `yaml:"rule_files"`
	EvaluationInterval string      `yaml:"evaluation_interval"`
	GroupEvalOrder     []string    `yaml:"group_eval_order"`
	Tests              []testGroup `yaml:"tests"`
}

type testGroup struct {
	Name           string          `yaml:"name"`
	Interval       string          `yaml:"interval"`
	InputSeries    []inputSeries   `yaml:"input_series"`
	AlertRuleTests []alertRuleTest `yaml:"alert_rule_test"`
	PromQLTests    []promqlTest    `yaml:"promql_expr_test"`
}

type inputSeries struct {
	Series string `yaml:"series"`
	Values string `yaml:"values"`
}

type alertRuleTest struct {
	EvalTime  string     `yaml:"eval_time"`
	Alertname string     `yaml:"alertname"`
	ExpAlerts []expAlert `yaml:"exp_alerts"`
}

type expAlert struct {
	ExpLabels      map[string]string `yaml:"exp_labels"`
	ExpAnnotations map[string]string `yaml:"exp_annotations"`
}

type promqlTest struct {
	Expr       string `yaml:"expr"`
	EvalTime   string `yaml:"eval_time"`
	ExpSamples []struct {
		Labels    string  `yaml:"labels"`
		Value     float64 `yaml:"value"`
		Histogram string  `yaml:"histogram"`
	} `yaml:"exp_samples"`
}

// decodeStrict decodes YAML, rejecting keys the struct does not know (a
// misspelt `exp_alert:` would otherwise make a test vacuous).
func decodeStrict(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

type namedRule struct {
	file, group string
	rule
}

func loadRules(t *testing.T, files []string) []namedRule {
	t.Helper()
	var out []namedRule
	for _, f := range files {
		var rf ruleFile
		decodeStrict(t, f, &rf)
		if len(rf.Groups) == 0 {
			t.Fatalf("%s: no groups", f)
		}
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				out = append(out, namedRule{f, g.Name, r})
			}
		}
	}
	return out
}

func alertRules(t *testing.T) []namedRule {
	t.Helper()
	var out []namedRule
	for _, r := range loadRules(t, alertingRuleFiles) {
		if r.Alert == "" {
			t.Errorf("%s: group %s: recording rule %q belongs in %v", r.file, r.group, r.Record, recordingRuleFiles)
			continue
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		t.Fatal("no alerting rules found")
	}
	return out
}

func recordingRules(t *testing.T) []namedRule {
	t.Helper()
	rules := loadRules(t, recordingRuleFiles)
	for _, r := range rules {
		if r.Record == "" {
			t.Errorf("%s: alert %q belongs in %v", r.file, r.Alert, alertingRuleFiles)
		}
	}
	return rules
}

func testFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("tests", "*.test.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no promtool unit tests in tests/*.test.yml")
	}
	return files
}

// promtool returns the promtool to run: $PROMTOOL, else the one on PATH.
// It fails the test (never skips) when there is none.
func promtool(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PROMTOOL"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("PROMTOOL=%s: %v", p, err)
		}
		return p
	}
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: set PROMTOOL or put promtool on PATH (make unit-test installs a pinned one into .tools/)")
	}
	return p
}

func runPromtool(t *testing.T, args ...string) {
	t.Helper()
	bin := promtool(t)
	cmd := exec.Command(bin, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, out)
	}
	t.Logf("%s %s:\n%s", bin, strings.Join(args, " "), out)
}

func TestPromtoolCheckRules(t *testing.T) {
	runPromtool(t, append([]string{"check", "rules"}, slices.Concat(recordingRuleFiles, alertingRuleFiles)...)...)
}

func TestPromtoolTestRules(t *testing.T) {
	runPromtool(t, append([]string{"test", "rules"}, testFiles(t)...)...)
}

// promtool evaluates the rule groups of a test file in a random order, unless
// group_eval_order lists them (a group left out sorts as the first one, so
// each must be listed). Every test file evaluates the recording rules first,
// so alerts at the same timestamp see fresh values, then the alert groups in
// file order.
func TestGroupEvalOrder(t *testing.T) {
	var want []string
	for _, f := range slices.Concat(recordingRuleFiles, alertingRuleFiles) {
		var rf ruleFile
		decodeStrict(t, f, &rf)
		for _, g := range rf.Groups {
			want = append(want, g.Name)
		}
	}
	for _, f := range testFiles(t) {
		var tf testFile
		decodeStrict(t, f, &tf)
		if !slices.Equal(tf.GroupEvalOrder, want) {
			t.Errorf("%s: group_eval_order = %v, want %v", f, tf.GroupEvalOrder, want)
		}
	}
}

var severities = []string{"critical", "warning", "info"}

func TestAlertMetadata(t *testing.T) {
	runbook, err := os.ReadFile("RUNBOOK.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := markdownAnchors(string(runbook))
	seen := map[string]bool{}
	for _, r := range alertRules(t) {
		name := r.Alert
		if seen[name] {
			t.Errorf("alert %s defined twice", name)
		}
		seen[name] = true
		if !strings.HasPrefix(name, "Buildkite") {
			t.Errorf("alert %s: name must start with Buildkite", name)
		}
		if !slices.Contains(severities, r.Labels["severity"]) {
			t.Errorf("alert %s: labels.severity = %q, want one of %v", name, r.Labels["severity"], severities)
		}
		for _, key := range []string{"summary", "description", "runbook_url"} {
			if strings.TrimSpace(r.Annotations[key]) == "" {
				t.Errorf("alert %s: annotations.%s is missing", name, key)
			}
		}
		for key := range r.Annotations {
			if !slices.Contains([]string{"summary", "description", "runbook_url"}, key) {
				t.Errorf("alert %s: unexpected annotation %q", name, key)
			}
		}
		summary := r.Annotations["summary"]
		if strings.Contains(summary, "\n") || !strings.HasSuffix(summary, ".") || strings.Contains(strings.TrimSuffix(summary, "."), ". ") {
			t.Errorf("alert %s: summary %q must be one sentence on one line", name, summary)
		}
		desc := r.Annotations["description"]
		if !strings.Contains(desc, "{{") {
			t.Errorf("alert %s: description is not templated", name)
		}
		var need []string
		switch {
		case name == "BuildkiteExporterDown":
			need = []string{"$labels.instance", "$labels.job"}
		case strings.HasPrefix(name, "BuildkiteAPI"):
			need = []string{"$labels.organization", "$labels.instance"}
		case strings.HasPrefix(name, "BuildkiteQueue"):
			need = []string{"$labels.organization", "$labels.queue"}
		default: // per-agent alerts
			need = []string{"$labels.organization", "$labels.queue", "$labels.name", "$labels.hostname"}
		}
		for _, s := range need {
			if !strings.Contains(desc, s) {
				t.Errorf("alert %s: description does not name %s", name, s)
			}
		}
		wantURL := runbookBase + strings.ToLower(name)
		if got := r.Annotations["runbook_url"]; got != wantURL {
			t.Errorf("alert %s: runbook_url = %q, want %q", name, got, wantURL)
		}
		if !anchors[strings.ToLower(name)] {
			t.Errorf("alert %s: RUNBOOK.md has no section with anchor #%s", name, strings.ToLower(name))
		}
		if !strings.Contains(string(runbook), "| "+name+" |") {
			t.Errorf("alert %s: missing from RUNBOOK.md's threshold table", name)
		}
	}
}

// markdownAnchors returns the GitHub-style anchors of a document's headings.
func markdownAnchors(doc string) map[string]bool {
	anchors := map[string]bool{}
	strip := regexp.MustCompile(`[^\p{L}\p{N}\- _]`)
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(line, "#"))
		a := strings.ReplaceAll(strip.ReplaceAllString(strings.ToLower(h), ""), " ", "-")
		anchors[a] = true
	}
	return anchors
}

// Every alert must be shown firing (with exact labels and annotations), shown
// quiet, and shown quiet during an API outage (a test group whose name
// contains "outage").
func TestEveryAlertIsTested(t *testing.T) {
	rules := alertRules(t)
	byName := map[string]namedRule{}
	for _, r := range rules {
		byName[r.Alert] = r
	}
	fires := map[string]bool{}
	quiet := map[string]bool{}
	quietInOutage := map[string]bool{}
	for _, f := range testFiles(t) {
		var tf testFile
		decodeStrict(t, f, &tf)
		for _, want := range slices.Concat(recordingRuleFiles, alertingRuleFiles) {
			if !slices.Contains(tf.RuleFiles, "../"+want) {
				t.Errorf("%s: rule_files does not load ../%s", f, want)
			}
		}
		for _, g := range tf.Tests {
			if g.Name == "" {
				t.Errorf("%s: a test group has no name", f)
			}
			for _, at := range g.AlertRuleTests {
				r, ok := byName[at.Alertname]
				if !ok {
					t.Errorf("%s: %s: tests unknown alert %q", f, g.Name, at.Alertname)
					continue
				}
				if len(at.ExpAlerts) == 0 {
					quiet[at.Alertname] = true
					if strings.Contains(strings.ToLower(g.Name), "outage") {
						quietInOutage[at.Alertname] = true
					}
					continue
				}
				fires[at.Alertname] = true
				for _, ea := range at.ExpAlerts {
					if ea.ExpLabels["severity"] != r.Labels["severity"] {
						t.Errorf("%s: %s: %s at %s: exp_labels.severity = %q, want %q", f, g.Name, at.Alertname, at.EvalTime, ea.ExpLabels["severity"], r.Labels["severity"])
					}
					for key := range r.Annotations {
						if ea.ExpAnnotations[key] == "" {
							t.Errorf("%s: %s: %s at %s: exp_annotations.%s not checked", f, g.Name, at.Alertname, at.EvalTime, key)
						}
					}
				}
			}
		}
	}
	for _, r := range rules {
		if !fires[r.Alert] {
			t.Errorf("alert %s: no test case shows it firing", r.Alert)
		}
		if !quiet[r.Alert] {
			t.Errorf("alert %s: no test case shows it quiet", r.Alert)
		}
		if !quietInOutage[r.Alert] {
			t.Errorf("alert %s: no test group named \"...outage...\" shows it quiet", r.Alert)
		}
	}
}

var recordName = regexp.MustCompile(`^buildkite:[a-z0-9_]+:[a-z0-9_]+$`)

// Every metric that rules and test series use exists: an exporter metric
// (collector.MetricNames), Prometheus' own `up`, or one of our recording rules.
// Expressions are parsed with the Prometheus PromQL parser.
func TestRulesUseKnownMetrics(t *testing.T) {
	known := map[string]string{"up": "Prometheus"}
	for _, n := range collector.MetricNames() {
		known[n] = "collector.MetricNames"
	}
	recs := recordingRules(t)
	for _, r := range recs {
		if !recordName.MatchString(r.Record) {
			t.Errorf("recording rule %q: want buildkite:<metric>:<operations> (level:metric:operations)", r.Record)
		}
		if _, dup := known[r.Record]; dup {
			t.Errorf("recording rule %q defined twice or shadows a metric", r.Record)
		}
		known[r.Record] = "recording rule"
	}
	p := parser.NewParser(parser.Options{})
	used := map[string]bool{}
	for _, r := range slices.Concat(recs, alertRules(t)) {
		name := r.Record + r.Alert
		names, err := metricNames(p, r.Expr)
		if err != nil {
			t.Errorf("%s: %s: %v", r.file, name, err)
			continue
		}
		for _, m := range names {
			used[m] = true
			if _, ok := known[m]; !ok {
				t.Errorf("%s: %s uses %q: not an exporter metric (collector.MetricNames), `up`, or a recording rule", r.file, name, m)
			}
		}
	}
	for _, r := range recs {
		if !used[r.Record] {
			t.Logf("recording rule %s is not used by any rule (dashboards may use it)", r.Record)
		}
	}
	for _, f := range testFiles(t) {
		var tf testFile
		decodeStrict(t, f, &tf)
		for _, g := range tf.Tests {
			for _, s := range g.InputSeries {
				lbls, err := p.ParseMetric(s.Series)
				if err != nil {
					t.Errorf("%s: %s: series %q: %v", f, g.Name, s.Series, err)
					continue
				}
				if m := lbls.Get("__name__"); known[m] != "collector.MetricNames" && m != "up" {
					t.Errorf("%s: %s: input series %q is not an exporter metric or up", f, g.Name, m)
				}
			}
			for _, pt := range g.PromQLTests {
				if _, err := metricNames(p, pt.Expr); err != nil {
					t.Errorf("%s: %s: %v", f, g.Name, err)
				}
			}
		}
	}
}

// metricNames parses expr and returns the metric names its selectors use; a
// selector without a literal metric name is an error.
func metricNames(p parser.Parser, expr string) ([]string, error) {
	e, err := p.ParseExpr(expr)
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", expr, err)
	}
	set := map[string]bool{}
	var bad error
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			if vs.Name == "" {
				bad = fmt.Errorf("selector %s has no literal metric name", vs)
			}
			set[vs.Name] = true
		}
		return nil
	})
	if bad != nil {
		return nil, bad
	}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// The job matcher of BuildkiteExporterDown is the only place naming the
// scrape job (RUNBOOK.md tells users to change it there).
func TestOnlyExporterDownNamesTheJob(t *testing.T) {
	for _, r := range slices.Concat(recordingRules(t), alertRules(t)) {
		mentions := strings.Contains(r.Expr, `job=`) || strings.Contains(r.Expr, `job!`)
		if (r.Alert == "BuildkiteExporterDown") != mentions {
			t.Errorf("%s%s: expr %q: only BuildkiteExporterDown may select on the job label", r.Record, r.Alert, r.Expr)
		}
	}
}
