// Package nodeagent is a tiny kubelet for the local e2e cluster: the one
// "node" of a real kube-apiserver and kube-controller-manager that run with
// no scheduler, no kubelet, no container runtime and no kube-proxy.
//
// An [Agent] registers a Node, keeps it alive (a Lease in kube-node-lease
// renewed every 10 s, NodeStatus refreshed as often), binds every pending
// pod to it, and runs each pod bound to it as local processes: one network
// namespace per pod with an address on a bridge the harness made, the
// container's entrypoint taken from a map of image name to binary. So
// Deployments, ReplicaSets, EndpointSlices and the HPA work unchanged.
//
//	a, err := nodeagent.New(nodeagent.Config{
//		Client: client, NodeName: "nemesis-e2e",
//		Bridge: "nmbr0", Gateway: netip.MustParseAddr("10.244.0.1"),
//		PodCIDR: netip.MustParsePrefix("10.244.0.0/16"),
//		Images:  map[string]string{"nemesis:e2e": "/abs/bin/nemesis"},
//		StateDir: dir, NamePrefix: "nme2e", Logger: logger, ...
//	})
//	if err := nodeagent.Cleanup("nme2e"); err != nil { ... } // leftovers of a run that died
//	err = a.Run(ctx) // until ctx ends; kills and removes all it made
//
// # Pods
//
// A pod's network namespace is named <prefix>-<hash of its UID>; a veth pair
// joins it to the bridge, the host end named <prefix><hash> (15 characters
// at most), the pod end eth0 with an address of the pod CIDR (from .1.1
// upward: the first /24 is left to the harness) and a default route through
// the gateway. Pods with spec.hostNetwork run in the host's namespace with
// the gateway as their address.
//
// Each container is a process in its own process group, started as
//
//	ip netns exec <netns> unshare --mount --uts -- sh -c '<mounts>; exec "$@"' sh <binary> <args>
//
// with a clean environment (the container's env, the in-cluster
// KUBERNETES_SERVICE_HOST/PORT, PATH, HOSTNAME), its working directory, and
// stdout and stderr appended to <StateDir>/<ns>_<pod>_<container>.log. The
// private mount namespace carries bind mounts of the pod's volumes at their
// mount paths, and the UTS namespace the pod's hostname. The mount paths are
// made on the host's file system if missing, and stay there.
//
// Volumes: configMap, secret, projected (configMap, secret, downwardAPI,
// serviceAccountToken sources), downwardAPI, emptyDir and hostPath. They are
// written the kubelet's way, a timestamped directory behind a "..data"
// symlink swapped with one rename, and rewritten within a second of a
// ConfigMap or Secret edit. A pod that mounts nothing at
// /var/run/secrets/kubernetes.io/serviceaccount (the fake clientset has no
// admission plugin to add it) gets a token from the TokenRequest API, the
// cluster CA and its namespace mounted there, unless it or its service
// account opts out, so rest.InClusterConfig works unchanged.
//
// Probes: httpGet and tcpSocket startup, liveness and readiness probes with
// all their timing fields; exec and grpc probes are reported unsupported
// with a Warning event and count as succeeding. Until a readiness probe
// first succeeds it runs every 100 ms rather than every period, standing
// in for the extra probes the kubelet triggers while a started container
// is not ready, so a new pod turns Ready within about 100 ms of its
// readiness endpoint. Containers restart after
// exiting (restartPolicy Always and OnFailure) or failing liveness, with a
// back-off from 1 s doubling to 10 s. Init containers run one after another
// before the others; sidecar init containers (restartPolicy Always) are
// rejected with a Warning event.
//
// A pod given a deletionTimestamp runs its containers' preStop hooks (sleep,
// httpGet), gets SIGTERM, SIGKILL at the end of its grace period, loses its
// network namespace and is then deleted with grace period 0 and a UID
// precondition, as the kubelet does. Readiness keeps being probed and
// reported until then.
//
// Status is written with UpdateStatus, changing only the fields the kubelet
// owns and keeping other conditions, right after every change (a readiness
// change is written within milliseconds of the probe that saw it).
//
// The agent watches all pods, ConfigMaps and Secrets of the cluster. If it
// dies without cleaning up, its containers get SIGKILL (parent-death
// signal) but its namespaces and veths stay until [Cleanup].
//
// # Not supported
//
// Resources (no cgroups), security contexts (everything runs as root, on
// the host's file system), hostPorts, Service environment variables,
// cluster DNS, exec and grpc probes, exec lifecycle hooks, postStart hooks,
// sidecar init containers, ephemeral containers, persistent volumes and
// other volume types than those above, subPathExpr, resourceFieldRef,
// image changes of a running pod, IPv6, and scheduling constraints other
// than nodeSelector (every pending pod whose nodeSelector matches is bound
// to the one node, whatever its affinity, taints or resources).
package nodeagent
