package activator

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseConfigGood(t *testing.T) {
	cfg, err := LoadConfig("testdata/full.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Routes) != 2 {
		t.Fatalf("%d routes", len(cfg.Routes))
	}
	chat, static := cfg.Routes[0], cfg.Routes[1]
	if chat.Name != "chat" || chat.Service == nil || *chat.Service != (ServiceRef{"ml", "chat-llm", 8000}) {
		t.Errorf("chat: %+v", chat)
	}
	if got := chat.Match.Headers["X-Model"]; got != "llama" {
		t.Errorf("header match %q", got)
	}
	if chat.Policy != PolicyMetric || chat.Metric.Refresh != time.Second || chat.Queue != (QueueSpec{10, 30 * time.Second}) ||
		chat.Timeouts != (Timeouts{10 * time.Minute, 5 * time.Minute}) {
		t.Errorf("chat: %+v %+v", chat, chat.Metric)
	}
	if chat.EndpointConcurrency != 4 || static.EndpointConcurrency != 0 {
		t.Errorf("endpointConcurrency: chat %d, static %d", chat.EndpointConcurrency, static.EndpointConcurrency)
	}
	if static.Policy != DefaultPolicy || static.Queue != (QueueSpec{DefaultQueueSize, DefaultQueueTimeout}) ||
		static.Timeouts != (Timeouts{DefaultRequestTimeout, DefaultResponseHeaderTimeout}) || len(static.Endpoints) != 2 {
		t.Errorf("defaults: %+v", static)
	}
}

func TestParseConfigBad(t *testing.T) {
	const f = "testdata/many.bad.yaml"
	want := []string{
		f + `:4:15: route "chat": match.hosts: "chat.example.com:80" is not a host name (without port) or a wildcard such as *.example.com`,
		f + `:4:50: route "chat": match.hosts: "a..b" is not a host name (without port) or a wildcard such as *.example.com`,
		f + `:5:19: route "chat": match.pathPrefix: "v1" must start with '/' and hold no query, fragment or spaces`,
		f + `:6:17: route "chat": match.headers.bad header: "bad header" is not a valid header name`,
		f + `:7:7: route "chat": match.colour: unknown field: match has hosts, pathPrefix and headers`,
		f + `:8:26: route "chat": service.namespace: "ML" is not a Kubernetes name: lower-case letters, digits and '-', at most 63`,
		f + `:8:52: route "chat": service.port: "70000" is not a port number between 1 and 65535`,
		f + `:9:13: route "chat": policy: "fastest" is not round-robin, least-request, random, metric or score`,
		f + `:10:19: route "chat": queue.size: "-1" is not a whole number between 0 and 1000000`,
		f + `:10:32: route "chat": queue.timeout: "0s" is not a positive duration such as 500ms, 30s or 2m`,
		f + `:11:25: route "chat": timeouts.request: "soon" is not a duration such as 500ms, 30s or 2m (0 for no limit)`,
		f + `:13:17: route "chat": endpoints: "127.0.0.1" is not host:port`,
		f + `:14:5: name: required`,
		f + `:17:13: route "metric": metric: required for policy: metric: a query giving one value per pod`,
		f + `:20:16: route "both": endpoints: a route has either service or endpoints, not both`,
		f + `:21:13: route "both": metric: only for policy: metric (the policy is least-request)`,
		f + `:21:21: route "both": metric.query: invalid PromQL: unclosed left parenthesis`,
		f + `:21:38: route "both": metric.refresh: 10ms is below the minimum of 100ms`,
		f + `:22:5: route "neither": service: required: a service {namespace, name, port} or a list of endpoints`,
		f + `:27:12: route "dup-b": match: route "dup-a" (23:5) matches the same requests first, so this route would never get any`,
		f + `:29:1: extra: unknown field: the top level holds only routes`,
	}
	_, err := LoadConfig(f)
	if err == nil {
		t.Fatal("no error")
	}
	var got []string
	for _, e := range ConfigErrors(err) {
		got = append(got, e.Error())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestParseConfigCases(t *testing.T) {
	cases := map[string]struct {
		yaml string
		want string // substring of the error; "" for valid
	}{
		"empty file":       {"", "test.yaml:1:1: routes: required: the file is empty"},
		"not yaml":         {"routes: [", "test.yaml:1:1: invalid YAML"},
		"routes not list":  {"routes: 3", "test.yaml:1:9: routes: must be a list of routes"},
		"no routes key":    {"foo: 1", "test.yaml:1:1: foo: unknown field"},
		"empty routes":     {"routes: []", ""},
		"route not a map":  {"routes: [3]", "test.yaml:1:10: must be a mapping"},
		"bad name":         {"routes: [{name: -x, endpoints: ['a:1']}]", `test.yaml:1:17: name: "-x" is not a valid name`},
		"dup key":          {"routes: [{name: x, name: y, endpoints: ['a:1']}]", "duplicate key"},
		"empty endpoints":  {"routes: [{name: x, endpoints: []}]", "endpoints: the list is empty"},
		"dup endpoint":     {"routes: [{name: x, endpoints: ['a:1', 'a:1']}]", `"a:1" is listed twice`},
		"dup host":         {"routes: [{name: x, match: {hosts: [a.com, A.com]}, endpoints: ['a:1']}]", `"A.com" is listed twice`},
		"dup header":       {"routes: [{name: x, match: {headers: {a: 1, A: 2}}, endpoints: ['a:1']}]", "listed twice (names are case-insensitive)"},
		"service missing":  {"routes: [{name: x, service: {name: y}}]", "service.namespace: required"},
		"scalar query":     {"routes: [{name: x, endpoints: ['a:1'], policy: metric, metric: {query: '1+1'}}]", "must give an instant vector"},
		"zero timeouts ok": {"routes: [{name: x, endpoints: ['a:1'], timeouts: {request: 0, responseHeader: 0}, queue: {size: 0}}]", ""},
		"wildcard only":    {"routes: [{name: x, match: {hosts: ['*']}, endpoints: ['a:1']}]", "is not a host name"},
		"negative cap":     {"routes: [{name: x, endpoints: ['a:1'], endpointConcurrency: -1}]", `test.yaml:1:61: route "x": endpointConcurrency: "-1" is not a whole number between 0 (no cap) and 1000000`},
		"cap not a number": {"routes: [{name: x, endpoints: ['a:1'], endpointConcurrency: four}]", `endpointConcurrency: "four" is not a whole number`},
		"cap zero ok":      {"routes: [{name: x, endpoints: ['a:1'], endpointConcurrency: 0}]", ""},
		"same match other host": {`routes:
  - {name: a, match: {hosts: [a.com]}, endpoints: ['a:1']}
  - {name: b, match: {hosts: [b.com, a.com]}, endpoints: ['a:1']}`, `test.yaml:3:22: route "b": match: for host "a.com", route "a" (2:5) matches the same requests first`},
		"different headers fine": {`routes:
  - {name: a, match: {headers: {x: "1"}}, endpoints: ['a:1']}
  - {name: b, match: {headers: {x: "2"}}, endpoints: ['a:1']}`, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParseConfig("test.yaml", []byte(tc.yaml))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("no error, want %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %q\nwant %q", err, tc.want)
			}
			// Every problem names file:line:column.
			for _, e := range ConfigErrors(err) {
				if e.File != "test.yaml" || e.Line < 1 || e.Column < 1 {
					t.Errorf("no position: %v", e)
				}
			}
		})
	}
}

