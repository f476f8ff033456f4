package stack

import (
	"bytes"
	"testing"

	"github.com/k8s-nemesis/nemesis/activator"
)

// TestActivatorConfigLoads checks the scenarios' activator configuration,
// the score route included, with the activator's own loader.
func TestActivatorConfigLoads(t *testing.T) {
	cfg := ActivatorConfig("e2e-a", "e2e-b") + ScoreRoute("e2e-score")
	c, err := activator.ParseConfig("activator.yaml", []byte(cfg))
	if err != nil {
		t.Fatalf("%v\n%s", err, cfg)
	}
	if len(c.Routes) != 3 {
		t.Fatalf("%d routes, want 3:\n%s", len(c.Routes), cfg)
	}
	r := c.Routes[2]
	if r.Policy != activator.PolicyScore || r.Score == nil || len(r.Score.Metrics) != 3 || r.Service.Name != "llm" {
		t.Errorf("score route: %+v", r)
	}
	if r.Match.Hosts[0] != LLMHost("e2e-score") {
		t.Errorf("score route hosts %v", r.Match.Hosts)
	}
}

// TestManifestsRender renders the app's and llmsim's manifests.
func TestManifestsRender(t *testing.T) {
	for _, llm := range []bool{false, true} {
		m, err := RenderApp(App{Namespace: "ns", Image: "img", RuleSet: "sample", LLMSim: llm, TimeScale: 0.75, Concurrency: 4})
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]string{false: "--latency=", true: "--max-num-seqs=4"}[llm]; !bytes.Contains(m, []byte(want)) {
			t.Errorf("LLMSim %v: no %s in\n%s", llm, want, m)
		}
	}
	if _, err := render(llmTemplate, LLM{Namespace: "ns", Image: "img", Replicas: 2, TimeScale: 0.25, MaxNumSeqs: 16}); err != nil {
		t.Error(err)
	}
}
