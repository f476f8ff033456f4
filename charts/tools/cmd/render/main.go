// Command render prints the manifests of the Nemesis Helm chart, rendered
// client-side with Helm's Go library as `helm template` would, and checked
// as `go tool task helm:lint` checks them (every object well formed, built-in
// kinds decoded strictly, the chart's invariants). The output suits
// `kubectl apply --server-side -f -`; the e2e suite installs Nemesis this
// way.
//
// It lives in the charts/tools module, so run it from there:
//
//	cd charts/tools && go run ./cmd/render --chart ../nemesis -f ../nemesis/ci/default-values.yaml --namespace nemesis
//	go -C charts/tools run ./cmd/render --chart ../nemesis -f "$PWD/my-values.yaml"
//
// (relative paths are resolved from the working directory of the command,
// which `go -C` changes).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/k8s-nemesis/nemesis/charts/tools/internal/chartkit"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "render:", err)
		}
		os.Exit(2)
	}
}

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func run(args []string, stdout, stderr io.Writer) error {
	var (
		o               chartkit.Options
		chartDir        string
		createNamespace bool
		check           bool
	)
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&chartDir, "chart", "../nemesis", "the chart's directory")
	fs.Var((*stringList)(&o.ValuesFiles), "f", "values file (repeatable; later ones win)")
	fs.Var((*stringList)(&o.ValuesFiles), "values", "same as -f")
	fs.Var((*stringList)(&o.Set), "set", "a value, key=value, as helm --set (repeatable; wins over the files)")
	fs.StringVar(&o.Namespace, "namespace", "nemesis", "the release's namespace")
	fs.StringVar(&o.ReleaseName, "release", "nemesis", "the release's name")
	fs.BoolVar(&createNamespace, "create-namespace", false, "print the Namespace first")
	fs.BoolVar(&check, "check", true, "check the rendered objects as helm:lint does (not the rule and route files: see cmd/lint)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	manifest, err := chartkit.Render(chartDir, o)
	if err != nil {
		return err
	}
	if check {
		objs, err := chartkit.Parse(manifest)
		if err == nil {
			err = chartkit.Check(objs)
		}
		if err != nil {
			return fmt.Errorf("the rendered manifests are not valid:\n%w", err)
		}
	}
	if createNamespace {
		fmt.Fprintf(stdout, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n", o.Namespace)
	}
	_, err = io.WriteString(stdout, manifest)
	return err
}
