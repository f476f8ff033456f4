package chartkit

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Check verifies what the chart promises of every rendering, on the
// objects [Parse] decoded:
//
//   - every Deployment runs its containers under the restricted Pod
//     Security Standard (non-root, read-only root filesystem, all
//     capabilities dropped, no privilege escalation, seccomp
//     RuntimeDefault), with CPU and memory requests, and probes on
//     /readyz and /healthz of a declared port;
//   - the grace period of the pods exceeds the shutdown the flags ask
//     for (scaler: --shutdown-timeout; activator: --shutdown-delay +
//     --drain-timeout);
//   - Services and PodDisruptionBudgets select the pods of a rendered
//     Deployment, and a Service's named target ports exist on them;
//   - role bindings refer to rendered roles;
//   - when the scaler and the activator are rendered together, the
//     scaler has an --activator-service, and when it names a rendered
//     Service, the port it names targets the activator's admin port;
//   - NetworkPolicies select the pods of a rendered Deployment, admit only
//     ports those pods declare and every port they declare (to someone),
//     and the activator's admits the rendered scaler to its admin port.
func Check(objs []*Object) error {
	var (
		errs     []error
		deploys  []*Object
		policies []*Object
		services = map[string]*corev1.Service{}
		roles    = map[string]bool{}
	)
	for _, o := range objs {
		switch t := o.Typed.(type) {
		case *appsv1.Deployment:
			deploys = append(deploys, o)
			errs = append(errs, checkDeployment(o, t)...)
		case *corev1.Service:
			services[t.Namespace+"/"+t.Name] = t
		case *rbacv1.Role:
			roles["Role/"+t.Namespace+"/"+t.Name] = true
		case *rbacv1.ClusterRole:
			roles["ClusterRole//"+t.Name] = true
		}
	}
	for _, o := range objs {
		switch t := o.Typed.(type) {
		case *corev1.Service:
			errs = append(errs, checkService(o, t, deploys)...)
		case *networkingv1.NetworkPolicy:
			policies = append(policies, o)
			errs = append(errs, checkNetworkPolicy(o, t, deploys)...)
		case *policyv1.PodDisruptionBudget:
			if t.Spec.Selector == nil || selects(t.Namespace, t.Spec.Selector.MatchLabels, deploys) == nil {
				errs = append(errs, fmt.Errorf("%s: selects no rendered Deployment's pods", o.ID()))
			}
		case *rbacv1.RoleBinding:
			ns := t.Namespace
			if t.RoleRef.Kind == "ClusterRole" {
				ns = ""
			}
			if !roles[t.RoleRef.Kind+"/"+ns+"/"+t.RoleRef.Name] {
				errs = append(errs, fmt.Errorf("%s: roleRef %s %s is not rendered", o.ID(), t.RoleRef.Kind, t.RoleRef.Name))
			}
		case *rbacv1.ClusterRoleBinding:
			if !roles["ClusterRole//"+t.RoleRef.Name] {
				errs = append(errs, fmt.Errorf("%s: roleRef ClusterRole %s is not rendered", o.ID(), t.RoleRef.Name))
			}
		}
	}
	errs = append(errs, checkActivatorService(deploys, services)...)
	errs = append(errs, checkScalerReachesActivator(deploys, policies)...)
	return errors.Join(errs...)
}

// Component returns the subcommand a Deployment's first container runs
// ("scaler", "activator"), or "".
func Component(d *appsv1.Deployment) string {
	cs := d.Spec.Template.Spec.Containers
	if len(cs) == 0 || len(cs[0].Args) == 0 {
		return ""
	}
	return cs[0].Args[0]
}

// Flag returns the values of --name=value in args, in order.
func Flag(args []string, name string) []string {
	var out []string
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			out = append(out, v)
		}
	}
	return out
}

func checkDeployment(o *Object, d *appsv1.Deployment) []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", o.ID(), fmt.Sprintf(format, args...)))
	}
	pod := d.Spec.Template.Spec
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		bad("pod securityContext.runAsNonRoot is not true")
	}
	podSeccomp := psc != nil && psc.SeccompProfile != nil && psc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault
	if d.Spec.Selector == nil || !labels.SelectorFromSet(d.Spec.Selector.MatchLabels).Matches(labels.Set(d.Spec.Template.Labels)) {
		bad("spec.selector does not match the pod template's labels")
	}
	volumes := map[string]bool{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = true
	}
	for _, c := range pod.Containers {
		where := "container " + c.Name
		sc := c.SecurityContext
		switch {
		case sc == nil:
			bad("%s: no securityContext", where)
		default:
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				bad("%s: allowPrivilegeEscalation is not false", where)
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				bad("%s: readOnlyRootFilesystem is not true", where)
			}
			if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
				bad("%s: capabilities do not drop ALL", where)
			}
			if sc.Capabilities != nil && len(sc.Capabilities.Add) > 0 {
				bad("%s: adds capabilities %v", where, sc.Capabilities.Add)
			}
			if !podSeccomp && (sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault) {
				bad("%s: seccompProfile is not RuntimeDefault", where)
			}
		}
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if q, ok := c.Resources.Requests[r]; !ok || q.IsZero() {
				bad("%s: no %s request", where, r)
			}
		}
		ports := map[string]bool{}
		for _, p := range c.Ports {
			ports[p.Name] = true
		}
		for _, p := range []struct {
			name, path string
			probe      *corev1.Probe
		}{{"readinessProbe", "/readyz", c.ReadinessProbe}, {"livenessProbe", "/healthz", c.LivenessProbe}} {
			switch {
			case p.probe == nil || p.probe.HTTPGet == nil:
				bad("%s: no HTTP %s", where, p.name)
			case p.probe.HTTPGet.Path != p.path:
				bad("%s: %s gets %q, want %q", where, p.name, p.probe.HTTPGet.Path, p.path)
			case p.probe.HTTPGet.Port.StrVal != "" && !ports[p.probe.HTTPGet.Port.StrVal]:
				bad("%s: %s port %q is not a container port", where, p.name, p.probe.HTTPGet.Port.StrVal)
			}
		}
		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] {
				bad("%s: volumeMount %q has no volume", where, m.Name)
			}
			if m.SubPath != "" {
				bad("%s: volumeMount %q uses subPath, which never sees ConfigMap or Secret updates (the binaries reload their files)", where, m.Name)
			}
		}
	}
	grace := int64(30)
	if pod.TerminationGracePeriodSeconds != nil {
		grace = *pod.TerminationGracePeriodSeconds
	}
	args := pod.Containers[0].Args
	var need time.Duration
	switch Component(d) {
	case "scaler":
		need = flagDuration(args, "shutdown-timeout", 15*time.Second, bad)
	case "activator":
		need = flagDuration(args, "shutdown-delay", 5*time.Second, bad) + flagDuration(args, "drain-timeout", 30*time.Second, bad)
	default:
		bad("first container runs neither scaler nor activator (args %q)", args)
	}
	if time.Duration(grace)*time.Second <= need {
		bad("terminationGracePeriodSeconds %d does not exceed the shutdown the flags allow (%s)", grace, need)
	}
	return errs
}

