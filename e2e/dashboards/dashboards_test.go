// Package dashboards checks the Grafana dashboards in the exporter's
// dashboards/ directory (buildkite-fleet.json, buildkite-exporter.json,
// README.md): it validates the JSON strictly with the Grafana foundation SDK
// and checks every query with Prometheus' PromQL parser. It lives in the e2e
// module because the exporter itself needs neither.
package dashboards

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	sdkprometheus "github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"

	"github.com/buildkite-exporter/buildkite_exporter/collector"
)

// dashboardsDir is the directory under test, relative to this package.
const dashboardsDir = "../../dashboards"

// TestMain runs the tests in dashboardsDir, so that file names in the tests
// and in their messages are those of dashboards/.
func TestMain(m *testing.M) {
	if err := os.Chdir(dashboardsDir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// Panel types the dashboards may use: exactly those whose options and
// field config the foundation SDK validates strictly below.
var panelTypes = []string{"row", "stat", "table", "timeseries"}

// fieldConfig.defaults keys Grafana knows (the SDK checks only .custom
// strictly).
var fieldConfigKeys = []string{"unit", "min", "max", "decimals", "color", "thresholds", "mappings",
	"custom", "displayName", "displayNameFromDS", "noValue", "links", "description", "filterable", "path", "writeable", "fieldMinMax"}

const minSchemaVersion = 39 // Grafana 10.4 / 11

var registerOnce sync.Once

// register makes the SDK's strict unmarshalling check panel options, field
// config and Prometheus queries (not only the dashboard envelope). Only the
// variants we use are registered: cog/plugins would compile every plugin.
func register() {
	registerOnce.Do(func() {
		rt := cog.NewRuntime()
		rt.RegisterPanelcfgVariant(stat.VariantConfig())
		rt.RegisterPanelcfgVariant(table.VariantConfig())
		rt.RegisterPanelcfgVariant(timeseries.VariantConfig())
		rt.RegisterDataqueryVariant(sdkprometheus.VariantConfig())
	})
}

func dashboardFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no dashboards (*.json)")
	}
	return files
}

func readJSON(t *testing.T, path string) ([]byte, map[string]any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if dec.More() {
		t.Fatalf("%s: trailing data after the dashboard object", path)
	}
	return raw, m
}

// TestStrictSchema decodes each dashboard with the Grafana foundation SDK's
// strict unmarshaller: unknown fields, wrong types and missing required
// fields (dashboard, panels, panel options, field config, Prometheus
// targets) are errors.
func TestStrictSchema(t *testing.T) {
	register()
	for _, f := range dashboardFiles(t) {
		raw, _ := readJSON(t, f)
		d, err := strictDecode(raw)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		for _, p := range d.Panels {
			if p.Panel == nil {
				continue
			}
			for i, q := range p.Panel.Targets {
				if _, ok := q.(*sdkprometheus.Dataquery); !ok {
					t.Errorf("%s: panel %q target %d decoded as %T, want a Prometheus query", f, deref(p.Panel.Title), i, q)
				}
			}
		}
	}
}

// strictDecode runs the SDK's strict unmarshalling and validation. Our files
// are classic dashboard JSON, the format Grafana imports; the SDK's newer
// dashboardv2 describes another format, hence the deprecated type.
func strictDecode(raw []byte) (*dashboard.Dashboard, error) { //nolint:staticcheck // classic dashboard JSON, see above
	register()
	var d dashboard.Dashboard //nolint:staticcheck // classic dashboard JSON, see above
	if err := sdkErr(d.UnmarshalJSONStrict(raw)); err != nil {
		return nil, fmt.Errorf("strict decode: %w", err)
	}
	if err := sdkErr(d.Validate()); err != nil {
		return nil, fmt.Errorf("validate: %w", err)
	}
	return &d, nil
}

// sdkErr turns the SDK's empty (typed nil) cog.BuildErrors into nil.
func sdkErr(err error) error {
	var be cog.BuildErrors
	if errors.As(err, &be) && len(be) == 0 {
		return nil
	}
	return err
}

