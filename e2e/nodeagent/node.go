package nodeagent

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

const (
	nodeLeaseNamespace = "kube-node-lease"
	// heartbeatPeriod is how often the Lease is renewed and NodeStatus
	// refreshed, as the kubelet's defaults.
	heartbeatPeriod      = 10 * time.Second
	leaseDurationSeconds = 40
	// registerTimeout bounds the retries of the first registration, for
	// an API server that is still coming up.
	registerTimeout = 30 * time.Second
	maxPods         = 110
	// kubeletVersion is what the node reports; nothing in the e2e cluster
	// depends on it.
	kubeletVersion = "v1.37.2-nemesis"
)

// nodeInfo is what the node reports about the machine, read once.
type nodeInfo struct {
	memory   int64 // bytes
	kernel   string
	osImage  string
	machine  string
	bootID   string
	hostname string
}

func readNodeInfo() nodeInfo {
	info := nodeInfo{
		kernel:  firstLine("/proc/sys/kernel/osrelease"),
		machine: firstLine("/etc/machine-id"),
		bootID:  firstLine("/proc/sys/kernel/random/boot_id"),
		osImage: "Linux",
	}
	info.hostname, _ = os.Hostname()
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// "MemTotal:       16318412 kB"
			if fields := strings.Fields(sc.Text()); len(fields) >= 2 && fields[0] == "MemTotal:" {
				if kb, err := strconv.ParseInt(fields[1], 10, 64); err == nil {
					info.memory = kb * 1024
				}
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "PRETTY_NAME="); ok {
				info.osImage = strings.Trim(v, `"`)
			}
		}
	}
	return info
}

func firstLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(line)
}

// nodeLabels are the labels of the Node; pods' nodeSelectors are matched
// against them.
func (a *Agent) nodeLabels() map[string]string {
	return map[string]string{
		corev1.LabelHostname:   a.cfg.NodeName,
		corev1.LabelOSStable:   "linux",
		corev1.LabelArchStable: runtime.GOARCH,
	}
}

// registerNode creates the Node, or takes over an existing one: it gets
// the agent's labels, loses its taints and unschedulable flag, and a fresh
// status. It retries for a while: the API server may still be starting.
func (a *Agent) registerNode(ctx context.Context) (*corev1.Node, error) {
	ctx, cancel := context.WithTimeout(ctx, registerTimeout)
	defer cancel()
	var lastErr error
	for {
		node, err := a.tryRegisterNode(ctx)
		if err == nil {
			return node, nil
		}
		lastErr = err
		a.log.Warn("registering the node failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("registering node %s: %w", a.cfg.NodeName, lastErr)
		case <-time.After(time.Second):
		}
	}
}

func (a *Agent) tryRegisterNode(ctx context.Context) (*corev1.Node, error) {
	nodes := a.cfg.Client.CoreV1().Nodes()
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: a.cfg.NodeName, Labels: a.nodeLabels()},
		Spec: corev1.NodeSpec{
			PodCIDR:  a.cfg.PodCIDR.String(),
			PodCIDRs: []string{a.cfg.PodCIDR.String()},
		},
		Status: a.nodeStatus(nil),
	}
	created, err := nodes.Create(ctx, node, metav1.CreateOptions{})
	switch {
	case err == nil:
		node = created
	case apierrors.IsAlreadyExists(err):
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, err := nodes.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
			if err != nil {
				return err
			}
			cur = cur.DeepCopy()
			if cur.Labels == nil {
				cur.Labels = map[string]string{}
			}
			for k, v := range a.nodeLabels() {
				cur.Labels[k] = v
			}
			cur.Spec.Taints = nil
			cur.Spec.Unschedulable = false
			node, err = nodes.Update(ctx, cur, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("updating node %s: %w", a.cfg.NodeName, err)
		}
	default:
		return nil, fmt.Errorf("creating node %s: %w", a.cfg.NodeName, err)
	}
	// The API server may drop the status of a create; set it for sure.
	node, err = a.updateNodeStatus(ctx, node)
	if err != nil {
		return nil, err
	}
	if err := a.renewLease(ctx, node); err != nil {
		return nil, err
	}
	return node, nil
}

