package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/buildkite-exporter/buildkite_exporter/client/internal/safety"
)

const (
	scopeRead  = "read_agents"
	scopeWrite = "write_agents"
)

// ListAgents returns all agents of org that the API lists (connected and
// stopping ones), filtered by opts. It fetches the first page, then the
// remaining pages up to the one the Link header calls last concurrently,
// then follows next links in case the list grew meanwhile. Agents that
// moved between pages while they were read are counted once. Any failed
// page fails the whole listing: a partial fleet would read as lost agents.
func (c *Client) ListAgents(ctx context.Context, org string, opts ListOptions) (*AgentList, error) {
	if err := checkSegment("organization", org); err != nil {
		return nil, err
	}
	first, err := c.endpoint(org)
	if err != nil {
		return nil, err
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

	page1, links, err := c.fetchPage(ctx, org, first)
	if err != nil {
		return nil, err
	}
	pages := [][]Agent{page1}
	fetched := map[string]bool{pageKey(first): true}
	next := links["next"]

	if last, ok := links["last"]; ok {
		if n, ok := pageNumber(last); ok && n > 1 {
			if n > c.maxPages {
				return nil, fmt.Errorf("%w: the last page is %d, more than the limit of %d", ErrPageLimit, n, c.maxPages)
			}
			rest, lastLinks, err := c.fetchPages(ctx, org, first, n)
			if err != nil {
				return nil, err
			}
			for p := 2; p <= n; p++ {
				fetched[pageKey(withPage(first, p))] = true
			}
			pages = append(pages, rest...)
			next = lastLinks["next"]
		}
	}

	// Without a last link (or past it) pages can only be read one by one.
	for next != nil {
		key := pageKey(next)
		if fetched[key] {
			return nil, fmt.Errorf("%w: the next link of page %d leads to a page already fetched", ErrPageLimit, len(pages))
		}
		if len(pages) >= c.maxPages {
			return nil, fmt.Errorf("%w: more than %d pages", ErrPageLimit, c.maxPages)
		}
		fetched[key] = true
		agents, links, err := c.fetchPage(ctx, org, next)
		if err != nil {
			return nil, err
		}
		pages = append(pages, agents)
		next = links["next"]
	}
	return mergePages(pages), nil
}

// fetchPages fetches pages 2..n concurrently, bounded by PageConcurrency.
// The first failure cancels the rest. It returns pages 2..n in order and the
// links of page n.
func (c *Client) fetchPages(ctx context.Context, org string, first *url.URL, n int) ([][]Agent, map[string]*url.URL, error) {
	results := make([][]Agent, n-1)
	var lastLinks map[string]*url.URL
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.pageConcurrency)
	for p := 2; p <= n; p++ {
		if gctx.Err() != nil {
			break // a page failed (or ctx ended): schedule nothing more
		}
		u := withPage(first, p)
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			agents, links, err := c.fetchPage(gctx, org, u)
			if err != nil {
				return err
			}
			results[p-2] = agents
			if p == n {
				lastLinks = links // written by one goroutine, read after Wait
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	if err := ctx.Err(); err != nil { // the loop may have stopped early without an error
		return nil, nil, err
	}
	return results, lastLinks, nil
}

// fetchPage GETs one page and decodes it straight into agents. The page's
// Link relations are returned resolved, each checked to be on BaseURL's
// scheme and host before anything could follow it.
func (c *Client) fetchPage(ctx context.Context, org string, u *url.URL) ([]Agent, map[string]*url.URL, error) {
	var (
		agents []Agent
		links  map[string]*url.URL
	)
	err := c.do(ctx, call{org: org, method: http.MethodGet, u: u, scope: scopeRead}, func(resp *http.Response, body io.Reader) error {
		var err error
		if links, err = c.pageLinks(u, resp.Header.Values("Link")); err != nil {
			return err
		}
		agents = make([]Agent, 0, c.perPage) // fresh on every attempt: a retry starts over
		return DecodeAgents(body, func(a Agent) error {
			agents = append(agents, a)
			return nil
		})
	})
	if err != nil {
		return nil, nil, err
	}
	return agents, links, nil
}

// pageLinks parses Link headers, resolving relative URLs against the page's
// own. Any URL off BaseURL's scheme and host is ErrUnsafeLink.
func (c *Client) pageLinks(page *url.URL, headers []string) (map[string]*url.URL, error) {
	if len(headers) == 0 {
		return nil, nil
	}
	raw, err := ParseLinkHeader(strings.Join(headers, ", "))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	links := make(map[string]*url.URL, len(raw))
	for rel, s := range raw {
		u, err := page.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("%w: unparsable %q link", ErrMalformed, safety.SanitizeMessage(rel, ""))
		}
		if !safety.SameOrigin(c.base, u) {
			return nil, fmt.Errorf("%w: the %q link points to %s://%s, not %s://%s", ErrUnsafeLink,
				safety.SanitizeMessage(rel, ""), safety.SanitizeMessage(u.Scheme, ""), safety.SanitizeMessage(u.Host, ""), c.base.Scheme, c.base.Host)
		}
		links[rel] = u
	}
	return links, nil
}

// mergePages concatenates pages in order, keeping the first agent seen for
// each ID.
func mergePages(pages [][]Agent) *AgentList {
	total := 0
	for _, p := range pages {
		total += len(p)
	}
	list := &AgentList{Agents: make([]Agent, 0, total), Pages: len(pages)}
	seen := make(map[string]struct{}, total)
	for _, p := range pages {
		for _, a := range p {
			if _, dup := seen[a.ID]; dup {
				list.Duplicates++
				continue
			}
			seen[a.ID] = struct{}{}
			list.Agents = append(list.Agents, a)
		}
	}
	return list
}

// pageNumber reads the page parameter of a link.
func pageNumber(u *url.URL) (int, bool) {
	n, err := strconv.Atoi(u.Query().Get("page"))
	return n, err == nil && n >= 1
}

func withPage(u *url.URL, page int) *url.URL {
	v := *u
	q := u.Query()
	q.Set("page", strconv.Itoa(page))
	v.RawQuery = q.Encode()
	return &v
}

// pageKey identifies a page independent of query parameter order, with
// page 1 whether or not it is named, to detect next links that loop.
func pageKey(u *url.URL) string {
	q := u.Query()
	if q.Get("page") == "" {
		q.Set("page", "1")
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host) + u.EscapedPath() + "?" + q.Encode()
}

// GetAgent returns one agent of org by ID, in any connection state.
func (c *Client) GetAgent(ctx context.Context, org, id string) (*Agent, error) {
	u, err := c.endpoint(org, id)
	if err != nil {
		return nil, err
	}
	var a Agent
	err = c.do(ctx, call{org: org, method: http.MethodGet, u: u, scope: scopeRead}, func(_ *http.Response, body io.Reader) error {
		var err error
		a, err = decodeAgent(body)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &a, nil
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
	u, err := c.endpoint(org, id)
	if err != nil {
		return err
	}
	if u, err = url.Parse(u.String() + "/" + verb); err != nil {
		return err
	}
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	return c.do(ctx, call{org: org, method: http.MethodPut, u: u, body: b, scope: scopeWrite}, nil)
}

// endpoint returns BaseURL/organizations/{org}/agents[/{id}], each name
// path-escaped so that a "/" or "?" in it cannot change the request.
func (c *Client) endpoint(org string, id ...string) (*url.URL, error) {
	if err := checkSegment("organization", org); err != nil {
		return nil, err
	}
	s := c.base.String() + "/organizations/" + url.PathEscape(org) + "/agents"
	for _, v := range id {
		if err := checkSegment("agent ID", v); err != nil {
			return nil, err
		}
		s += "/" + url.PathEscape(v)
	}
	return url.Parse(s)
}

// checkSegment rejects names that escaping cannot make safe: empty ones and
// dot segments, which a server or proxy would resolve to another path.
func checkSegment(what, s string) error {
	if s == "" || s == "." || s == ".." {
		return fmt.Errorf("client: invalid %s %q", what, s)
	}
	return nil
}
