// Command lint lints and renders the Nemesis Helm chart with Helm's Go
// library, for the chart's default values and for every values file in its
// ci/ directory, and checks each rendering:
//
//  1. `helm lint --strict` (chart metadata, templates, values.schema.json);
//  2. render as `helm template` does; every object decodes as YAML with
//     apiVersion, kind, metadata.name (and a namespace where it needs one),
//     built-in kinds decode strictly into their Kubernetes types, and the
//     chart's invariants hold (restricted security context, requests,
//     probes, grace periods, selectors, the scaler's --activator-service);
//  3. the rule files and the activator configuration the pods will read,
//     found by following the flags to the mounted ConfigMaps, pass the
//     binaries' own loaders (charts/configcheck in the main module, built
//     once).
//
// `go tool task helm:lint` runs it from charts/tools:
//
//	go run ./cmd/lint ../nemesis
//
// It prints one line per values file and every problem; the exit status is
// 1 when there is one.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/k8s-nemesis/nemesis/charts/tools/internal/chartkit"
)

const mainModule = "github.com/k8s-nemesis/nemesis"

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, errFailed):
		os.Exit(1)
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "lint:", err)
		os.Exit(2)
	}
}

var errFailed = errors.New("problems found")

func run(args []string, stdout, stderr io.Writer) error {
	start := time.Now()
	var (
		o       chartkit.Options
		repo    string
		verbose bool
	)
	fs := flag.NewFlagSet("lint", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Namespace, "namespace", "nemesis", "the release's namespace")
	fs.StringVar(&o.ReleaseName, "release", "nemesis", "the release's name")
	fs.StringVar(&repo, "repo", "", "root of the Nemesis repository, whose configcheck checks rules and routes (default: two levels above the chart)")
	fs.BoolVar(&verbose, "v", false, "print Helm's informational lint messages and the checkers' summaries")
	fs.Usage = func() { fmt.Fprintln(stderr, "usage: lint [flags] CHART_DIR"); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return flag.ErrHelp
	}
	chartDir := fs.Arg(0)
	if repo == "" {
		repo = filepath.Join(chartDir, "..", "..")
	}
	if err := checkRepo(repo); err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*.yaml"))
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "nemesis-helm-lint-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	// The checker is built while Helm works.
	checker := filepath.Join(tmp, "configcheck")
	built := make(chan error, 1)
	go func() {
		cmd := exec.Command("go", "build", "-o", checker, "./charts/configcheck")
		cmd.Dir = repo
		out, err := cmd.CombinedOutput()
		if err != nil {
			err = fmt.Errorf("building charts/configcheck: %w\n%s", err, out)
		}
		built <- err
	}()

	cases := append([]string{""}, files...)
	results := make([]*result, len(cases))
	for i, values := range cases {
		results[i] = lintCase(chartDir, o, values, filepath.Join(tmp, fmt.Sprint(i)))
	}
	if err := <-built; err != nil {
		return err
	}
	failed := 0
	for _, r := range results {
		r.checkConfig(checker)
		status := "ok  "
		if len(r.problems) > 0 {
			status = "FAIL"
			failed++
		}
		fmt.Fprintf(stdout, "%s %s: %s\n", status, r.name, r.summary())
		for _, p := range r.problems {
			fmt.Fprintf(stdout, "       %s\n", strings.ReplaceAll(p, "\n", "\n       "))
		}
		if verbose {
			for _, n := range r.notes {
				fmt.Fprintf(stdout, "       %s\n", n)
			}
		}
	}
	fmt.Fprintf(stdout, "%d values files, %d failed (%s)\n", len(cases), failed, time.Since(start).Round(100*time.Millisecond))
	if failed > 0 {
		return errFailed
	}
	return nil
}