// flagDuration reads the last --name=duration of args, or def.
func flagDuration(args []string, name string, def time.Duration, bad func(string, ...any)) time.Duration {
	vs := Flag(args, name)
	if len(vs) == 0 {
		return def
	}
	d, err := time.ParseDuration(vs[len(vs)-1])
	if err != nil {
		bad("--%s: %v", name, err)
		return def
	}
	return d
}

// selects returns the first Deployment in namespace ns whose pods sel
// selects.
func selects(ns string, sel map[string]string, deploys []*Object) *appsv1.Deployment {
	if len(sel) == 0 {
		return nil
	}
	for _, o := range deploys {
		d := o.Typed.(*appsv1.Deployment)
		if d.Namespace == ns && labels.SelectorFromSet(sel).Matches(labels.Set(d.Spec.Template.Labels)) {
			return d
		}
	}
	return nil
}

func checkService(o *Object, s *corev1.Service, deploys []*Object) []error {
	d := selects(s.Namespace, s.Spec.Selector, deploys)
	if d == nil {
		return []error{fmt.Errorf("%s: selects no rendered Deployment's pods", o.ID())}
	}
	ports := map[string]bool{}
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, p := range c.Ports {
			ports[p.Name] = true
		}
	}
	var errs []error
	for _, p := range s.Spec.Ports {
		if name := p.TargetPort.StrVal; name != "" && !ports[name] {
			errs = append(errs, fmt.Errorf("%s: port %s targets %q, which Deployment %s does not declare", o.ID(), p.Name, name, d.Name))
		}
	}
	return errs
}

// byComponent splits the rendered Deployments into the scalers and the
// activators.
func byComponent(deploys []*Object) (scalers, activators []*appsv1.Deployment) {
	for _, o := range deploys {
		d := o.Typed.(*appsv1.Deployment)
		switch Component(d) {
		case "scaler":
			scalers = append(scalers, d)
		case "activator":
			activators = append(activators, d)
		}
	}
	return scalers, activators
}

// checkActivatorService checks the scaler's --activator-service against
// the rendered activator.
func checkActivatorService(deploys []*Object, services map[string]*corev1.Service) []error {
	scalers, activators := byComponent(deploys)
	var errs []error
	for _, s := range scalers {
		refs := Flag(s.Spec.Template.Spec.Containers[0].Args, "activator-service")
		if len(refs) == 0 {
			if len(activators) > 0 {
				errs = append(errs, fmt.Errorf("scaler deployment %s/%s: no --activator-service, though the activator is rendered too", s.Namespace, s.Name))
			}
			continue
		}
		ref := refs[len(refs)-1]
		nsName, portStr, ok := strings.Cut(ref, ":")
		port, err := strconv.Atoi(portStr)
		if !ok || err != nil || !strings.Contains(nsName, "/") {
			errs = append(errs, fmt.Errorf("scaler deployment %s/%s: --activator-service=%s is not NAMESPACE/NAME:PORT", s.Namespace, s.Name, ref))
			continue
		}
		svc, ok := services[nsName]
		if !ok {
			continue // an activator installed elsewhere (scaler.activatorService)
		}
		var sp *corev1.ServicePort
		for i := range svc.Spec.Ports {
			if int(svc.Spec.Ports[i].Port) == port {
				sp = &svc.Spec.Ports[i]
			}
		}
		switch {
		case sp == nil:
			errs = append(errs, fmt.Errorf("scaler deployment %s/%s: --activator-service=%s: Service %s has no port %d", s.Namespace, s.Name, ref, nsName, port))
		case sp.TargetPort.StrVal != "admin":
			errs = append(errs, fmt.Errorf("scaler deployment %s/%s: --activator-service=%s: port %d targets %q, not the activator's admin port", s.Namespace, s.Name, ref, port, sp.TargetPort.String()))
		}
	}
	return errs
}
