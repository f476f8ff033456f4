package chartkit

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

const chartDir = "../../../nemesis"

// render renders the chart with --set values and returns its checked
// objects.
func render(t *testing.T, set ...string) []*Object {
	t.Helper()
	manifest, err := Render(chartDir, Options{Set: set})
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
	return objs
}

func find(objs []*Object, kind, namespace, name string) *Object {
	for _, o := range objs {
		if o.Kind == kind && o.Namespace == namespace && o.Name == name {
			return o
		}
	}
	return nil
}

func deployment(t *testing.T, objs []*Object, name string) *appsv1.Deployment {
	t.Helper()
	o := find(objs, "Deployment", "nemesis", name)
	if o == nil {
		t.Fatalf("no Deployment %s", name)
	}
	return o.Typed.(*appsv1.Deployment)
}

func args(d *appsv1.Deployment) []string { return d.Spec.Template.Spec.Containers[0].Args }

func TestDefaults(t *testing.T) {
	objs := render(t)
	scaler := deployment(t, objs, "nemesis-scaler")
	act := deployment(t, objs, "nemesis-activator")
	if got := Flag(args(scaler), "activator-service"); !slices.Equal(got, []string{"nemesis/nemesis-activator-admin:9090"}) {
		t.Errorf("--activator-service = %q", got)
	}
	if got := *act.Spec.Replicas; got < 2 {
		t.Errorf("activator replicas = %d, want at least 2", got)
	}
	if got := *act.Spec.Template.Spec.TerminationGracePeriodSeconds; got != 45 {
		t.Errorf("activator grace period = %d, want 5 + 30 + 10", got)
	}
	if got := act.Spec.Template.Spec.Containers[0].Image; got != "ghcr.io/k8s-nemesis/nemesis:0.1.0" {
		t.Errorf("image = %q, want the appVersion's", got)
	}
	for _, o := range objs {
		if o.Typed == nil {
			continue
		}
		if a := o.Typed.(interface{ GetAnnotations() map[string]string }).GetAnnotations(); a != nil {
			for k := range a {
				if strings.HasPrefix(k, "checksum/") {
					t.Errorf("%s: annotation %s: rules, routes and certificates hot-reload", o.ID(), k)
				}
			}
		}
	}
	for _, d := range []*appsv1.Deployment{scaler, act} {
		for k := range d.Spec.Template.Annotations {
			if strings.HasPrefix(k, "checksum/") {
				t.Errorf("Deployment %s: pod annotation %s: rules, routes and certificates hot-reload", d.Name, k)
			}
		}
	}
	c, err := ConfigFiles(objs)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.RuleFiles["/etc/nemesis/rules/rules.yaml"]; !ok {
		t.Errorf("rule files = %v, want /etc/nemesis/rules/rules.yaml", c.RuleFiles)
	}
	if got := c.ActivatorFiles["/etc/nemesis/activator/activator.yaml"]; strings.TrimSpace(got) != "routes: []" {
		t.Errorf("activator config = %q", got)
	}
}