// nodeStatus is the Node's status: Ready, no pressure, the machine's
// capacity. Transition times of prev's conditions are kept.
func (a *Agent) nodeStatus(prev *corev1.NodeStatus) corev1.NodeStatus {
	now := metav1.Now().Rfc3339Copy()
	resources := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(a.node.memory, resource.BinarySI),
		corev1.ResourcePods:   *resource.NewQuantity(maxPods, resource.DecimalSI),
	}
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		c := corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
		if prev != nil {
			for _, p := range prev.Conditions {
				if p.Type == t && p.Status == s {
					c.LastTransitionTime = p.LastTransitionTime
				}
			}
		}
		return c
	}
	return corev1.NodeStatus{
		Capacity:    resources,
		Allocatable: resources.DeepCopy(),
		Phase:       corev1.NodeRunning,
		Conditions: []corev1.NodeCondition{
			cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "node agent has sufficient memory available"),
			cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "node agent has no disk pressure"),
			cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "node agent has sufficient PID available"),
			cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "nemesis node agent is posting ready status"),
		},
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: a.cfg.Gateway.String()},
			{Type: corev1.NodeHostName, Address: a.cfg.NodeName},
		},
		NodeInfo: corev1.NodeSystemInfo{
			MachineID:               a.node.machine,
			SystemUUID:              a.node.machine,
			BootID:                  a.node.bootID,
			KernelVersion:           a.node.kernel,
			OSImage:                 a.node.osImage,
			ContainerRuntimeVersion: "nemesis://0.1",
			KubeletVersion:          kubeletVersion,
			OperatingSystem:         "linux",
			Architecture:            runtime.GOARCH,
		},
	}
}

// updateNodeStatus writes a fresh status over node's, retrying conflicts
// with the newest node.
func (a *Agent) updateNodeStatus(ctx context.Context, node *corev1.Node) (*corev1.Node, error) {
	nodes := a.cfg.Client.CoreV1().Nodes()
	for attempt := 0; ; attempt++ {
		n := node.DeepCopy()
		n.Status = a.nodeStatus(&node.Status)
		updated, err := nodes.UpdateStatus(ctx, n, metav1.UpdateOptions{})
		if err == nil {
			return updated, nil
		}
		if !apierrors.IsConflict(err) || attempt == 4 {
			return nil, fmt.Errorf("updating the status of node %s: %w", a.cfg.NodeName, err)
		}
		if node, err = nodes.Get(ctx, a.cfg.NodeName, metav1.GetOptions{}); err != nil {
			return nil, fmt.Errorf("updating the status of node %s: %w", a.cfg.NodeName, err)
		}
	}
}

// renewLease renews (or makes) the node's Lease in kube-node-lease, which
// kube-controller-manager's node lifecycle controller takes as the
// heartbeat.
func (a *Agent) renewLease(ctx context.Context, node *corev1.Node) error {
	leases := a.cfg.Client.CoordinationV1().Leases(nodeLeaseNamespace)
	now := metav1.NewMicroTime(time.Now())
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		lease, err := leases.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			lease = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: a.cfg.NodeName, Namespace: nodeLeaseNamespace}}
			if node != nil && node.UID != "" {
				lease.OwnerReferences = []metav1.OwnerReference{{
					APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID,
				}}
			}
			lease.Spec = a.leaseSpec(now)
			_, err = leases.Create(ctx, lease, metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("creating lease %s/%s: %w", nodeLeaseNamespace, a.cfg.NodeName, err)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("getting lease %s/%s: %w", nodeLeaseNamespace, a.cfg.NodeName, err)
		}
		lease = lease.DeepCopy()
		lease.Spec = a.leaseSpec(now)
		_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("renewing lease %s/%s: %w", nodeLeaseNamespace, a.cfg.NodeName, err)
		}
		return nil
	})
}

func (a *Agent) leaseSpec(now metav1.MicroTime) coordinationv1.LeaseSpec {
	holder := a.cfg.NodeName
	duration := int32(leaseDurationSeconds)
	return coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &duration, RenewTime: &now}
}

// heartbeat renews the Lease and refreshes NodeStatus every
// heartbeatPeriod until ctx ends; a Node deleted meanwhile is registered
// again.
func (a *Agent) heartbeat(ctx context.Context, node *corev1.Node) {
	t := time.NewTicker(heartbeatPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := a.renewLease(ctx, node); err != nil && ctx.Err() == nil {
			a.log.Warn("renewing the node lease failed", "err", err)
		}
		updated, err := a.updateNodeStatus(ctx, node)
		switch {
		case err == nil:
			node = updated
		case ctx.Err() != nil:
			return
		case apierrors.IsNotFound(err):
			a.log.Warn("the node was deleted; registering it again")
			if n, err := a.tryRegisterNode(ctx); err == nil {
				node = n
			} else {
				a.log.Warn("registering the node again failed", "err", err)
			}
		default:
			a.log.Warn("updating the node status failed", "err", err)
		}
	}
}
