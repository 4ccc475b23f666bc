package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/buildkite-exporter/buildkite_exporter/client/internal/httpapi"
)

const (
	scopeRead  = "read_agents"
	scopeWrite = "write_agents"
	// maxLinks bounds the entries of one Link header: Buildkite sends at
	// most four (next, prev, first, last).
	maxLinks = 16
)

// ListAgents returns all agents of org that the API lists (connected and
// stopping ones), filtered by opts. It fetches the first page, then the
// remaining pages up to the one the Link header calls last concurrently,
// then follows next links in case the list grew meanwhile. Every page is
// requested from BaseURL: of a Link only the relation and the page number
// are used, whatever host or path it names. Agents that moved between pages
// while they were read are counted once. Any failed page fails the whole
// listing: a partial fleet would read as lost agents.
//
// The list is never nil: with an error it holds no agents, only what the
// attempt cost (Pages, Requests).
func (c *Client) ListAgents(ctx context.Context, org string, opts ListOptions) (*AgentList, error) {
	first, err := c.endpoint(org)
	if err != nil {
		return &AgentList{}, err
	}
	q := url.Values{}
	q.Set("per_page", strconv.Itoa(c.perPage))
	for _, f := range [...]struct{ key, v string }{
		{"name", opts.Name},
		{"hostname", opts.Hostname},
		{"version", opts.Version},
		{"cluster_queue_id", opts.ClusterQueueID},
	} {
		if f.v != "" {
			q.Set(f.key, f.v)
		}
	}
	first.RawQuery = q.Encode()
	l := &listing{c: c, org: org, first: first}
	pages, err := l.run(ctx)
	if err != nil {
		return &AgentList{Pages: len(pages), Requests: int(l.requests.Load())}, err
	}
	list := mergePages(pages)
	list.Requests = int(l.requests.Load())
	return list, nil
}

// listing is one ListAgents call in progress.
type listing struct {
	c        *Client
	org      string
	first    *url.URL // page 1, without a page parameter
	requests atomic.Int64
	bytes    atomic.Int64 // of the bodies read so far
}

// page is one decoded page and the page numbers its Link header names (0
// for none).
type page struct {
	agents      []Agent
	fieldErrors map[string]int
	next, last  int
}

// run fetches every page; it returns those fetched so far with an error.
func (l *listing) run(ctx context.Context) ([]*page, error) {
	p1, err := l.fetch(ctx, 1)
	if err != nil {
		return nil, err
	}
	pages := []*page{p1}
	fetched := map[int]bool{1: true}
	next := p1.next
	if n := p1.last; n > 1 {
		if n > l.c.maxPages {
			return pages, fmt.Errorf("%w: the last page is %d, more than the limit of %d", ErrPageLimit, n, l.c.maxPages)
		}
		rest, err := l.fetchRange(ctx, n)
		if err != nil {
			return pages, err
		}
		for p := 2; p <= n; p++ {
			fetched[p] = true
		}
		pages = append(pages, rest...)
		if err := checkPagesAdvance(pages); err != nil {
			return pages, err
		}
		next = rest[len(rest)-1].next
	}
	// Without a last link (or past it) pages can only be read one by one.
	checked := len(pages)
	for next != 0 {
		if fetched[next] {
			if err := checkPagesAdvance(pages); err != nil {
				return pages, err
			}
			return pages, fmt.Errorf("%w: the next link of page %d leads to page %d, already fetched", ErrPageLimit, len(pages), next)
		}
		if len(pages) >= l.c.maxPages {
			return pages, fmt.Errorf("%w: more than %d pages", ErrPageLimit, l.c.maxPages)
		}
		fetched[next] = true
		p, err := l.fetch(ctx, next)
		if err != nil {
			return pages, err
		}
		pages = append(pages, p)
		next = p.next
	}
	if len(pages) > checked {
		return pages, checkPagesAdvance(pages)
	}
	return pages, nil
}

