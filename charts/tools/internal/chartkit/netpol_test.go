package chartkit

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// policyOf returns the NetworkPolicy selecting d's pods, failing if there
// is not exactly one.
func policyOf(t *testing.T, objs []*Object, d *appsv1.Deployment) *networkingv1.NetworkPolicy {
	t.Helper()
	var found []*networkingv1.NetworkPolicy
	for _, o := range objs {
		if np, ok := o.Typed.(*networkingv1.NetworkPolicy); ok && np.Namespace == d.Namespace &&
			selectorMatches(&np.Spec.PodSelector, d.Spec.Template.Labels) {
			found = append(found, np)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d NetworkPolicies select the pods of Deployment %s, want 1", len(found), d.Name)
	}
	return found[0]
}

// policyPorts returns the ports np's rules name, as "number/protocol".
func policyPorts(np *networkingv1.NetworkPolicy) []string {
	var out []string
	for _, r := range np.Spec.Ingress {
		for _, p := range r.Ports {
			proto := corev1.ProtocolTCP
			if p.Protocol != nil {
				proto = *p.Protocol
			}
			out = append(out, fmt.Sprintf("%s/%s", p.Port, proto))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func declaredPorts(d *appsv1.Deployment) []string {
	var out []string
	for _, c := range containerPorts(d) {
		proto := c.Protocol
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		out = append(out, fmt.Sprintf("%d/%s", c.ContainerPort, proto))
	}
	slices.Sort(out)
	return out
}

// TestNetworkPolicyPortsMatchContainers protects the policies from
// drifting away from the pods: rendered with the default ports and with
// others, each component's NetworkPolicy names exactly the ports its
// container declares, so a port moved in one place and not the other
// fails here rather than in a cluster that enforces policies.
func TestNetworkPolicyPortsMatchContainers(t *testing.T) {
	for name, set := range map[string][]string{
		"defaults": nil,
		"other ports": {
			"scaler.ports.grpc=9500", "scaler.ports.http=8181",
			"activator.ports.http=8081", "activator.ports.admin=9191",
		},
	} {
		t.Run(name, func(t *testing.T) {
			objs := render(t, set...)
			for _, d := range []*appsv1.Deployment{deployment(t, objs, "nemesis-scaler"), deployment(t, objs, "nemesis-activator")} {
				np := policyOf(t, objs, d)
				if got, want := policyPorts(np), declaredPorts(d); !slices.Equal(got, want) {
					t.Errorf("NetworkPolicy %s admits ports %v; Deployment %s declares %v", np.Name, got, d.Name, want)
				}
				if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
					t.Errorf("NetworkPolicy %s: policyTypes %v, want [Ingress] (egress is not restricted)", np.Name, np.Spec.PolicyTypes)
				}
			}
		})
	}
}

// TestNetworkPolicyPeers checks who the default policies admit to each
// port: KEDA's namespace to the scaler's gRPC port, Prometheus to the
// metrics ports, the scaler and Prometheus to the activator's admin port,
// everyone to the proxy, and no one else anywhere.
func TestNetworkPolicyPeers(t *testing.T) {
	objs := render(t)
	scaler := deployment(t, objs, "nemesis-scaler")
	act := deployment(t, objs, "nemesis-activator")
	peers := map[string]Peer{
		"keda operator":   {Namespace: "keda", Labels: map[string]string{"app": "keda-operator"}},
		"prometheus":      {Namespace: "monitoring", Labels: map[string]string{"app.kubernetes.io/name": "prometheus", "prometheus": "kube-prometheus-stack-prometheus"}},
		"grafana":         {Namespace: "monitoring", Labels: map[string]string{"app.kubernetes.io/name": "grafana"}},
		"scaler":          {Namespace: "nemesis", Labels: scaler.Spec.Template.Labels},
		"activator":       {Namespace: "nemesis", Labels: act.Spec.Template.Labels},
		"another scaler":  {Namespace: "other", Labels: scaler.Spec.Template.Labels},
		"a workload":      {Namespace: "ml", Labels: map[string]string{"app": "chat"}},
		"a pod in keda's": {Namespace: "nemesis", Labels: map[string]string{"app": "keda-operator"}},
	}
	all := func() []string {
		var out []string
		for p := range peers {
			out = append(out, p)
		}
		return out
	}
	tests := []struct {
		d     *appsv1.Deployment
		port  string
		admit []string
	}{
		{scaler, "grpc", []string{"keda operator"}},
		{scaler, "http", []string{"prometheus"}},
		{act, "http", all()},
		{act, "admin", []string{"scaler", "prometheus"}},
	}
	for _, tc := range tests {
		np := policyOf(t, objs, tc.d)
		i := slices.IndexFunc(containerPorts(tc.d), func(c corev1.ContainerPort) bool { return c.Name == tc.port })
		if i < 0 {
			t.Fatalf("Deployment %s declares no port %s", tc.d.Name, tc.port)
		}
		port := containerPorts(tc.d)[i]
		for name, p := range peers {
			want := slices.Contains(tc.admit, name)
			if got := Admits(np, port, p); got != want {
				t.Errorf("%s port %s: admits %s = %v, want %v", tc.d.Name, tc.port, name, got, want)
			}
		}
	}

	// The selectors follow their values.
	objs = render(t, "networkPolicy.keda.namespace=autoscaling",
		"networkPolicy.prometheus.namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=observability",
		"networkPolicy.activator.adminFrom[0].namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=other",
		"networkPolicy.activator.proxyFrom[0].namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=ingress")
	scaler = deployment(t, objs, "nemesis-scaler")
	act = deployment(t, objs, "nemesis-activator")
	for _, tc := range []struct {
		d     *appsv1.Deployment
		port  int
		peer  Peer
		admit bool
	}{
		{scaler, 0, Peer{Namespace: "autoscaling"}, true},
		{scaler, 0, Peer{Namespace: "keda"}, false},
		{scaler, 1, Peer{Namespace: "observability", Labels: map[string]string{"app.kubernetes.io/name": "prometheus"}}, true},
		{scaler, 1, peers["prometheus"], false},
		{act, 1, peers["another scaler"], true},
		{act, 1, peers["scaler"], true},
		{act, 0, Peer{Namespace: "ingress"}, true},
		{act, 0, peers["a workload"], false},
	} {
		np := policyOf(t, objs, tc.d)
		port := containerPorts(tc.d)[tc.port]
		if got := Admits(np, port, tc.peer); got != tc.admit {
			t.Errorf("%s port %s: admits %+v = %v, want %v", tc.d.Name, port.Name, tc.peer, got, tc.admit)
		}
	}
}

func TestNetworkPolicyOptional(t *testing.T) {
	for name, tc := range map[string]struct {
		set  []string
		want []string
	}{
		"disabled":       {[]string{"networkPolicy.enabled=false"}, nil},
		"scaler only":    {[]string{"activator.enabled=false"}, []string{"nemesis-scaler"}},
		"activator only": {[]string{"scaler.enabled=false"}, []string{"nemesis-activator"}},
	} {
		t.Run(name, func(t *testing.T) {
			var got []string
			for _, o := range render(t, tc.set...) {
				if o.Kind == "NetworkPolicy" {
					got = append(got, o.Name)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("NetworkPolicies %v, want %v", got, tc.want)
			}
		})
	}
}

// TestCheckFindsNetworkPolicyDrift makes sure Check, which helm:lint runs
// on every rendering, catches a policy whose ports left the pods' and an
// activator policy that shuts the scaler out of the demand stream.
func TestCheckFindsNetworkPolicyDrift(t *testing.T) {
	manifest, err := Render(chartDir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// replaceIn replaces the first old after the start of the activator's
	// NetworkPolicy.
	replaceIn := func(old, new string) func(string) string {
		return func(m string) string {
			i := strings.Index(m, "kind: NetworkPolicy\nmetadata:\n  name: nemesis-activator\n")
			j := strings.Index(m[max(i, 0):], old)
			if i < 0 || j < 0 {
				t.Fatalf("the activator's NetworkPolicy lacks %q", old)
			}
			return m[:i+j] + new + m[i+j+len(old):]
		}
	}
	for name, tc := range map[string]struct {
		mutate func(string) string
		want   []string
	}{
		"admin port moved": {
			replaceIn("- port: 9090\n", "- port: 9099\n"),
			[]string{"admits port 9099, which Deployment nemesis-activator does not declare", "no ingress rule admits port admin (9090)"},
		},
		"scaler shut out": {
			replaceIn("app.kubernetes.io/component: scaler\n", "app.kubernetes.io/component: scaler-elsewhere\n"),
			[]string{"the scaler's pods (Deployment nemesis/nemesis-scaler) may not reach the activator's admin port 9090"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			objs, err := Parse(tc.mutate(manifest))
			if err != nil {
				t.Fatal(err)
			}
			err = Check(objs)
			if err == nil {
				t.Fatal("Check passed")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("problems\n%s\nlack %q", err, w)
				}
			}
		})
	}
}
