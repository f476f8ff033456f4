package chartkit

import (
	"fmt"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Peer is a pod that may try to reach another: its namespace and labels.
// Namespaces are matched by the label every namespace carries,
// kubernetes.io/metadata.name.
type Peer struct {
	Namespace string
	Labels    map[string]string
}

// Admits reports whether np lets peer reach port of the pods np selects,
// as a network plugin enforcing NetworkPolicies would: some ingress rule
// has a peer selecting it (or no peers) and a port matching (or no ports).
// IP blocks never match a pod here. A policy without Ingress among its
// policyTypes admits everything.
func Admits(np *networkingv1.NetworkPolicy, port corev1.ContainerPort, peer Peer) bool {
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) && len(np.Spec.PolicyTypes) > 0 {
		return true
	}
	for _, r := range np.Spec.Ingress {
		if !rulePortMatches(r.Ports, port) {
			continue
		}
		if len(r.From) == 0 {
			return true
		}
		for _, p := range r.From {
			if peerMatches(p, np.Namespace, peer) {
				return true
			}
		}
	}
	return false
}

func rulePortMatches(ports []networkingv1.NetworkPolicyPort, c corev1.ContainerPort) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		if portMatches(p, c) {
			return true
		}
	}
	return false
}

func portMatches(p networkingv1.NetworkPolicyPort, c corev1.ContainerPort) bool {
	proto, cproto := corev1.ProtocolTCP, corev1.ProtocolTCP
	if p.Protocol != nil {
		proto = *p.Protocol
	}
	if c.Protocol != "" {
		cproto = c.Protocol
	}
	switch {
	case proto != cproto:
		return false
	case p.Port == nil:
		return true
	case p.Port.StrVal != "":
		return p.Port.StrVal == c.Name
	case p.EndPort != nil:
		return p.Port.IntVal <= c.ContainerPort && c.ContainerPort <= *p.EndPort
	default:
		return p.Port.IntVal == c.ContainerPort
	}
}

func peerMatches(p networkingv1.NetworkPolicyPeer, policyNamespace string, peer Peer) bool {
	if p.IPBlock != nil {
		return false
	}
	if p.NamespaceSelector == nil {
		if peer.Namespace != policyNamespace {
			return false
		}
	} else if !selectorMatches(p.NamespaceSelector, map[string]string{"kubernetes.io/metadata.name": peer.Namespace}) {
		return false
	}
	return p.PodSelector == nil || selectorMatches(p.PodSelector, peer.Labels)
}

func selectorMatches(s *metav1.LabelSelector, l map[string]string) bool {
	sel, err := metav1.LabelSelectorAsSelector(s)
	return err == nil && sel.Matches(labels.Set(l))
}

// checkNetworkPolicy checks that a policy selects the pods of a rendered
// Deployment and that its ports and theirs agree both ways: every port a
// rule names is one the pods declare, and every port the pods declare is
// admitted to someone, for a port a policy isolates and admits to no one is
// a port the chart has broken.
func checkNetworkPolicy(o *Object, np *networkingv1.NetworkPolicy, deploys []*Object) []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", o.ID(), fmt.Sprintf(format, args...)))
	}
	if len(np.Spec.PodSelector.MatchExpressions) > 0 {
		bad("podSelector has matchExpressions; the chart selects its pods by labels")
	}
	d := selects(np.Namespace, np.Spec.PodSelector.MatchLabels, deploys)
	if d == nil {
		bad("selects no rendered Deployment's pods")
		return errs
	}
	ports := containerPorts(d)
	for i, r := range np.Spec.Ingress {
		for _, p := range r.Ports {
			if !slices.ContainsFunc(ports, func(c corev1.ContainerPort) bool { return portMatches(p, c) }) {
				bad("ingress[%d] admits port %s, which Deployment %s does not declare", i, p.Port, d.Name)
			}
		}
	}
	for _, c := range ports {
		admitted := false
		for _, r := range np.Spec.Ingress {
			if rulePortMatches(r.Ports, c) {
				admitted = true
			}
		}
		if !admitted {
			bad("no ingress rule admits port %s (%d) of Deployment %s", c.Name, c.ContainerPort, d.Name)
		}
	}
	return errs
}

func containerPorts(d *appsv1.Deployment) []corev1.ContainerPort {
	var ports []corev1.ContainerPort
	for _, c := range d.Spec.Template.Spec.Containers {
		ports = append(ports, c.Ports...)
	}
	return ports
}

// checkScalerReachesActivator checks, when both components are rendered
// with NetworkPolicies, that the activator's admit the scaler's pods to
// the admin port, the demand stream the scaler watches.
func checkScalerReachesActivator(deploys []*Object, policies []*Object) []error {
	scalers, activators := byComponent(deploys)
	var errs []error
	for _, a := range activators {
		var admin *corev1.ContainerPort
		for _, c := range containerPorts(a) {
			if c.Name == "admin" {
				admin = &c
			}
		}
		if admin == nil {
			continue
		}
		for _, o := range policies {
			np := o.Typed.(*networkingv1.NetworkPolicy)
			if np.Namespace != a.Namespace || !selectorMatches(&np.Spec.PodSelector, a.Spec.Template.Labels) {
				continue
			}
			for _, s := range scalers {
				if !Admits(np, *admin, Peer{Namespace: s.Namespace, Labels: s.Spec.Template.Labels}) {
					errs = append(errs, fmt.Errorf("%s: the scaler's pods (Deployment %s/%s) may not reach the activator's admin port %d, its demand stream", o.ID(), s.Namespace, s.Name, admin.ContainerPort))
				}
			}
		}
	}
	return errs
}
