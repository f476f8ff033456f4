package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/k8s-nemesis/nemesis/externalscaler"
	"github.com/k8s-nemesis/nemesis/metrics"
	"github.com/k8s-nemesis/nemesis/rules"
)

// runRulesEval evaluates one rule set once, as the scaler would for one
// ScaledObject, and prints the rendered queries, their values and the
// decision: a way to try a rule before deploying it. Query values come from
// Prometheus, or from --set for an offline check.
func runRulesEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		paths              stringList
		ruleSet, namespace string
		name               string
		promURL            string
		timeout            time.Duration
		metadata           = headerMap{}
		set                = headerMap{}
	)
	fs := flag.NewFlagSet("nemesis rules eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var(&paths, "rules", "rule file or directory (repeatable)")
	fs.StringVar(&ruleSet, "rule-set", "", "the rule set to evaluate (required)")
	fs.StringVar(&namespace, "namespace", "default", "the ScaledObject's namespace ($namespace)")
	fs.StringVar(&name, "name", "example", "the ScaledObject's name ($name)")
	fs.Var(metadata, "metadata", `trigger metadata "key: value" (repeatable), e.g. "model: llama"`)
	fs.Var(set, "set", `use this value for a query instead of asking Prometheus, "query: 1,2,3" (repeatable; several values are several series; empty is no data), or for a built-in, "inflight: 3", "queued: 1", "current: 2", "ready: 1"`)
	fs.StringVar(&promURL, "prometheus-url", "", "Prometheus to query (needed unless every query is --set)")
	fs.DurationVar(&timeout, "prometheus-timeout", metrics.DefaultTimeout, "timeout of one query")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError("%v", err)
	}
	if len(paths) == 0 || ruleSet == "" {
		return usageError("usage: nemesis rules eval --rules PATH --rule-set NAME [--metadata 'key: value'] [--prometheus-url URL | --set 'query: value']")
	}
	cat, err := externalscaler.LoadCatalog(paths)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	rs, ok := cat.RuleSet(ruleSet)
	if !ok {
		return usageError("no rule set named %q: there are %s", ruleSet, strings.Join(cat.Names(), ", "))
	}
	queries, err := rs.Render(namespace, name, metadata)
	if err != nil {
		return usageError("%v", err)
	}
	var client *metrics.Client
	results := make([]rules.Result, len(rs.Queries))
	for i, q := range rs.Queries {
		fmt.Fprintf(stdout, "query %s: %s\n", q.Name, queries[i])
		if v, ok := set[q.Name]; ok {
			r, err := parseValues(v)
			if err != nil {
				return usageError("--set %s: %v", q.Name, err)
			}
			results[i] = r
		} else {
			if client == nil {
				if promURL == "" {
					return usageError("query %q has no --set value and there is no --prometheus-url", q.Name)
				}
				client, err = metrics.NewClient(metrics.ClientConfig{URL: promURL, Timeout: timeout}, nil, nil, nil)
				if err != nil {
					return usageError("%v", err)
				}
			}
			r, err := client.Query(ctx, queries[i])
			if err != nil {
				return fmt.Errorf("query %q: %w", q.Name, err)
			}
			results[i] = rules.Result{Scalar: r.Scalar, Values: r.Values}
		}
		fmt.Fprintf(stdout, "  = %v\n", results[i].Values)
	}
	// The scaler reads the built-ins from the activators (inflight,
	// queued) and from the ScaledObject's scale target (current, ready);
	// here they come from --set.
	var builtins *rules.BuiltinValues
	if len(rs.Builtins) > 0 {
		builtins = &rules.BuiltinValues{}
		for _, b := range rs.Builtins {
			v, ok := set[b]
			if !ok {
				source := "the activators supply to the scaler"
				if b == "current" || b == "ready" {
					source = "the scaler reads from the ScaledObject's scale target"
				}
				return usageError("rule set %q uses the built-in %s, which %s: give it with --set '%s: N'", rs.Name, b, source, b)
			}
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return usageError("--set %s: %q is not a number", b, v)
			}
			builtins.Set(b, n)
			fmt.Fprintf(stdout, "built-in %s = %v\n", b, n)
		}
	}
	d, err := rs.EvaluateWith(results, builtins)
	if err != nil {
		fmt.Fprintf(stdout, "error: %v\nonError: %s", err, rs.OnError)
		if rs.OnError.Mode == rules.Hold {
			fmt.Fprintf(stdout, " (the last good decision is reused for %v)", rs.StaleAfter)
		}
		fmt.Fprintln(stdout)
		return &exitError{code: 1}
	}
	fmt.Fprintf(stdout, "replicas: %d (expression %g, min %d, max %d)\nactive: %t\n", d.Replicas, d.Raw, rs.Min, rs.Max, d.Active)
	return nil
}

// parseValues reads "1,2.5,NaN" as one value per series; "" is no data.
func parseValues(s string) (rules.Result, error) {
	var r rules.Result
	if strings.TrimSpace(s) == "" {
		return r, nil
	}
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil {
			return r, fmt.Errorf("%q is not a number", f)
		}
		r.Values = append(r.Values, v)
	}
	return r, nil
}