func TestCheckNeedsSources(t *testing.T) {
	cfg, err := LoadConfig("testdata/full.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a := New(Options{})
	err = a.Apply(cfg)
	want := "testdata/full.good.yaml:2:5: route \"chat\": service: service routes need Kubernetes endpoints, which this activator does not watch (use endpoints, or run in a cluster)\n" +
		"testdata/full.good.yaml:2:5: route \"chat\": policy: policy metric needs Prometheus, which this activator has no address of (--prometheus-url)"
	if err == nil || err.Error() != want {
		t.Fatalf("error %v\nwant %s", err, want)
	}
}

func FuzzParseConfig(f *testing.F) {
	for _, file := range []string{"testdata/full.good.yaml", "testdata/many.bad.yaml", "testdata/score.good.yaml", "testdata/score.bad.yaml"} {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("routes: [{name: x, endpoints: ['a:1'], match: {hosts: ['*.a.b'], pathPrefix: /x}}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig("fuzz.yaml", data)
		if err != nil {
			for _, e := range ConfigErrors(err) {
				if e.Line < 1 || e.Column < 1 {
					t.Fatalf("problem without position: %v", e)
				}
			}
			if len(ConfigErrors(err)) == 0 {
				t.Fatalf("error without ConfigError: %v", err)
			}
			return
		}
		// A valid configuration builds a router that answers.
		routes := make([]*route, len(cfg.Routes))
		for i, rc := range cfg.Routes {
			routes[i] = &route{cfg: rc}
			if rc.Service == nil && len(rc.Endpoints) == 0 {
				t.Fatalf("route %q has no backend", rc.Name)
			}
			if rc.Policy == PolicyMetric && (rc.Metric == nil || rc.Metric.Query == "") {
				t.Fatalf("route %q has policy metric without a query", rc.Name)
			}
		}
		rt := newRouter(cfg.Routes, routes)
		rt.match("a.example.com", "/x", nil)
	})
}
