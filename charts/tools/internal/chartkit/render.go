package chartkit

import (
	"errors"
	"fmt"
	"runtime/debug"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/cli"
	"helm.sh/helm/v3/pkg/cli/values"
	"helm.sh/helm/v3/pkg/getter"
	"helm.sh/helm/v3/pkg/lint/support"
)

// Options says how to render the chart: the release, and its values as
// `helm template` takes them.
type Options struct {
	ReleaseName string   // default "nemesis"
	Namespace   string   // default "nemesis"
	ValuesFiles []string // -f, in order
	Set         []string // --set key=value, after the files
	// KubeVersion is the Kubernetes version templates and the chart's
	// kubeVersion constraint see (default: that of the client-go this
	// module builds with, as Helm's own release builds do).
	KubeVersion string
}

func (o Options) withDefaults() Options {
	if o.ReleaseName == "" {
		o.ReleaseName = "nemesis"
	}
	if o.Namespace == "" {
		o.Namespace = "nemesis"
	}
	if o.KubeVersion == "" {
		o.KubeVersion = defaultKubeVersion()
	}
	return o
}

// defaultKubeVersion is v1.N.P for the k8s.io/client-go v0.N.P that this
// binary is built with. Helm's library otherwise says v1.20.0, unless the
// binary is built with Helm's linker flags.
func defaultKubeVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == "k8s.io/client-go" {
				if v, ok := strings.CutPrefix(m.Version, "v0."); ok {
					return "v1." + v
				}
			}
		}
	}
	return "v1.35.0"
}

func (o Options) kubeVersion() (*chartutil.KubeVersion, error) {
	kv, err := chartutil.ParseKubeVersion(o.KubeVersion)
	if err != nil {
		return nil, fmt.Errorf("kube version: %w", err)
	}
	return kv, nil
}

// Values merges the values files and --set values of o, as Helm does.
func Values(o Options) (map[string]any, error) {
	vo := values.Options{ValueFiles: o.ValuesFiles, Values: o.Set}
	vals, err := vo.MergeValues(getter.All(cli.New()))
	if err != nil {
		return nil, fmt.Errorf("reading values: %w", err)
	}
	return vals, nil
}

// Render renders the chart in chartDir client-side, as `helm template`
// does, and returns the manifests as one YAML stream, hooks included, in
// Helm's install order. Values are validated against values.schema.json.
func Render(chartDir string, o Options) (string, error) {
	o = o.withDefaults()
	ch, err := loader.Load(chartDir)
	if err != nil {
		return "", fmt.Errorf("loading chart: %w", err)
	}
	vals, err := Values(o)
	if err != nil {
		return "", err
	}
	kv, err := o.kubeVersion()
	if err != nil {
		return "", err
	}
	// ClientOnly: Install fills in default capabilities, an in-memory
	// release store and a Kubernetes client that prints nothing.
	cfg := &action.Configuration{Log: func(string, ...any) {}}
	inst := action.NewInstall(cfg)
	inst.DryRun = true
	inst.ClientOnly = true
	inst.Replace = true
	inst.IncludeCRDs = true
	inst.ReleaseName = o.ReleaseName
	inst.Namespace = o.Namespace
	inst.KubeVersion = kv
	rel, err := inst.Run(ch, vals)
	if err != nil {
		return "", fmt.Errorf("rendering chart: %w", err)
	}
	var b strings.Builder
	b.WriteString(rel.Manifest)
	for _, h := range rel.Hooks {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", h.Path, h.Manifest)
	}
	return b.String(), nil
}

// Lint runs Helm's linter (`helm lint --strict`) on the chart with the
// values of o, and returns its messages, "[SEVERITY] path: message", and
// whether one of them is a warning or an error.
func Lint(chartDir string, o Options) (msgs []string, failed bool, err error) {
	o = o.withDefaults()
	vals, err := Values(o)
	if err != nil {
		return nil, false, err
	}
	kv, err := o.kubeVersion()
	if err != nil {
		return nil, false, err
	}
	l := action.NewLint()
	l.Namespace = o.Namespace
	l.Strict = true
	l.KubeVersion = kv
	res := l.Run([]string{chartDir}, vals)
	if res.TotalChartsLinted == 0 {
		return nil, true, fmt.Errorf("linting chart: %w", errors.Join(res.Errors...))
	}
	for _, m := range res.Messages {
		msgs = append(msgs, m.Error())
		if m.Severity >= support.WarningSev {
			failed = true
		}
	}
	return msgs, failed, nil
}