// The strict decoder is not vacuous: an unknown field in a stat panel's
// options, in a Prometheus target, or at the top level is rejected.
func TestStrictSchemaRejects(t *testing.T) {
	raw, _ := readJSON(t, "buildkite-fleet.json")
	for _, tc := range []struct{ name, path string }{
		{"unknown top-level field", ""},
		{"unknown stat option", "options"},
		{"unknown target field", "target"},
		{"unknown timeseries custom field config", "custom"},
	} {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		var stat, series map[string]any
		for _, p := range panelsOf(m) {
			if p["type"] == "stat" && stat == nil {
				stat = p
			}
			if p["type"] == "timeseries" && series == nil {
				series = p
			}
		}
		switch tc.path {
		case "":
			m["__inputs"] = []any{}
		case "options":
			stat["options"].(map[string]any)["bogus"] = true
		case "target":
			stat["targets"].([]any)[0].(map[string]any)["bogus"] = true
		case "custom":
			series["fieldConfig"].(map[string]any)["defaults"].(map[string]any)["custom"].(map[string]any)["bogus"] = true
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := strictDecode(b); err == nil {
			t.Errorf("%s: accepted", tc.name)
		} else {
			t.Logf("%s: rejected: %v", tc.name, err)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func panelsOf(m map[string]any) []map[string]any {
	var out []map[string]any
	ps, _ := m["panels"].([]any)
	for _, p := range ps {
		pm, ok := p.(map[string]any)
		if !ok {
			continue
		}
		out = append(out, pm)
		out = append(out, panelsOf(pm)...) // a collapsed row holds its panels
	}
	return out
}

func variablesOf(m map[string]any) map[string]map[string]any {
	vars := map[string]map[string]any{}
	tmpl, _ := m["templating"].(map[string]any)
	list, _ := tmpl["list"].([]any)
	for _, v := range list {
		vm, _ := v.(map[string]any)
		name, _ := vm["name"].(string)
		vars[name] = vm
	}
	return vars
}

func wantDatasourceRef(v any) bool {
	ds, ok := v.(map[string]any)
	return ok && ds["type"] == "prometheus" && ds["uid"] == "${datasource}"
}

// TestDashboardConventions checks what the schema cannot: import-ready
// (no __inputs, fixed uid, no id), variables, datasource references, layout.
func TestDashboardConventions(t *testing.T) {
	uids := map[string]string{}
	for _, f := range dashboardFiles(t) {
		_, m := readJSON(t, f)
		for _, k := range []string{"__inputs", "__requires", "__elements"} {
			if _, ok := m[k]; ok {
				t.Errorf("%s: has %s: dashboards must import without an inputs step", f, k)
			}
		}
		if id, ok := m["id"]; ok && id != nil {
			t.Errorf("%s: id must be absent or null, got %v", f, id)
		}
		uid, _ := m["uid"].(string)
		if !regexp.MustCompile(`^[a-z0-9-]{1,40}$`).MatchString(uid) {
			t.Errorf("%s: uid %q: want a fixed uid of at most 40 of [a-z0-9-]", f, uid)
		}
		if other, dup := uids[uid]; dup {
			t.Errorf("%s: uid %q already used by %s", f, uid, other)
		}
		uids[uid] = f
		if title, _ := m["title"].(string); title == "" {
			t.Errorf("%s: no title", f)
		}
		if sv, _ := m["schemaVersion"].(json.Number).Int64(); sv < minSchemaVersion {
			t.Errorf("%s: schemaVersion %d < %d", f, sv, minSchemaVersion)
		}

		vars := variablesOf(m)
		ds := vars["datasource"]
		if ds == nil || ds["type"] != "datasource" || ds["query"] != "prometheus" {
			t.Errorf("%s: want a variable named datasource of type datasource, query prometheus; got %v", f, ds)
		}
		for _, name := range []string{"job", "organization"} {
			if vars[name] == nil {
				t.Errorf("%s: variable %s missing", f, name)
			}
		}
		for name, v := range vars {
			if name == "datasource" {
				continue
			}
			q, _ := v["query"].(string)
			if v["type"] != "query" || !strings.HasPrefix(q, "label_values(") {
				t.Errorf("%s: variable %s: want type query with a label_values() query, got %v %q", f, name, v["type"], q)
			}
			if v["multi"] != true || v["includeAll"] != true {
				t.Errorf("%s: variable %s: want multi and includeAll", f, name)
			}
			if !wantDatasourceRef(v["datasource"]) {
				t.Errorf("%s: variable %s: datasource must be ${datasource}", f, name)
			}
		}

		ids := map[string]bool{}
		for _, p := range panelsOf(m) {
			title, _ := p["title"].(string)
			typ, _ := p["type"].(string)
			if !slices.Contains(panelTypes, typ) {
				t.Errorf("%s: panel %q: type %q not in %v (the types validated strictly)", f, title, typ, panelTypes)
			}
			if title == "" {
				t.Errorf("%s: a %s panel has no title", f, typ)
			}
			id := fmt.Sprint(p["id"])
			if ids[id] {
				t.Errorf("%s: panel id %s used twice", f, id)
			}
			ids[id] = true
			gp, _ := p["gridPos"].(map[string]any)
			x, _ := gp["x"].(json.Number).Int64()
			w, _ := gp["w"].(json.Number).Int64()
			h, _ := gp["h"].(json.Number).Int64()
			if w <= 0 || h <= 0 || x < 0 || x+w > 24 {
				t.Errorf("%s: panel %q: bad gridPos %v", f, title, gp)
			}
			if typ == "row" {
				continue
			}
			if !wantDatasourceRef(p["datasource"]) {
				t.Errorf("%s: panel %q: datasource must be {type: prometheus, uid: ${datasource}}", f, title)
			}
			fc, _ := p["fieldConfig"].(map[string]any)
			defaults, _ := fc["defaults"].(map[string]any)
			for k := range defaults {
				if !slices.Contains(fieldConfigKeys, k) {
					t.Errorf("%s: panel %q: unknown fieldConfig.defaults.%s", f, title, k)
				}
			}
			if d, _ := p["description"].(string); d == "" {
				t.Errorf("%s: panel %q: no description", f, title)
			}
			targets, _ := p["targets"].([]any)
			if len(targets) == 0 {
				t.Errorf("%s: panel %q: no targets", f, title)
			}
			refs := map[string]bool{}
			for _, tg := range targets {
				tm, _ := tg.(map[string]any)
				ref, _ := tm["refId"].(string)
				if ref == "" || refs[ref] {
					t.Errorf("%s: panel %q: refId %q empty or repeated", f, title, ref)
				}
				refs[ref] = true
				if !wantDatasourceRef(tm["datasource"]) {
					t.Errorf("%s: panel %q target %s: datasource must be ${datasource}", f, title, ref)
				}
				if e, _ := tm["expr"].(string); strings.TrimSpace(e) == "" {
					t.Errorf("%s: panel %q target %s: empty expr", f, title, ref)
				}
			}
		}
	}
}

// knownMetrics: the exporter's families, Prometheus' `up`, and the recording
// rules of alerts/*.rules.yml.
func knownMetrics(t *testing.T) map[string]bool {
	t.Helper()
	known := map[string]bool{"up": true}
	for _, n := range collector.MetricNames() {
		known[n] = true
	}
	files, err := filepath.Glob(filepath.Join("..", "alerts", "*.rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no ../alerts/*.rules.yml")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var rf struct {
			Groups []struct {
				Rules []struct {
					Record string `yaml:"record"`
				} `yaml:"rules"`
			} `yaml:"groups"`
		}
		if err := yaml.Unmarshal(b, &rf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Record != "" {
					known[r.Record] = true
				}
			}
		}
	}
	return known
}

// Grafana's built-in variables, replaced by plausible values.
var builtins = map[string]string{
	"__rate_interval": "5m",
	"__interval":      "1m",
	"__range":         "1h",
}

var varRef = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)`)

// substitute replaces Grafana variables in a query: built-ins by durations,
// dashboard variables by value(name). Unknown variables are errors.
func substitute(q string, vars map[string]map[string]any, value func(name string) string) (string, error) {
	var bad []string
	out := varRef.ReplaceAllStringFunc(q, func(s string) string {
		sm := varRef.FindStringSubmatch(s)
		name := sm[1] + sm[2] + sm[3]
		if d, ok := builtins[name]; ok {
			return d
		}
		if _, ok := vars[name]; ok && name != "datasource" {
			return value(name)
		}
		bad = append(bad, name)
		return s
	})
	if len(bad) > 0 {
		return "", fmt.Errorf("unknown variable(s) %v", bad)
	}
	return out, nil
}

type query struct {
	where, expr string
	variable    bool // a label_values() variable query
}

func queriesOf(t *testing.T, m map[string]any) []query {
	t.Helper()
	var qs []query
	for name, v := range variablesOf(m) {
		if name == "datasource" {
			continue
		}
		q, _ := v["query"].(string)
		// label_values(selector, label) -> selector
		sm := regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`).FindStringSubmatch(q)
		if sm == nil {
			t.Errorf("variable %s: query %q is not label_values(selector, label)", name, q)
			continue
		}
		qs = append(qs, query{where: "variable " + name, expr: sm[1], variable: true})
	}
	for _, p := range panelsOf(m) {
		targets, _ := p["targets"].([]any)
		for _, tg := range targets {
			tm, _ := tg.(map[string]any)
			e, _ := tm["expr"].(string)
			qs = append(qs, query{where: fmt.Sprintf("panel %q target %v", p["title"], tm["refId"]), expr: e})
		}
	}
	return qs
}