// fetchRange fetches pages 2..n concurrently, bounded by PageConcurrency.
// The first failure cancels the rest. It returns pages 2..n in order.
func (l *listing) fetchRange(ctx context.Context, n int) ([]*page, error) {
	results := make([]*page, n-1)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(l.c.pageConcurrency)
	for p := 2; p <= n; p++ {
		if gctx.Err() != nil {
			break // a page failed (or ctx ended): schedule nothing more
		}
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			pg, err := l.fetch(gctx, p)
			results[p-2] = pg
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil { // the loop may have stopped early without an error
		return nil, err
	}
	return results, nil
}

// fetch GETs page n (from BaseURL) and decodes it.
func (l *listing) fetch(ctx context.Context, n int) (*page, error) {
	u := *l.first
	if n > 1 {
		q := l.first.Query()
		q.Set("page", strconv.Itoa(n))
		u.RawQuery = q.Encode()
	}
	var p *page
	requests, err := l.c.do(ctx, httpapi.Request{Method: http.MethodGet, URL: &u, Key: l.org, Scope: scopeRead}, func(resp *httpapi.Response) error {
		if total := l.bytes.Add(int64(len(resp.Body))); total > l.c.maxListingBytes {
			return fmt.Errorf("%w: the listing's pages exceed %d bytes together", ErrMalformed, l.c.maxListingBytes)
		}
		next, last, err := pageLinks(resp.Header.Values("Link"))
		if err != nil {
			return err
		}
		agents, fieldErrors, err := DecodeAgents(resp.Body)
		if err != nil {
			return err
		}
		p = &page{agents: agents, fieldErrors: fieldErrors, next: next, last: last}
		return nil
	})
	l.requests.Add(int64(requests))
	return p, err
}

// pageLinks reads the page numbers of the next and last relations of Link
// headers (0 when absent). Nothing else of a link is used.
func pageLinks(headers []string) (next, last int, err error) {
	if len(headers) == 0 {
		return 0, 0, nil
	}
	links, err := ParseLinkHeader(strings.Join(headers, ", "))
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if s, ok := links["next"]; ok {
		if next = linkPage(s); next == 0 {
			return 0, 0, fmt.Errorf("%w: the next link names no page number", ErrMalformed)
		}
	}
	if s, ok := links["last"]; ok {
		last = linkPage(s)
	}
	return next, last, nil
}

// linkPage is the page parameter of a link, 0 when it has none.
func linkPage(link string) int {
	u, err := url.Parse(link)
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(u.Query().Get("page"))
	if err != nil || n < 1 {
		return 0
	}
	return n
}

var errPagesRepeat = fmt.Errorf("%w: a page after the first brought no new agent: the API (or a proxy) ignores the page parameter", ErrMalformed)

// checkPagesAdvance fails a listing where a page after the first, as large
// as the first, holds only agents of earlier pages: an API or caching
// proxy that ignores "page" and answers page 1 again. Pages that shift
// while read repeat a few agents, not a whole page.
func checkPagesAdvance(pages []*page) error {
	seen := map[string]struct{}{}
	for i, p := range pages {
		fresh := false
		for _, a := range p.agents {
			if _, dup := seen[a.ID]; !dup {
				seen[a.ID] = struct{}{}
				fresh = true
			}
		}
		if i > 0 && !fresh && len(p.agents) > 0 && len(p.agents) >= len(pages[0].agents) {
			return errPagesRepeat
		}
	}
	return nil
}

// mergePages concatenates pages in order, keeping the first agent seen for
// each ID, and sums their field errors.
func mergePages(pages []*page) *AgentList {
	total := 0
	for _, p := range pages {
		total += len(p.agents)
	}
	list := &AgentList{Agents: make([]Agent, 0, total), Pages: len(pages)}
	seen := make(map[string]struct{}, total)
	for _, p := range pages {
		for _, a := range p.agents {
			if _, dup := seen[a.ID]; dup {
				list.Duplicates++
				continue
			}
			seen[a.ID] = struct{}{}
			list.Agents = append(list.Agents, a)
		}
		for name, n := range p.fieldErrors {
			if list.FieldErrors == nil {
				list.FieldErrors = map[string]int{}
			}
			list.FieldErrors[name] += n
		}
	}
	return list
}

// GetAgent returns one agent of org by ID, in any connection state, and the
// HTTP requests it sent (retries included), also with an error.
func (c *Client) GetAgent(ctx context.Context, org, id string) (*Agent, int, error) {
	u, err := c.endpoint(org, id)
	if err != nil {
		return nil, 0, err
	}
	var a Agent
	requests, err := c.do(ctx, httpapi.Request{Method: http.MethodGet, URL: u, Key: org, Scope: scopeRead}, func(resp *httpapi.Response) error {
		var err error
		a, _, err = decodeAgent(resp.Body)
		return err
	})
	if err != nil {
		return nil, requests, err
	}
	return &a, requests, nil
}

// StopAgent tells an agent to stop; with force, its current job is
// canceled. Buildkite answers 400 (ErrRejected) for an agent that is not
// connected.
func (c *Client) StopAgent(ctx context.Context, org, id string, force bool) error {
	return c.action(ctx, org, id, "stop", struct {
		Force bool `json:"force"`
	}{force})
}

// PauseAgent pauses an agent with an optional note. timeoutMinutes 0 leaves
// the timeout to Buildkite (5 minutes).
func (c *Client) PauseAgent(ctx context.Context, org, id, note string, timeoutMinutes int) error {
	if timeoutMinutes < 0 {
		return errors.New("client: pause timeout must not be negative")
	}
	return c.action(ctx, org, id, "pause", struct {
		Note    string `json:"note,omitempty"`
		Timeout int    `json:"timeout_in_minutes,omitempty"`
	}{note, timeoutMinutes})
}

// ResumeAgent resumes a paused agent.
func (c *Client) ResumeAgent(ctx context.Context, org, id string) error {
	return c.action(ctx, org, id, "resume", struct{}{})
}

func (c *Client) action(ctx context.Context, org, id, verb string, body any) error {
	u, err := c.endpoint(org, id, verb)
	if err != nil {
		return err
	}
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	_, err = c.do(ctx, httpapi.Request{Method: http.MethodPut, URL: u, Body: b, Key: org, Scope: scopeWrite}, nil)
	return err
}

// endpoint returns BaseURL/organizations/{org}/agents[/{id}[/{verb}]], each
// name path-escaped so that a "/" or "?" in it cannot change the request.
func (c *Client) endpoint(org string, idVerb ...string) (*url.URL, error) {
	if err := checkSegment("organization", org); err != nil {
		return nil, err
	}
	path := "/organizations/" + url.PathEscape(org) + "/agents"
	for i, v := range idVerb {
		if i == 0 {
			if err := checkSegment("agent ID", v); err != nil {
				return nil, err
			}
		}
		path += "/" + url.PathEscape(v)
	}
	return c.req.Endpoint(path, "")
}

// checkSegment rejects names that escaping cannot make safe: empty ones and
// dot segments, which a server or proxy would resolve to another path.
func checkSegment(what, s string) error {
	if s == "" || s == "." || s == ".." {
		return fmt.Errorf("client: invalid %s %q", what, s)
	}
	return nil
}
