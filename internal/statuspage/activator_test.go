package statuspage

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/k8s-nemesis/nemesis/activator"
)

type fixedStatus activator.Status

func (f *fixedStatus) Status() activator.Status { return activator.Status(*f) }

func TestActivatorPage(t *testing.T) {
	score := 14.5
	age := 0.031
	st := &fixedStatus{ConfigVersion: 3, LastReloadError: "a.yaml:5:13: route \"chat\": policy: \"fastest\" is not …\na.yaml:9:3: route \"x\": name: duplicate", Routes: []activator.RouteStatus{{
		Name: "chat", Match: "pathPrefix: /v1/", Policy: "score", Service: "ml/chat-llm:8000", QueueSize: 100, QueueTimeout: "2m",
		QueueDepth: 3, OldestWait: 1.84, InFlight: 9,
		Endpoints: []activator.EndpointStatus{
			{Address: "10.0.1.7:8000", Pod: "chat-a", State: activator.EndpointReady, InFlight: 8, Score: &score, ScrapeAgeSeconds: &age},
			{Address: "10.0.3.4:8000", Pod: "chat-b", State: activator.EndpointTerminating, InFlight: 1},
		},
	}, {Name: "idle", Match: "any request", Policy: "round-robin", QueueSize: 10, QueueTimeout: "30s"}}}
	mux := http.NewServeMux()
	RegisterActivator(mux, st, ActivatorOptions{})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	code, _, body := fetch(t, "GET", srv.URL+"/", "", "")
	if code != http.StatusOK {
		t.Fatalf("GET /: %d", code)
	}
	doc := parseHTML(t, body)
	for sel, want := range map[string]string{
		"#config-version":                               "3",
		"#reload-problems li":                           `a.yaml:5:13: route "chat": policy: "fastest" is not …`,
		"#total-inflight":                               "9",
		"#total-queued":                                 "3",
		`tr[data-route="chat"] .queue-depth`:            "3",
		`tr[data-route="chat"] .oldest-wait`:            "1.8s",
		`tr[data-endpoint="10.0.1.7:8000"] .inflight`:   "8",
		`tr[data-endpoint="10.0.1.7:8000"] .score`:      "14.5",
		`tr[data-endpoint="10.0.1.7:8000"] .scrape-age`: "31ms ago",
		`tr[data-endpoint="10.0.3.4:8000"] .state`:      "terminating",
		`tr[data-endpoint="10.0.3.4:8000"] .score`:      "–",
		`table[data-route="idle"] tbody td`:             "No ready endpoint: requests are held until one is ready, up to 10 for 30s.",
	} {
		if got := doc.text(sel); got != want {
			t.Errorf("%s: %q, want %q", sel, got, want)
		}
	}
	if n := len(doc.all("#reload-problems li")); n != 2 {
		t.Errorf("%d reload problems, want 2", n)
	}
}
