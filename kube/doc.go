// Package kube holds the project's small pieces of Kubernetes access: the
// endpoints of Services, read from EndpointSlices through client-go
// informers, and the client configuration of the command line.
//
// # Endpoints
//
// [ServiceEndpoints] tells subscribers which addresses of a Service take new
// requests (ready) and which only finish the requests they already have
// (terminating). Updates are pushed from informer events the moment the API
// server reports a change; nothing polls.
//
//	se := kube.NewServiceEndpoints(client, logger, prometheus.DefaultRegisterer)
//	cancel := se.Subscribe("ml", "chat-llm", 8000, func(ready, terminating []string) {
//		// "10.0.0.7:8080", "[fd00::7]:8080", ...
//	})
//	defer cancel()
//	go se.Run(ctx)
//	err := se.WaitForSync(ctx)
//
// Informers run only for the namespaces that have subscribers: one shared
// informer factory per namespace, started with its first subscription and
// stopped with its last. EndpointSlices are listed with a label selector on
// kubernetes.io/service-name, so slices that belong to no Service are not
// even cached.
//
// # RBAC
//
// In every namespace that holds a subscribed Service:
//
//	rules:
//	- apiGroups: [""]
//	  resources: [services]
//	  verbs: [get, list, watch]
//	- apiGroups: [discovery.k8s.io]
//	  resources: [endpointslices]
//	  verbs: [get, list, watch]
//
// as a Role and RoleBinding per namespace, or as one ClusterRole with a
// ClusterRoleBinding. No cluster-scoped list or watch is ever made.
//
// # Metrics
//
// Registered by [NewServiceEndpoints]:
//
//	nemesis_kube_subscribed_services   gauge: Services with at least one subscriber
//	nemesis_kube_watched_namespaces    gauge: namespaces with subscriptions (and so informers)
//	nemesis_kube_endpoint_updates_total counter: calls of subscribers' update functions
package kube
