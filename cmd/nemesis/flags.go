package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/k8s-nemesis/nemesis/metrics"
)

// addPrometheusFlags registers the Prometheus client's flags on fs, so
// that every command that talks to Prometheus takes the same ones:
// credentials come from files and flags only. urlHelp and timeout differ
// per command (a backtest's range requests take longer than the scaler's
// instant queries). cfg.Headers must be non-nil.
func addPrometheusFlags(fs *flag.FlagSet, cfg *metrics.ClientConfig, urlHelp string, timeout time.Duration) {
	fs.StringVar(&cfg.URL, "prometheus-url", "", urlHelp)
	fs.StringVar(&cfg.BearerTokenFile, "prometheus-bearer-token-file", "", "file holding a bearer token for Prometheus, re-read on every request")
	fs.StringVar(&cfg.BasicAuthUsername, "prometheus-basic-auth-username", "", "basic auth user name for Prometheus")
	fs.StringVar(&cfg.BasicAuthPasswordFile, "prometheus-basic-auth-password-file", "", "file holding the basic auth password for Prometheus")
	fs.StringVar(&cfg.CAFile, "prometheus-ca-file", "", "CA certificates to verify Prometheus' TLS certificate")
	fs.StringVar(&cfg.CertFile, "prometheus-cert-file", "", "client certificate for mTLS to Prometheus")
	fs.StringVar(&cfg.KeyFile, "prometheus-key-file", "", "client key for mTLS to Prometheus")
	fs.BoolVar(&cfg.InsecureSkipVerify, "prometheus-insecure-skip-verify", false, "do not verify Prometheus' TLS certificate (testing only)")
	fs.Var(headerMap(cfg.Headers), "prometheus-header", `extra header on every Prometheus request, "Name: value" (repeatable), e.g. "X-Scope-OrgID: team-a"`)
	fs.DurationVar(&cfg.Timeout, "prometheus-timeout", timeout, "timeout of one Prometheus query")
}

// stringList is a flag that may be given several times.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// headerMap is a repeatable "Name: value" flag.
type headerMap map[string]string

func (h headerMap) String() string {
	parts := make([]string, 0, len(h))
	for k, v := range h {
		parts = append(parts, k+": "+v)
	}
	return strings.Join(parts, ", ")
}

func (h headerMap) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return fmt.Errorf("%q is not a header: want \"Name: value\"", v)
	}
	h[name] = strings.TrimSpace(value)
	return nil
}

// serviceRef is a NAMESPACE/NAME:PORT flag.
type serviceRef struct {
	namespace, name string
	port            int32
}

func (r *serviceRef) String() string {
	if r.name == "" {
		return ""
	}
	return fmt.Sprintf("%s/%s:%d", r.namespace, r.name, r.port)
}

func (r *serviceRef) Set(v string) error {
	nsName, portStr, ok := strings.Cut(v, ":")
	namespace, name, ok2 := strings.Cut(nsName, "/")
	port, err := strconv.ParseInt(portStr, 10, 32)
	if !ok || !ok2 || namespace == "" || name == "" || err != nil || port <= 0 || port > 65535 {
		return fmt.Errorf("%q is not NAMESPACE/NAME:PORT", v)
	}
	r.namespace, r.name, r.port = namespace, name, int32(port)
	return nil
}