// TestQueries: every query parses as PromQL once variables are substituted,
// uses only known metrics, and filters every exporter metric by the
// dashboard's job and organization (and queue, where the family has one).
func TestQueries(t *testing.T) {
	known := knownMetrics(t)
	p := parser.NewParser(parser.Options{})
	for _, f := range dashboardFiles(t) {
		_, m := readJSON(t, f)
		vars := variablesOf(m)
		for _, q := range queriesOf(t, m) {
			// 1. With ".*" for every variable, as Grafana's "All" sends it.
			e, err := substitute(q.expr, vars, func(string) string { return ".*" })
			if err != nil {
				t.Errorf("%s: %s: %v", f, q.where, err)
				continue
			}
			if _, err := p.ParseExpr(e); err != nil {
				t.Errorf("%s: %s: %q does not parse: %v", f, q.where, e, err)
				continue
			}
			// 2. With a marker per variable, to see which matcher uses which.
			e, _ = substitute(q.expr, vars, func(n string) string { return "__var_" + n + "__" })
			expr, err := p.ParseExpr(e)
			if err != nil {
				t.Errorf("%s: %s: %q does not parse: %v", f, q.where, e, err)
				continue
			}
			parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
				vs, ok := n.(*parser.VectorSelector)
				if !ok {
					return nil
				}
				if vs.Name == "" {
					t.Errorf("%s: %s: selector %s has no literal metric name", f, q.where, vs)
					return nil
				}
				if !known[vs.Name] {
					t.Errorf("%s: %s: unknown metric %q (not in collector.MetricNames, up, or alerts/*.rules.yml)", f, q.where, vs.Name)
				}
				checkFilters(t, f, q, vs, vars)
				return nil
			})
		}
	}
}

