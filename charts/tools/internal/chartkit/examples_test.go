package chartkit

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const examplesDir = "../../../../examples/keda"

// TestExamplesKEDA checks the mTLS examples the chart's README points to:
// the manifests are well formed, every TriggerAuthentication gives KEDA
// caCert, tlsClientCert and tlsClientKey, the chart renders with the
// example values, and the ScaledObject dials a name of the scaler's
// certificate.
func TestExamplesKEDA(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(examplesDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples in %s: %v", examplesDir, err)
	}
	var manifests []*Object
	var values string
	for _, f := range files {
		if strings.HasPrefix(filepath.Base(f), "values-") {
			values = f
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := Parse(string(data))
		if err != nil {
			t.Errorf("%s: %v", f, err)
		}
		manifests = append(manifests, objs...)
	}
	var scalerAddresses []string
	auths := 0
	for _, o := range manifests {
		var doc struct {
			Spec struct {
				SecretTargetRef []struct{ Parameter, Name, Key string } `yaml:"secretTargetRef"`
				Triggers        []struct {
					Metadata map[string]string `yaml:"metadata"`
				} `yaml:"triggers"`
			} `yaml:"spec"`
		}
		if err := yaml.Unmarshal(o.YAML, &doc); err != nil {
			t.Fatalf("%s: %v", o.ID(), err)
		}
		switch o.Kind {
		case "TriggerAuthentication", "ClusterTriggerAuthentication":
			auths++
			var params []string
			for _, r := range doc.Spec.SecretTargetRef {
				params = append(params, r.Parameter+"="+r.Key)
			}
			slices.Sort(params)
			if want := []string{"caCert=ca.crt", "tlsClientCert=tls.crt", "tlsClientKey=tls.key"}; !slices.Equal(params, want) {
				t.Errorf("%s: parameters %q, want %q", o.ID(), params, want)
			}
		case "ScaledObject":
			for _, tr := range doc.Spec.Triggers {
				if tr.Metadata["enableTLS"] != "true" {
					t.Errorf("%s: trigger without enableTLS: \"true\"", o.ID())
				}
				scalerAddresses = append(scalerAddresses, tr.Metadata["scalerAddress"])
			}
		}
	}
	if auths < 2 || len(scalerAddresses) == 0 {
		t.Fatalf("examples hold %d trigger authentications and %d triggers", auths, len(scalerAddresses))
	}

	if values == "" {
		t.Fatal("no values-*.yaml among the examples")
	}
	manifest, err := Render(chartDir, Options{ValuesFiles: []string{values}})
	if err != nil {
		t.Fatal(err)
	}
	objs, err := Parse(manifest)
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(objs); err != nil {
		t.Fatal(err)
	}
	cert := find(objs, "Certificate", "nemesis", "nemesis-scaler")
	if cert == nil {
		t.Fatal("the example values render no Certificate")
	}
	var c struct {
		Spec struct {
			DNSNames []string `yaml:"dnsNames"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal(cert.YAML, &c); err != nil {
		t.Fatal(err)
	}
	for _, addr := range scalerAddresses {
		host, _, _ := strings.Cut(addr, ":")
		if !slices.Contains(c.Spec.DNSNames, host) {
			t.Errorf("scalerAddress %s: %s is not a DNS name of the scaler's certificate %q", addr, host, c.Spec.DNSNames)
		}
	}
	if a := args(deployment(t, objs, "nemesis-scaler")); !slices.Contains(a, "--client-ca-file=/etc/nemesis/tls-client-ca/ca.crt") {
		t.Errorf("the example values do not require client certificates: %q", a)
	}
}
