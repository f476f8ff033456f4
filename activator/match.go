package activator

import (
	"cmp"
	"net/http"
	"slices"
	"strings"
)

// router finds the route of a request. It is built once per configuration
// and read without locks: a lookup is a few map probes on substrings of the
// host and a scan of the (usually one or two) candidates of that host.
type router struct {
	exact    map[string][]*candidate // host → candidates, best first
	wildcard map[string][]*candidate // ".example.com" → candidates
	anyHost  []*candidate
}

// candidate is one route as seen from one host group.
type candidate struct {
	prefix  string
	slash   bool // prefix ends in '/': plain string prefix
	headers []headerMatch
	route   *route
	order   int
}

type headerMatch struct{ key, value string }

// newRouter precomputes the lookup tables; cfgs[i] is the configuration
// (in file order) of routes[i].
func newRouter(cfgs []*Route, routes []*route) *router {
	rt := &router{exact: map[string][]*candidate{}, wildcard: map[string][]*candidate{}}
	for i, r := range routes {
		m := cfgs[i].Match
		c := &candidate{prefix: m.PathPrefix, slash: strings.HasSuffix(m.PathPrefix, "/"), route: r, order: i}
		for k, v := range m.Headers {
			c.headers = append(c.headers, headerMatch{key: k, value: v})
		}
		slices.SortFunc(c.headers, func(a, b headerMatch) int { return strings.Compare(a.key, b.key) })
		if len(m.Hosts) == 0 {
			rt.anyHost = append(rt.anyHost, c)
		}
		for _, h := range m.Hosts {
			if suffix, ok := strings.CutPrefix(h, "*"); ok {
				rt.wildcard[suffix] = append(rt.wildcard[suffix], c)
			} else {
				rt.exact[h] = append(rt.exact[h], c)
			}
		}
	}
	sortCandidates := func(cs []*candidate) {
		slices.SortStableFunc(cs, func(a, b *candidate) int {
			return cmp.Or(-cmp.Compare(len(a.prefix), len(b.prefix)), -cmp.Compare(len(a.headers), len(b.headers)), cmp.Compare(a.order, b.order))
		})
	}
	for _, cs := range rt.exact {
		sortCandidates(cs)
	}
	for _, cs := range rt.wildcard {
		sortCandidates(cs)
	}
	sortCandidates(rt.anyHost)
	return rt
}

// match returns the route for a request, or nil.
func (rt *router) match(host, path string, h http.Header) *route {
	host = normalizeHost(host)
	if cs, ok := rt.exact[host]; ok {
		if r := pick(cs, path, h); r != nil {
			return r
		}
	}
	if len(rt.wildcard) > 0 {
		// Longest wildcard first: for a.b.example.com try .b.example.com,
		// then .example.com, then .com.
		for i := 0; i < len(host); i++ {
			if host[i] != '.' {
				continue
			}
			if cs, ok := rt.wildcard[host[i:]]; ok && i > 0 {
				if r := pick(cs, path, h); r != nil {
					return r
				}
			}
		}
	}
	return pick(rt.anyHost, path, h)
}

func pick(cs []*candidate, path string, h http.Header) *route {
	for _, c := range cs {
		if c.matches(path, h) {
			return c.route
		}
	}
	return nil
}

func (c *candidate) matches(path string, h http.Header) bool {
	if c.prefix != "" && !hasPathPrefix(path, c.prefix, c.slash) {
		return false
	}
	for _, hm := range c.headers {
		vals := h[hm.key]
		found := false
		for _, v := range vals {
			if v == hm.value {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// hasPathPrefix matches whole path segments unless prefix ends in '/'.
func hasPathPrefix(path, prefix string, slash bool) bool {
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return slash || len(path) == len(prefix) || path[len(prefix)] == '/'
}

// normalizeHost strips the port and a trailing dot and lowers the case,
// without allocating when the host is already lower case.
func normalizeHost(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		host = host[:i]
	}
	host = strings.TrimSuffix(host, ".")
	for i := 0; i < len(host); i++ {
		if c := host[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(host)
		}
	}
	return host
}
