package chartkit

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/kubernetes/scheme"
)

// Object is one rendered Kubernetes object.
type Object struct {
	// Source is the template it came from ("nemesis/templates/…"), from
	// Helm's "# Source:" comment; empty if there is none.
	Source     string
	APIVersion string
	Kind       string
	Name       string
	Namespace  string
	// Typed is the object decoded strictly into its Kubernetes type, for
	// the kinds client-go knows; nil for others (custom resources).
	Typed runtime.Object
	// YAML is the object's document as rendered.
	YAML []byte
}

// ID names the object for messages: "Kind namespace/name (source)".
func (o *Object) ID() string {
	id := o.Kind + " " + o.Name
	if o.Namespace != "" {
		id = o.Kind + " " + o.Namespace + "/" + o.Name
	}
	if o.Source != "" {
		id += " (" + o.Source + ")"
	}
	return id
}

var (
	docSeparator = regexp.MustCompile(`(?m)^---[ \t]*(#.*)?$`)
	sourceLine   = regexp.MustCompile(`(?m)^# Source: (.+)$`)
	// strict rejects unknown and duplicate fields in built-in kinds.
	strict = serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()
)

// clusterScoped are the kinds the chart may render without a namespace.
var clusterScoped = map[string]bool{
	"ClusterRole":              true,
	"ClusterRoleBinding":       true,
	"Namespace":                true,
	"CustomResourceDefinition": true,
	"PriorityClass":            true,
	// Custom resources of the examples (cert-manager, KEDA).
	"ClusterIssuer":                true,
	"ClusterTriggerAuthentication": true,
}

// Parse splits a rendered YAML stream into objects and checks each: it is
// a YAML mapping with apiVersion, kind and metadata.name; namespaced kinds
// carry metadata.namespace; no two objects share kind, namespace and name;
// kinds known to client-go decode strictly (no unknown or duplicate
// field). Empty documents are skipped. It returns every object it could
// read and every problem found.
func Parse(manifest string) ([]*Object, error) {
	var (
		objs []*Object
		errs []error
		seen = map[string]string{}
	)
	for i, doc := range docSeparator.Split(manifest, -1) {
		source := ""
		if m := sourceLine.FindStringSubmatch(doc); m != nil {
			source = strings.TrimSpace(m[1])
		}
		where := fmt.Sprintf("document %d", i+1)
		if source != "" {
			where += " (" + source + ")"
		}
		var node yaml.Node
		if err := yaml.Unmarshal([]byte(doc), &node); err != nil {
			errs = append(errs, fmt.Errorf("%s: invalid YAML: %w", where, err))
			continue
		}
		if len(node.Content) == 0 {
			continue // only comments
		}
		var m map[string]any
		if err := node.Decode(&m); err != nil {
			errs = append(errs, fmt.Errorf("%s: not a YAML mapping: %w", where, err))
			continue
		}
		o := &Object{Source: source, YAML: []byte(doc)}
		o.APIVersion, _ = m["apiVersion"].(string)
		o.Kind, _ = m["kind"].(string)
		meta, _ := m["metadata"].(map[string]any)
		o.Name, _ = meta["name"].(string)
		o.Namespace, _ = meta["namespace"].(string)
		var missing []string
		for field, v := range map[string]string{"apiVersion": o.APIVersion, "kind": o.Kind, "metadata.name": o.Name} {
			if v == "" {
				missing = append(missing, field)
			}
		}
		if len(missing) > 0 {
			slices.Sort(missing)
			errs = append(errs, fmt.Errorf("%s: no %s", where, strings.Join(missing, ", ")))
			continue
		}
		if !clusterScoped[o.Kind] && o.Namespace == "" {
			errs = append(errs, fmt.Errorf("%s: no metadata.namespace: server-side apply of the rendered manifests would put it in the default namespace", o.ID()))
		}
		key := o.Kind + "/" + o.Namespace + "/" + o.Name
		if prev, ok := seen[key]; ok {
			errs = append(errs, fmt.Errorf("%s: rendered twice (also from %s)", o.ID(), prev))
		}
		seen[key] = source
		typed, _, err := strict.Decode(bytes.TrimSpace(o.YAML), nil, nil)
		switch {
		case runtime.IsNotRegisteredError(err):
			// A custom resource (ServiceMonitor, Certificate): its
			// schema lives in the cluster.
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", o.ID(), err))
		default:
			o.Typed = typed
		}
		objs = append(objs, o)
	}
	return objs, errors.Join(errs...)
}
