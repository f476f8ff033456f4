package activator

import (
	"net/http"
	"strings"
	"testing"
)

const precedenceConfig = `routes:
  - name: exact-root
    match: {hosts: [chat.example.com]}
    endpoints: ["127.0.0.1:1"]
  - name: exact-v1
    match: {hosts: [chat.example.com], pathPrefix: /v1}
    endpoints: ["127.0.0.1:1"]
  - name: exact-v1-llama
    match: {hosts: [chat.example.com], pathPrefix: /v1, headers: {x-model: llama}}
    endpoints: ["127.0.0.1:1"]
  - name: exact-v1-models
    match: {hosts: [chat.example.com], pathPrefix: /v1/models/}
    endpoints: ["127.0.0.1:1"]
  - name: wild
    match: {hosts: ["*.example.com"], pathPrefix: /}
    endpoints: ["127.0.0.1:1"]
  - name: wild-chat
    match: {hosts: ["*.chat.example.com"]}
    endpoints: ["127.0.0.1:1"]
  - name: wild-api
    match: {hosts: ["*.example.com"], pathPrefix: /api}
    endpoints: ["127.0.0.1:1"]
  - name: any-admin
    match: {pathPrefix: /admin}
    endpoints: ["127.0.0.1:1"]
  - name: only-header
    match: {hosts: [h.test], headers: {x-a: "1"}}
    endpoints: ["127.0.0.1:1"]
`

func TestRoutingPrecedence(t *testing.T) {
	cfg, err := ParseConfig("test.yaml", []byte(precedenceConfig))
	if err != nil {
		t.Fatal(err)
	}
	routes := make([]*route, len(cfg.Routes))
	for i, rc := range cfg.Routes {
		routes[i] = &route{cfg: rc}
	}
	rt := newRouter(cfg.Routes, routes)
	cases := map[string]struct {
		host, path string
		headers    map[string]string
		want       string // "" for no match
	}{
		"exact host, no prefix":              {"chat.example.com", "/", nil, "exact-root"},
		"exact host with port and case":      {"Chat.Example.COM:8080", "/", nil, "exact-root"},
		"exact host trailing dot":            {"chat.example.com.", "/x", nil, "exact-root"},
		"longest prefix wins":                {"chat.example.com", "/v1/chat", nil, "exact-v1"},
		"prefix is segment-wise":             {"chat.example.com", "/v10", nil, "exact-root"},
		"prefix matches itself":              {"chat.example.com", "/v1", nil, "exact-v1"},
		"headers break prefix ties":          {"chat.example.com", "/v1/chat", map[string]string{"X-Model": "llama"}, "exact-v1-llama"},
		"header value must be exact":         {"chat.example.com", "/v1/chat", map[string]string{"X-Model": "Llama"}, "exact-v1"},
		"longer prefix beats headers":        {"chat.example.com", "/v1/models/x", map[string]string{"X-Model": "llama"}, "exact-v1-models"},
		"trailing slash prefix is plain":     {"chat.example.com", "/v1/models/", nil, "exact-v1-models"},
		"trailing slash needs the slash":     {"chat.example.com", "/v1/models", nil, "exact-v1"},
		"exact beats wildcard":               {"chat.example.com", "/api", nil, "exact-root"},
		"longest wildcard first":             {"a.chat.example.com", "/api", nil, "wild-chat"},
		"wildcard matches several labels":    {"a.b.chat.example.com", "/", nil, "wild-chat"},
		"wildcard longest prefix":            {"x.example.com", "/api/v2", nil, "wild-api"},
		"wildcard falls to shorter":          {"x.example.com", "/other", nil, "wild"},
		"wildcard does not match apex":       {"example.com", "/admin", nil, "any-admin"},
		"any host":                           {"other.test", "/admin/x", nil, "any-admin"},
		"nothing":                            {"other.test", "/", nil, ""},
		"header-only route needs header":     {"h.test", "/", nil, ""},
		"header-only route":                  {"h.test", "/", map[string]string{"X-A": "1"}, "only-header"},
		"exact host falls through to any":    {"h.test", "/admin", nil, "any-admin"},
		"ipv6 host with port":                {"[::1]:80", "/admin", nil, "any-admin"},
		"wildcard host not matched by exact": {"b.example.com", "/", nil, "wild"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tc.headers {
				h.Set(k, v)
			}
			got := ""
			if r := rt.match(tc.host, tc.path, h); r != nil {
				got = r.cfg.Name
			}
			if got != tc.want {
				t.Errorf("match(%q, %q) = %q, want %q", tc.host, tc.path, got, tc.want)
			}
		})
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	cfg, err := ParseConfig("test.yaml", []byte(precedenceConfig))
	if err != nil {
		t.Fatal(err)
	}
	routes := make([]*route, len(cfg.Routes))
	for i, rc := range cfg.Routes {
		routes[i] = &route{cfg: rc}
	}
	rt := newRouter(cfg.Routes, routes)
	h := http.Header{"X-Model": {"llama"}}
	allocs := testing.AllocsPerRun(100, func() {
		rt.match("a.b.chat.example.com:8080", "/v1/chat", h)
		rt.match("chat.example.com", "/v1/chat", h)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per match", allocs)
	}
}

func FuzzMatch(f *testing.F) {
	cfg, err := ParseConfig("test.yaml", []byte(precedenceConfig))
	if err != nil {
		f.Fatal(err)
	}
	routes := make([]*route, len(cfg.Routes))
	for i, rc := range cfg.Routes {
		routes[i] = &route{cfg: rc}
	}
	rt := newRouter(cfg.Routes, routes)
	f.Add("chat.example.com", "/v1/chat", "llama")
	f.Add("a.b.chat.example.com:80", "/api", "")
	f.Add("[::1]:80", "/admin", "x")
	f.Add(".", "", "")
	f.Add(":", "/", "")
	f.Fuzz(func(t *testing.T, host, path, model string) {
		h := http.Header{"X-Model": {model}}
		r := rt.match(host, path, h)
		if r == nil {
			return
		}
		// Whatever matched must really match the request.
		m := r.cfg.Match
		if m.PathPrefix != "" && !strings.HasPrefix(path, m.PathPrefix) {
			t.Fatalf("route %q matched path %q", r.cfg.Name, path)
		}
		if want, ok := m.Headers["X-Model"]; ok && want != model {
			t.Fatalf("route %q matched header %q", r.cfg.Name, model)
		}
		if len(m.Hosts) > 0 {
			nh := normalizeHost(host)
			ok := false
			for _, mh := range m.Hosts {
				if mh == nh || strings.HasPrefix(mh, "*.") && strings.HasSuffix(nh, mh[1:]) && len(nh) > len(mh)-1 {
					ok = true
				}
			}
			if !ok {
				t.Fatalf("route %q matched host %q", r.cfg.Name, host)
			}
		}
	})
}