func checkFilters(t *testing.T, f string, q query, vs *parser.VectorSelector, vars map[string]map[string]any) {
	t.Helper()
	uses := func(label, variable string) bool {
		for _, m := range vs.LabelMatchers {
			if m.Name == label && m.Type == labels.MatchRegexp && strings.Contains(m.Value, "__var_"+variable+"__") {
				return true
			}
		}
		return false
	}
	need := []string{"job"}
	if q.variable && vs.Name == "buildkite_up" && len(vs.LabelMatchers) == 1 {
		need = nil // the job variable's own query
	}
	if strings.HasPrefix(vs.Name, "buildkite_") && vs.Name != "buildkite_exporter_build_info" {
		if !(q.variable && vs.Name == "buildkite_up") { // the organization variable's own query
			need = append(need, "organization")
		}
	}
	if _, ok := vars["queue"]; ok && !q.variable && hasQueueLabel(vs.Name) {
		need = append(need, "queue")
	}
	for _, l := range need {
		if !uses(l, l) {
			t.Errorf("%s: %s: %s is not filtered by %s=~\"$%s\"", f, q.where, vs.Name, l, l)
		}
	}
	// Every family with a cluster label follows the cluster variable (the
	// cluster variable's own query excepted).
	if _, ok := vars["cluster"]; ok && !q.variable && hasClusterLabel(vs.Name) && !uses("buildkite_cluster", "cluster") {
		t.Errorf("%s: %s: %s is not filtered by buildkite_cluster=~\"$cluster\"", f, q.where, vs.Name)
	}
}

// hasClusterLabel: the families that carry buildkite_cluster.
func hasClusterLabel(metric string) bool {
	return metric == "buildkite_agent_metrics_up" || (hasQueueLabel(metric) && strings.HasPrefix(metric, "buildkite_"))
}

func hasQueueLabel(metric string) bool {
	switch metric {
	case "up", "buildkite_up", "buildkite_agents_by_tag", "buildkite_exporter_build_info",
		"buildkite_scrape_duration_seconds", "buildkite_scrape_api_requests",
		"buildkite_api_rate_limit_limit", "buildkite_api_rate_limit_remaining",
		"buildkite_api_rate_limit_reset_seconds", "buildkite_exporter_api_requests_total",
		"buildkite_agent_metrics_up", "buildkite_clusters_up", "buildkite_collection_timestamp_seconds",
		"buildkite_exporter_agent_field_errors_total", "buildkite_queue_metrics_up":
		return false
	}
	return strings.HasPrefix(metric, "buildkite")
}

// TestReadme: README.md names every dashboard file and every panel title.
func TestReadme(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, f := range dashboardFiles(t) {
		if !strings.Contains(readme, f) {
			t.Errorf("README.md does not mention %s", f)
		}
		_, m := readJSON(t, f)
		for _, p := range panelsOf(m) {
			if title, _ := p["title"].(string); !strings.Contains(readme, title) {
				t.Errorf("README.md does not list panel %q of %s", title, f)
			}
		}
		for name := range variablesOf(m) {
			if !strings.Contains(readme, "`"+name+"`") {
				t.Errorf("README.md does not describe variable `%s` of %s", name, f)
			}
		}
	}
}
