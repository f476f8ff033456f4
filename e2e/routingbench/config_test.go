package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/k8s-nemesis/nemesis/activator"
)

// TestActivatorConfigLoads checks the generated configuration with the
// activator's own loader, for the policies this activator knows.
func TestActivatorConfigLoads(t *testing.T) {
	cfg, err := activatorConfig([]string{roundRobin, leastRequest}, []string{"127.0.0.1:9001", "127.0.0.1:9002"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := activator.ParseConfig("bench.yaml", []byte(cfg))
	if err != nil {
		t.Fatalf("%v\n%s", err, cfg)
	}
	if len(c.Routes) != 2 {
		t.Fatalf("%d routes", len(c.Routes))
	}
	for i, want := range []activator.PolicyName{activator.PolicyRoundRobin, activator.PolicyLeastRequest} {
		r := c.Routes[i]
		if r.Policy != want || len(r.Endpoints) != 2 || r.Match.Headers[policyHeader] != string(want) {
			t.Errorf("route %d: policy %q endpoints %v headers %v", i, r.Policy, r.Endpoints, r.Match.Headers)
		}
	}
	if _, err := activatorConfig([]string{"fastest"}, []string{"127.0.0.1:1"}); err == nil {
		t.Error("an unknown policy was accepted")
	}
	both, _ := activatorConfig([]string{score, scoreAffinity}, []string{"127.0.0.1:1"})
	if strings.Count(both, "policy: score") != 2 || strings.Count(both, "affinity:") != 1 || !strings.Contains(both, "name: score-affinity") {
		t.Errorf("score routes:\n%s", both)
	}
}

func TestChatBody(t *testing.T) {
	c := newClient("127.0.0.1:1", "m", time.Second)
	defer c.close()
	shared := request{system: strings.Repeat("sys ", 600), user: "q one", maxTokens: 20}
	other := request{system: shared.system, user: "another question", maxTokens: 70}
	a, err := c.body(shared)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := c.body(other)
	// Body-prefix affinity hashes the first 2 KiB: one system prompt,
	// one key.
	if !bytes.Equal(a[:2048], b[:2048]) {
		t.Error("two requests with one system prompt differ in their first 2 KiB")
	}
	var got struct {
		Model         string        `json:"model"`
		Messages      []chatMessage `json:"messages"`
		MaxTokens     int           `json:"max_tokens"`
		Stream        bool          `json:"stream"`
		StreamOptions struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	if err := json.Unmarshal(a, &got); err != nil {
		t.Fatal(err)
	}
	if got.Model != "m" || len(got.Messages) != 2 || got.Messages[0].Role != "system" || got.Messages[1].Content != "q one" ||
		got.MaxTokens != 20 || !got.Stream || !got.StreamOptions.IncludeUsage {
		t.Errorf("body %s", a)
	}
	m, _ := c.body(request{user: "just this", maxTokens: 5})
	if err := json.Unmarshal(m, &got); err != nil || len(got.Messages) != 1 || got.Messages[0].Role != "user" {
		t.Errorf("body without a system prompt: %s", m)
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.policies) != 4 || len(o.workloads) != 2 || len(o.loads) != 3 || o.capacityConcurrency != 2*o.pods*o.maxNumSeqs {
		t.Errorf("defaults %+v", o)
	}
	o, err = parseFlags([]string{"--quick", "--requests", "10", "--policies", "round-robin, least-request,round-robin", "--doc"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.requests != 10 || o.warmup != 8 || len(o.loads) != 1 || o.loads[0] != 0.8 || o.capacityTime != 6*time.Second ||
		len(o.policies) != 2 || o.svg != filepath.Join("docs", "routing.svg") {
		t.Errorf("quick with overrides: %+v", o)
	}
	_, err = parseFlags([]string{"--policies", "fastest", "--loads", "0.5,x,3", "--workloads", "", "--requests", "0", "--time-scale", "-1"}, io.Discard)
	if err == nil {
		t.Fatal("bad flags accepted")
	}
	for _, want := range []string{`"fastest"`, `"x"`, `"3"`, "--workloads: none", "--requests 0", "--time-scale -1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if _, err := parseFlags([]string{"extra"}, io.Discard); err == nil {
		t.Error("a stray argument was accepted")
	}
	if _, err := parseFlags([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}