func TestRBAC(t *testing.T) {
	rules := func(o *Object) []rbacv1.PolicyRule {
		switch r := o.Typed.(type) {
		case *rbacv1.ClusterRole:
			return r.Rules
		case *rbacv1.Role:
			return r.Rules
		}
		return nil
	}
	has := func(rs []rbacv1.PolicyRule, group, resource string, verbs ...string) bool {
		for _, r := range rs {
			if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Equal(r.Verbs, verbs) {
				return true
			}
		}
		return false
	}
	objs := render(t, "scaler.rbac.scaleTargets[0].apiGroup=argoproj.io", "scaler.rbac.scaleTargets[0].resources={rollouts/scale}")
	scaler := rules(find(objs, "ClusterRole", "", "nemesis-scaler"))
	for _, want := range []struct{ group, resource string }{{"keda.sh", "scaledobjects"}, {"", "pods"}, {"argoproj.io", "rollouts/scale"}} {
		verbs := []string{"get", "list", "watch"}
		switch want.resource {
		case "pods":
			verbs = []string{"list", "watch"}
		case "rollouts/scale":
			verbs = []string{"get"}
		}
		if !has(scaler, want.group, want.resource, verbs...) {
			t.Errorf("scaler ClusterRole lacks %s %s %v: %+v", want.group, want.resource, verbs, scaler)
		}
	}
	// The Events on ScaledObjects (--events, on by default), in both groups.
	for _, group := range []string{"", "events.k8s.io"} {
		if !has(scaler, group, "events", "create", "patch") {
			t.Errorf("scaler ClusterRole lacks create, patch on events in group %q: %+v", group, scaler)
		}
	}
	if off := rules(find(render(t, "scaler.events=false"), "ClusterRole", "", "nemesis-scaler")); has(off, "events.k8s.io", "events", "create", "patch") {
		t.Errorf("scaler ClusterRole grants events with scaler.events=false: %+v", off)
	}
	disco := find(objs, "Role", "nemesis", "nemesis-scaler-activators")
	if disco == nil || !has(rules(disco), "discovery.k8s.io", "endpointslices", "get", "list", "watch") || !has(rules(disco), "", "services", "get", "list", "watch") {
		t.Errorf("scaler lacks its Role for --activator-service: %v", disco)
	}
	act := rules(find(objs, "ClusterRole", "", "nemesis-activator"))
	if len(act) != 2 || !has(act, "", "services", "get", "list", "watch") || !has(act, "discovery.k8s.io", "endpointslices", "get", "list", "watch") {
		t.Errorf("activator ClusterRole = %+v, want services and endpointslices only", act)
	}

	objs = render(t, "scaler.rbac.namespaces={ml,search}", "activator.rbac.namespaces={ml}", "scaler.activatorService=edge/gw-activator-admin:9090")
	for _, want := range []struct{ kind, ns, name string }{
		{"Role", "ml", "nemesis-scaler"}, {"RoleBinding", "ml", "nemesis-scaler"},
		{"Role", "search", "nemesis-scaler"}, {"RoleBinding", "search", "nemesis-scaler"},
		{"Role", "ml", "nemesis-activator"}, {"RoleBinding", "ml", "nemesis-activator"},
		{"Role", "edge", "nemesis-scaler-activators"},
	} {
		if find(objs, want.kind, want.ns, want.name) == nil {
			t.Errorf("no %s %s/%s", want.kind, want.ns, want.name)
		}
	}
	if !has(rules(find(objs, "Role", "search", "nemesis-scaler")), "events.k8s.io", "events", "create", "patch") {
		t.Errorf("scaler Role in search lacks create, patch on events")
	}
	for _, o := range objs {
		if o.Kind == "ClusterRole" || o.Kind == "ClusterRoleBinding" {
			t.Errorf("%s rendered, though every component is limited to namespaces", o.ID())
		}
	}

	objs = render(t, "rbac.create=false")
	for _, o := range objs {
		if strings.HasPrefix(o.Kind, "Role") || strings.HasPrefix(o.Kind, "Cluster") {
			t.Errorf("%s rendered with rbac.create=false", o.ID())
		}
	}
}