// checkRepo makes sure repo is the main module, whose configcheck the
// lint runs.
func checkRepo(repo string) error {
	data, err := os.ReadFile(filepath.Join(repo, "go.mod"))
	if err != nil {
		return fmt.Errorf("finding the repository (--repo): %w", err)
	}
	first, _, _ := strings.Cut(string(data), "\n")
	for _, line := range strings.Split(string(data), "\n") {
		if m, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			if strings.TrimSpace(m) == mainModule {
				return nil
			}
			first = line
		}
	}
	return fmt.Errorf("%s is not the root of %s (%q): set --repo", repo, mainModule, first)
}

// result is what one values file gave.
type result struct {
	name     string
	objects  []*chartkit.Object
	configs  *chartkit.Configs
	dir      string
	ruleDirs []string
	actFiles []string
	problems []string
	notes    []string // lint infos, checker output
}

func (r *result) fail(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

func lintCase(chartDir string, o chartkit.Options, values, dir string) *result {
	r := &result{name: "default values", dir: dir}
	if values != "" {
		r.name = filepath.ToSlash(filepath.Join("ci", filepath.Base(values)))
		o.ValuesFiles = []string{values}
	}
	msgs, failed, err := chartkit.Lint(chartDir, o)
	if err != nil {
		r.fail("helm lint: %v", err)
		return r
	}
	for _, m := range msgs {
		m = strings.TrimSpace(m)
		if failed && !strings.HasPrefix(m, "[INFO]") {
			r.fail("helm lint: %s", m)
		} else {
			r.notes = append(r.notes, "helm lint: "+m)
		}
	}
	manifest, err := chartkit.Render(chartDir, o)
	if err != nil {
		r.fail("%v", err)
		return r
	}
	objs, err := chartkit.Parse(manifest)
	r.objects = objs
	if err != nil {
		r.fail("%v", err)
	}
	if err := chartkit.Check(objs); err != nil {
		for _, e := range strings.Split(err.Error(), "\n") {
			r.fail("%s", e)
		}
	}
	r.configs, err = chartkit.ConfigFiles(objs)
	if err != nil {
		r.fail("%v", err)
		return r
	}
	r.ruleDirs, r.actFiles, err = r.configs.Write(dir)
	if err != nil {
		r.fail("writing configuration files: %v", err)
	}
	return r
}

// checkConfig runs the checker on the rule files and activator
// configuration of the rendering. Paths in its messages are turned back
// into the paths the pods see.
func (r *result) checkConfig(checker string) {
	if r.configs == nil || len(r.ruleDirs)+len(r.actFiles) == 0 {
		return
	}
	var args []string
	for _, d := range r.ruleDirs {
		args = append(args, "--rules", d)
	}
	for _, f := range r.actFiles {
		args = append(args, "--activator", f)
	}
	out, err := exec.Command(checker, args...).CombinedOutput()
	text := strings.TrimSpace(strings.ReplaceAll(string(out), r.dir, ""))
	if err != nil {
		r.fail("configuration the pods would refuse:\n%s", text)
		return
	}
	r.notes = append(r.notes, strings.Split(text, "\n")...)
}

func (r *result) summary() string {
	if len(r.objects) == 0 {
		return "nothing rendered"
	}
	kinds := map[string]int{}
	var order []string
	for _, o := range r.objects {
		if kinds[o.Kind] == 0 {
			order = append(order, o.Kind)
		}
		kinds[o.Kind]++
	}
	parts := make([]string, 0, len(order))
	for _, k := range order {
		parts = append(parts, fmt.Sprintf("%d %s", kinds[k], k))
	}
	s := fmt.Sprintf("%d objects (%s)", len(r.objects), strings.Join(parts, ", "))
	if r.configs != nil {
		s += fmt.Sprintf("; rule files checked: %d, activator configs checked: %d", len(r.configs.RuleFiles), len(r.configs.ActivatorFiles))
		if len(r.configs.External) > 0 {
			s += "; not rendered, so not checked: ConfigMaps " + strings.Join(r.configs.External, ", ")
		}
	}
	return s
}
