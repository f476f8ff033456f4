// Package kube holds the project's small pieces of Kubernetes access: the
// endpoints of Services, read from EndpointSlices through client-go
// informers; the scale targets of KEDA ScaledObjects, for the scaler's
// built-in variables current and ready; and the client configuration of
// the command line.
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
// # Scale targets
//
// [ScaleTargets] answers, for a ScaledObject named by its namespace and
// name, how many replicas its scale target has and how many of its pods
// are ready:
//
//	clients, err := kube.NewScaleTargetClients(restConfig)
//	st := kube.NewScaleTargets(clients, kube.ScaleTargetsOptions{Logger: logger, Registerer: reg})
//	go st.Run(ctx)
//	replicas, ready, err := st.Get(ctx, "ml", "chat", true)
//
// The ScaledObject (keda.sh/v1alpha1) comes from an informer; its
// spec.scaleTargetRef names the target (apiVersion default apps/v1, kind
// default Deployment, as in KEDA). replicas is spec.replicas of the
// target's scale subresource, so any kind KEDA can scale works: Deployments,
// StatefulSets, Argo Rollouts, other custom resources with a scale
// subresource. The scale subresource cannot be watched, so it is read with a
// GET, at most once per ScaleTTL (1 s) per target however many evaluations
// ask; a discovery-backed RESTMapper maps the kind to its resource. ready
// counts the pods of the ScaledObject's namespace that match the scale
// subresource's status.selector, have condition Ready=True and no
// deletionTimestamp, from a pod informer that starts with the first Get that
// asks for ready pods. Cached ScaledObjects and pods are trimmed to the few
// fields read.
//
// Informers run only for the namespaces asked about, and stop after
// IdleAfter (15 min) without a Get. Whatever cannot be read (no such
// ScaledObject, no scale subresource, a list or get denied, the Timeout of
// 5 s) is an error, never a zero.
//
// # RBAC for scale targets
//
// In every namespace whose ScaledObjects use current
// or ready:
//
//	rules:
//	- apiGroups: [keda.sh]
//	  resources: [scaledobjects]
//	  verbs: [get, list, watch]
//	- apiGroups: [apps]                  # and the group of every other kind scaled
//	  resources: [deployments/scale, statefulsets/scale]
//	  verbs: [get]
//	- apiGroups: [""]
//	  resources: [pods]                  # only where ready is used
//	  verbs: [list, watch]
//
// and, cluster-wide, the API discovery that every authenticated client has
// (system:discovery). As above, a Role per namespace or one ClusterRole; no
// cluster-scoped list or watch is made.
//
// # Metrics
//
// Registered by [NewServiceEndpoints]:
//
//	nemesis_kube_subscribed_services   gauge: Services with at least one subscriber
//	nemesis_kube_watched_namespaces    gauge: namespaces with subscriptions (and so informers)
//	nemesis_kube_endpoint_updates_total counter: calls of subscribers' update functions
//
// Registered by [NewScaleTargets]:
//
//	nemesis_kube_scale_target_namespaces gauge: namespaces whose ScaledObjects (and pods) are watched
//	nemesis_kube_scale_reads_total{result} counter: GETs of scale subresources (success, error)
package kube