func TestComponents(t *testing.T) {
	tests := map[string]struct {
		set    []string
		check  func(t *testing.T, objs []*Object)
		absent []string // "Kind/namespace/name"
	}{
		"scaler only": {
			set:    []string{"activator.enabled=false"},
			absent: []string{"Deployment/nemesis/nemesis-activator", "Role/nemesis/nemesis-scaler-activators", "ConfigMap/nemesis/nemesis-activator"},
			check: func(t *testing.T, objs []*Object) {
				if got := Flag(args(deployment(t, objs, "nemesis-scaler")), "activator-service"); len(got) > 0 {
					t.Errorf("--activator-service = %q without an activator", got)
				}
			},
		},
		"activator only": {
			set:    []string{"scaler.enabled=false"},
			absent: []string{"Deployment/nemesis/nemesis-scaler", "ConfigMap/nemesis/nemesis-rules", "ClusterRole//nemesis-scaler"},
		},
		"another release name and admin port": {
			set: []string{"activator.ports.admin=9091"},
			check: func(t *testing.T, objs []*Object) {
				if got := Flag(args(deployment(t, objs, "nemesis-scaler")), "activator-service"); !slices.Equal(got, []string{"nemesis/nemesis-activator-admin:9091"}) {
					t.Errorf("--activator-service = %q", got)
				}
			},
		},
		"mTLS from a Secret with a separate client CA": {
			set: []string{"scaler.tls.enabled=true", "scaler.tls.secretName=scaler-tls", "scaler.tls.clientCASecret.name=keda-ca"},
			check: func(t *testing.T, objs []*Object) {
				d := deployment(t, objs, "nemesis-scaler")
				a := args(d)
				for _, want := range []string{"--tls-cert-file=/etc/nemesis/tls/tls.crt", "--tls-key-file=/etc/nemesis/tls/tls.key", "--client-ca-file=/etc/nemesis/tls-client-ca/ca.crt"} {
					if !slices.Contains(a, want) {
						t.Errorf("args lack %s: %q", want, a)
					}
				}
				secrets := map[string]string{}
				for _, v := range d.Spec.Template.Spec.Volumes {
					if v.Secret != nil {
						secrets[v.Name] = v.Secret.SecretName
					}
				}
				if secrets["tls"] != "scaler-tls" || secrets["tls-client-ca"] != "keda-ca" {
					t.Errorf("secret volumes = %v", secrets)
				}
			},
		},
		"TLS without client certificates, certificate from cert-manager": {
			set: []string{"scaler.tls.enabled=true", "scaler.tls.clientAuth=false", "scaler.tls.certManager.enabled=true", "scaler.tls.certManager.issuerRef.name=ca"},
			check: func(t *testing.T, objs []*Object) {
				c := find(objs, "Certificate", "nemesis", "nemesis-scaler")
				if c == nil {
					t.Fatal("no Certificate")
				}
				for _, want := range []string{"secretName: nemesis-scaler-tls", "- nemesis-scaler.nemesis.svc.cluster.local", "name: ca"} {
					if !strings.Contains(string(c.YAML), want) {
						t.Errorf("Certificate lacks %q:\n%s", want, c.YAML)
					}
				}
				if a := args(deployment(t, objs, "nemesis-scaler")); slices.ContainsFunc(a, func(s string) bool { return strings.HasPrefix(s, "--client-ca-file") }) {
					t.Errorf("--client-ca-file without clientAuth: %q", a)
				}
			},
		},
		"own rule ConfigMaps beside the chart's": {
			set: []string{"scaler.rules.existingConfigMaps={team-a,team.b}"},
			check: func(t *testing.T, objs []*Object) {
				got := Flag(args(deployment(t, objs, "nemesis-scaler")), "rules")
				want := []string{"/etc/nemesis/rules", "/etc/nemesis/rules.d/team-a", "/etc/nemesis/rules.d/team.b"}
				if !slices.Equal(got, want) {
					t.Errorf("--rules = %q, want %q", got, want)
				}
				c, err := ConfigFiles(objs)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(c.External, []string{"nemesis/team-a", "nemesis/team.b"}) {
					t.Errorf("external ConfigMaps = %q", c.External)
				}
			},
		},
		"OTLP": {
			set: []string{"otel.endpoint=http://collector:4318", "otel.resourceAttributes.env=prod"},
			check: func(t *testing.T, objs []*Object) {
				env := map[string]string{}
				for _, e := range deployment(t, objs, "nemesis-activator").Spec.Template.Spec.Containers[0].Env {
					env[e.Name] = e.Value
				}
				if env["OTEL_EXPORTER_OTLP_ENDPOINT"] != "http://collector:4318" || env["OTEL_RESOURCE_ATTRIBUTES"] != "k8s.namespace.name=$(POD_NAMESPACE),k8s.pod.name=$(POD_NAME),env=prod" {
					t.Errorf("env = %v", env)
				}
			},
		},
		"no OTLP endpoint, no OTEL variables": {
			check: func(t *testing.T, objs []*Object) {
				for _, e := range deployment(t, objs, "nemesis-scaler").Spec.Template.Spec.Containers[0].Env {
					if strings.HasPrefix(e.Name, "OTEL_") {
						t.Errorf("%s set without otel.endpoint: the binaries would export traces", e.Name)
					}
				}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			objs := render(t, tc.set...)
			for _, a := range tc.absent {
				parts := strings.SplitN(a, "/", 3)
				if o := find(objs, parts[0], parts[1], parts[2]); o != nil {
					t.Errorf("%s rendered", o.ID())
				}
			}
			if tc.check != nil {
				tc.check(t, objs)
			}
		})
	}
}

