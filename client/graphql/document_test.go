package graphql_test

import (
	"os"
	"testing"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/buildkite-exporter/buildkite_exporter/client/graphql"
)

// loadDocument validates the embedded document against the SDL excerpt of
// Buildkite's schema (testdata, copied from the project's reference).
func loadDocument(t *testing.T) (*ast.Schema, *ast.QueryDocument) {
	t.Helper()
	sdl, err := os.ReadFile("testdata/buildkite-schema.graphql")
	if err != nil {
		t.Fatal(err)
	}
	schema, gerr := gqlparser.LoadSchema(&ast.Source{Name: "buildkite-schema.graphql", Input: string(sdl)})
	if gerr != nil {
		t.Fatalf("schema: %v", gerr)
	}
	doc, errs := gqlparser.LoadQueryWithRules(schema, graphql.Document(), nil) // nil: the default rules
	if len(errs) > 0 {
		t.Fatalf("the document does not validate against the schema: %v", errs)
	}
	return schema, doc
}

func TestDocumentValidates(t *testing.T) {
	_, doc := loadDocument(t)
	var names []string
	for _, op := range doc.Operations {
		names = append(names, op.Name)
	}
	if len(names) != 2 || names[0] != "QueueMetrics" || names[1] != "ClusterQueues" {
		t.Errorf("operations = %v, want [QueueMetrics ClusterQueues]", names)
	}
}

// complexity computes Buildkite's requested complexity of a selection set
// as its documentation states it: 1 for every object, interface or union
// field, 0 for scalars and enums, and a connection's nodes counted at its
// requested page size (first), which multiplies everything beneath them.
type complexity struct {
	schema *ast.Schema
	vars   map[string]int
}

func (c complexity) selections(set ast.SelectionSet, mult, page int) int {
	total := 0
	for _, s := range set {
		switch s := s.(type) {
		case *ast.Field:
			total += c.field(s, mult, page)
		case *ast.FragmentSpread:
			total += c.selections(s.Definition.SelectionSet, mult, page)
		case *ast.InlineFragment:
			total += c.selections(s.SelectionSet, mult, page)
		}
	}
	return total
}

func (c complexity) field(f *ast.Field, mult, page int) int {
	switch c.schema.Types[f.Definition.Type.Name()].Kind {
	case ast.Scalar, ast.Enum:
		return 0
	}
	if f.Name == "node" && page > 0 { // a connection's node: page size times
		mult *= page
	}
	childPage := 0
	switch {
	case f.Arguments.ForName("first") != nil:
		v := f.Arguments.ForName("first").Value
		if v.Kind == ast.Variable {
			childPage = c.vars[v.Raw]
		} else {
			childPage = atoi(v.Raw)
		}
	case f.Name == "edges":
		childPage = page // edges pass the connection's page size to node
	}
	return mult + c.selections(f.SelectionSet, mult, childPage)
}

func atoi(s string) int {
	n := 0
	for _, r := range s {
		n = n*10 + int(r-'0')
	}
	return n
}

func TestComplexityMatchesDocument(t *testing.T) {
	schema, doc := loadDocument(t)
	for _, size := range []struct{ clusters, queues int }{
		{1, 1}, {3, 10}, {10, 20}, {7, 1}, {graphql.MaxPageSize, graphql.MaxPageSize},
	} {
		c := complexity{schema: schema, vars: map[string]int{"clusters": size.clusters, "queues": size.queues}}
		got := c.selections(doc.Operations.ForName("QueueMetrics").SelectionSet, 1, 0)
		if want := graphql.Complexity(size.clusters, size.queues); got != want {
			t.Errorf("QueueMetrics(%d clusters, %d queues) costs %d by the document, Complexity says %d", size.clusters, size.queues, got, want)
		}
		got = c.selections(doc.Operations.ForName("ClusterQueues").SelectionSet, 1, 0)
		if want := graphql.QueuesComplexity(size.queues); got != want {
			t.Errorf("ClusterQueues(%d queues) costs %d by the document, QueuesComplexity says %d", size.queues, got, want)
		}
	}
	// The documented example: 3 clusters of at most 10 queues.
	if got := graphql.Complexity(3, 10); got != 106 {
		t.Errorf("Complexity(3, 10) = %d, the package comment says 106", got)
	}
	// The largest request the client sends stays under Buildkite's
	// 50,000 requested points per query.
	if got := graphql.Complexity(graphql.MaxPageSize, graphql.MaxPageSize); got > 50000 {
		t.Errorf("Complexity(MaxPageSize, MaxPageSize) = %d, over 50,000", got)
	}
}

// TestDocumentRequestsOnlyUsedFields pins the fields the client decodes:
// a field added to the document without being used costs points for
// nothing (objects) or bytes (scalars).
func TestDocumentRequestsOnlyUsedFields(t *testing.T) {
	_, doc := loadDocument(t)
	var fields []string
	var walk func(ast.SelectionSet, string)
	walk = func(set ast.SelectionSet, path string) {
		for _, s := range set {
			switch s := s.(type) {
			case *ast.Field:
				fields = append(fields, path+s.Name)
				walk(s.SelectionSet, path+s.Name+".")
			case *ast.FragmentSpread:
				walk(s.Definition.SelectionSet, path)
			}
		}
	}
	walk(doc.Operations.ForName("QueueMetrics").SelectionSet, "")
	want := []string{
		"organization", "organization.clusters", "organization.clusters.edges", "organization.clusters.edges.node",
		"organization.clusters.edges.node.uuid", "organization.clusters.edges.node.name",
		"organization.clusters.edges.node.queues", "organization.clusters.edges.node.queues.edges",
		"organization.clusters.edges.node.queues.edges.node", "organization.clusters.edges.node.queues.edges.node.uuid",
		"organization.clusters.edges.node.queues.edges.node.key", "organization.clusters.edges.node.queues.edges.node.metrics",
		"organization.clusters.edges.node.queues.edges.node.metrics.timestamp",
		"organization.clusters.edges.node.queues.edges.node.metrics.jobsPassedCount",
		"organization.clusters.edges.node.queues.edges.node.metrics.jobsFailedCount",
		"organization.clusters.edges.node.queues.edges.node.metrics.waitTimeSec",
		"organization.clusters.edges.node.queues.edges.node.metrics.waitTimeSec.min",
		"organization.clusters.edges.node.queues.edges.node.metrics.waitTimeSec.max",
		"organization.clusters.edges.node.queues.edges.node.metrics.waitTimeSec.p50",
		"organization.clusters.edges.node.queues.edges.node.metrics.waitTimeSec.p95",
		"organization.clusters.edges.node.queues.pageInfo", "organization.clusters.edges.node.queues.pageInfo.hasNextPage",
		"organization.clusters.edges.node.queues.pageInfo.endCursor",
		"organization.clusters.pageInfo", "organization.clusters.pageInfo.hasNextPage", "organization.clusters.pageInfo.endCursor",
	}
	if len(fields) != len(want) {
		t.Fatalf("fields = %v\nwant %v", fields, want)
	}
	for i := range want {
		if fields[i] != want[i] {
			t.Errorf("field %d = %s, want %s", i, fields[i], want[i])
		}
	}
}
