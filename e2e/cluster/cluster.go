package cluster

import (
	"context"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Provider starts a cluster for the e2e suite and the demo.
type Provider interface {
	// Start brings a cluster up with KEDA and Prometheus installed. The
	// cluster runs until Stop, which removes everything Start made.
	Start(ctx context.Context) (*Cluster, error)
}

// Cluster is a running cluster.
type Cluster struct {
	// Kubeconfig is an admin kubeconfig file.
	Kubeconfig string
	// Kubectl is a kubectl command for the cluster: the local provider's
	// is built with (and of the same release as) its control plane; kind's
	// is the one on PATH.
	Kubectl string
	// Config is the admin client configuration; Client a clientset of it.
	Config *rest.Config
	Client kubernetes.Interface
	// PrometheusURL is Prometheus' base URL as seen from the test process.
	PrometheusURL string
	// PodPrometheusURL is Prometheus' base URL as seen from pods.
	PodPrometheusURL string
	// Images maps the container images the suite's manifests use to what
	// runs them (binaries for the local provider).
	Images map[string]string
	// Dir holds the cluster's state and logs.
	Dir string

	// ServiceAddress returns a host:port on the test machine that
	// forwards TCP connections to the ready endpoints of a Service port,
	// as kube-proxy would; it lasts as long as the cluster.
	ServiceAddress func(ctx context.Context, namespace, name string, port int32) (string, error)
	// Logs returns the output of a pod's container.
	Logs func(ctx context.Context, namespace, pod, container string) ([]byte, error)
	// StopPrometheus stops Prometheus (an outage); StartPrometheus starts
	// it again on the same data and address and waits until it is ready.
	StopPrometheus  func()
	StartPrometheus func(ctx context.Context) error
	// Stop tears the cluster down.
	Stop func()
}