// TestRefused lists values the chart refuses, through the schema or its
// own checks (templates/validate.yaml), and the message each gives.
func TestRefused(t *testing.T) {
	tests := map[string]struct {
		set  []string
		want string
	}{
		"a typo":                    {[]string{"scaler.replica=2"}, "additional properties 'replica' not allowed"},
		"no requests":               {[]string{"activator.resources.requests=null"}, "requests"},
		"nothing to install":        {[]string{"scaler.enabled=false", "activator.enabled=false"}, "nothing to install"},
		"no rules":                  {[]string{"scaler.rules.ruleSets=null"}, "scaler: no rule sets"},
		"rules off, none brought":   {[]string{"scaler.rules.create=false"}, "scaler: no rule sets"},
		"a rule file not *.yaml":    {[]string{"scaler.rules.files.notes\\.txt=x"}, "notes.txt"},
		"rules.yaml twice":          {[]string{"scaler.rules.files.rules\\.yaml=x"}, `"rules.yaml" is where scaler.rules.ruleSets go`},
		"TLS without a certificate": {[]string{"scaler.tls.enabled=true"}, "set scaler.tls.secretName"},
		"cert-manager, no issuer":   {[]string{"scaler.tls.enabled=true", "scaler.tls.certManager.enabled=true"}, "issuerRef.name is required"},
		"activator grace too short": {[]string{"activator.terminationGracePeriodSeconds=35"}, "must exceed shutdownDelaySeconds + drainTimeoutSeconds (35)"},
		"scaler grace too short":    {[]string{"scaler.terminationGracePeriodSeconds=15"}, "must exceed scaler.shutdownTimeoutSeconds (15)"},
		"routes and a ConfigMap":    {[]string{"activator.routes[0].name=a", "activator.existingConfigMap.name=x"}, "not both"},
		"activator, Prometheus TLS": {[]string{"activator.prometheus.enabled=true", "prometheus.tls.secretName=x"}, "are the scaler's only"},
		"a bad activator Service":   {[]string{"scaler.activatorService=nemesis-activator"}, "activatorService"},
		"a bad duration":            {[]string{"scaler.pushInterval=1 second"}, "pushInterval"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Render(chartDir, Options{Set: tc.set})
			if err == nil {
				t.Fatalf("rendered; want an error with %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\nlacks %q", err, tc.want)
			}
		})
	}
}

func TestLintDefaults(t *testing.T) {
	msgs, failed, err := Lint(chartDir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if failed {
		t.Errorf("helm lint --strict fails: %q", msgs)
	}
}

// TestCheckFindsProblems feeds Check manifests that break the chart's
// promises.
func TestCheckFindsProblems(t *testing.T) {
	const good = `apiVersion: apps/v1
kind: Deployment
metadata: {name: a, namespace: ns}
spec:
  selector: {matchLabels: {app: a}}
  template:
    metadata: {labels: {app: a}}
    spec:
      terminationGracePeriodSeconds: 40
      securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
        - name: activator
          image: x
          args: [activator, --shutdown-delay=5s, --drain-timeout=30s]
          ports: [{name: admin, containerPort: 9090}]
          readinessProbe: {httpGet: {path: /readyz, port: admin}}
          livenessProbe: {httpGet: {path: /healthz, port: admin}}
          resources: {requests: {cpu: 10m, memory: 10Mi}}
          securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
`
	tests := map[string]struct {
		manifest string
		want     []string
	}{
		"good": {manifest: good},
		"root, writable, no requests, short grace": {
			manifest: strings.NewReplacer(
				"runAsNonRoot: true", "runAsNonRoot: false",
				"readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false",
				"requests: {cpu: 10m, memory: 10Mi}", "requests: {cpu: 10m}",
				"terminationGracePeriodSeconds: 40", "terminationGracePeriodSeconds: 35",
				"path: /healthz, port: admin", "path: /healthz, port: http",
			).Replace(good),
			want: []string{"runAsNonRoot is not true", "readOnlyRootFilesystem is not true", "no memory request", "terminationGracePeriodSeconds 35 does not exceed", `livenessProbe port "http" is not a container port`},
		},
		"a Service selecting nothing, on a missing port": {
			manifest: good + `---
apiVersion: v1
kind: Service
metadata: {name: s, namespace: ns}
spec:
  selector: {app: b}
  ports: [{name: x, port: 1, targetPort: x}]
`,
			want: []string{"Service ns/s: selects no rendered Deployment's pods"},
		},
		"no namespace, unknown field, duplicate": {
			manifest: `apiVersion: v1
kind: ConfigMap
metadata: {name: c}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: d, namespace: ns}
dta: {}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: d, namespace: ns}
---
kind: ConfigMap
metadata: {name: e}
`,
			want: []string{"ConfigMap c: no metadata.namespace", `unknown field "dta"`, "ConfigMap ns/d: rendered twice", "document 4: no apiVersion"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			objs, err := Parse(tc.manifest)
			errs := []error{err, Check(objs)}
			var msg strings.Builder
			for _, e := range errs {
				if e != nil {
					msg.WriteString(e.Error() + "\n")
				}
			}
			if len(tc.want) == 0 && msg.Len() > 0 {
				t.Fatalf("problems in a good manifest:\n%s", msg.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(msg.String(), w) {
					t.Errorf("problems\n%s\nlack %q", msg.String(), w)
				}
			}
		})
	}
}
