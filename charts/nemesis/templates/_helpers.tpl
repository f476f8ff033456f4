{{/*
The chart's name, and the prefix of every resource name.
*/}}
{{- define "nemesis.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "nemesis.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "nemesis.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Names of the components' objects. Resource names stay under 63
characters with the longest suffix ("-activator-admin").
*/}}
{{- define "nemesis.scaler.fullname" -}}
{{- printf "%s-scaler" (include "nemesis.fullname" . | trunc 46 | trimSuffix "-") }}
{{- end }}

{{- define "nemesis.activator.fullname" -}}
{{- printf "%s-activator" (include "nemesis.fullname" . | trunc 46 | trimSuffix "-") }}
{{- end }}

{{- define "nemesis.activator.adminServiceName" -}}
{{- printf "%s-admin" (include "nemesis.activator.fullname" .) }}
{{- end }}

{{- define "nemesis.rules.configMapName" -}}
{{- printf "%s-rules" (include "nemesis.fullname" . | trunc 46 | trimSuffix "-") }}
{{- end }}

{{- define "nemesis.activator.configMapName" -}}
{{- if .Values.activator.existingConfigMap.name }}
{{- .Values.activator.existingConfigMap.name }}
{{- else }}
{{- include "nemesis.activator.fullname" . }}
{{- end }}
{{- end }}

{{- define "nemesis.scaler.serviceAccountName" -}}
{{- if .Values.scaler.serviceAccount.create }}
{{- default (include "nemesis.scaler.fullname" .) .Values.scaler.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.scaler.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "nemesis.activator.serviceAccountName" -}}
{{- if .Values.activator.serviceAccount.create }}
{{- default (include "nemesis.activator.fullname" .) .Values.activator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.activator.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Standard labels. "nemesis.labels" takes the root context; the component
variants take (dict "ctx" $ "component" "scaler").
*/}}
{{- define "nemesis.labels" -}}
helm.sh/chart: {{ include "nemesis.chart" . }}
{{ include "nemesis.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: nemesis
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "nemesis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nemesis.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "nemesis.componentLabels" -}}
{{ include "nemesis.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "nemesis.componentSelectorLabels" -}}
{{ include "nemesis.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
The one image of both components.
*/}}
{{- define "nemesis.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The scaler's --activator-service: the value given, else the chart's own
activator admin Service when the activator is installed, else nothing.
*/}}
{{- define "nemesis.scaler.activatorService" -}}
{{- if .Values.scaler.activatorService }}
{{- .Values.scaler.activatorService }}
{{- else if .Values.activator.enabled }}
{{- printf "%s/%s:%d" .Release.Namespace (include "nemesis.activator.adminServiceName" .) (int .Values.activator.ports.admin) }}
{{- end }}
{{- end }}

{{/*
Prometheus flags of a component: (dict "ctx" $ "component" "scaler").
Basic auth and TLS exist only on the scaler.
*/}}
{{- define "nemesis.prometheusArgs" -}}
{{- $p := .ctx.Values.prometheus }}
- --prometheus-url={{ required "prometheus.url is required" $p.url }}
- --prometheus-timeout={{ $p.timeout }}
{{- range $name, $value := $p.headers }}
- {{ printf "--prometheus-header=%s: %s" $name $value | quote }}
{{- end }}
{{- with $p.bearerTokenSecret.name }}
- --prometheus-bearer-token-file=/etc/nemesis/prometheus-token/{{ $p.bearerTokenSecret.key }}
{{- end }}
{{- if eq .component "scaler" }}
{{- with $p.basicAuth.username }}
- --prometheus-basic-auth-username={{ . }}
{{- end }}
{{- with $p.basicAuth.passwordSecret.name }}
- --prometheus-basic-auth-password-file=/etc/nemesis/prometheus-basic-auth/{{ $p.basicAuth.passwordSecret.key }}
{{- end }}
{{- if $p.tls.secretName }}
{{- with $p.tls.caKey }}
- --prometheus-ca-file=/etc/nemesis/prometheus-tls/{{ . }}
{{- end }}
{{- if $p.tls.clientCert }}
- --prometheus-cert-file=/etc/nemesis/prometheus-tls/tls.crt
- --prometheus-key-file=/etc/nemesis/prometheus-tls/tls.key
{{- end }}
{{- end }}
{{- if $p.tls.insecureSkipVerify }}
- --prometheus-insecure-skip-verify
{{- end }}
{{- end }}
{{- end }}

{{/*
Volumes and mounts for the Prometheus credentials of a component.
*/}}
{{- define "nemesis.prometheusVolumes" -}}
{{- $p := .ctx.Values.prometheus }}
{{- with $p.bearerTokenSecret.name }}
- name: prometheus-token
  secret:
    secretName: {{ . }}
{{- end }}
{{- if eq .component "scaler" }}
{{- with $p.basicAuth.passwordSecret.name }}
- name: prometheus-basic-auth
  secret:
    secretName: {{ . }}
{{- end }}
{{- with $p.tls.secretName }}
- name: prometheus-tls
  secret:
    secretName: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{- define "nemesis.prometheusVolumeMounts" -}}
{{- $p := .ctx.Values.prometheus }}
{{- if $p.bearerTokenSecret.name }}
- name: prometheus-token
  mountPath: /etc/nemesis/prometheus-token
  readOnly: true
{{- end }}
{{- if eq .component "scaler" }}
{{- if $p.basicAuth.passwordSecret.name }}
- name: prometheus-basic-auth
  mountPath: /etc/nemesis/prometheus-basic-auth
  readOnly: true
{{- end }}
{{- if $p.tls.secretName }}
- name: prometheus-tls
  mountPath: /etc/nemesis/prometheus-tls
  readOnly: true
{{- end }}
{{- end }}
{{- end }}

{{/*
Environment of a component: the pod's identity, the OTEL_* variables when
an OTLP endpoint is set, then the component's own env.
*/}}
{{- define "nemesis.env" -}}
{{- $o := .ctx.Values.otel }}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- if $o.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $o.endpoint | quote }}
{{- with $o.protocol }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ . | quote }}
{{- end }}
{{- if $o.insecure }}
- name: OTEL_EXPORTER_OTLP_INSECURE
  value: "true"
{{- end }}
{{- with $o.headersSecret.name }}
- name: OTEL_EXPORTER_OTLP_HEADERS
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $o.headersSecret.key }}
{{- end }}
{{- with $o.sampler }}
- name: OTEL_TRACES_SAMPLER
  value: {{ . | quote }}
{{- end }}
{{- with $o.samplerArg }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ . | quote }}
{{- end }}
{{- $attrs := list "k8s.namespace.name=$(POD_NAMESPACE)" "k8s.pod.name=$(POD_NAME)" }}
{{- range $k, $v := $o.resourceAttributes }}
{{- $attrs = append $attrs (printf "%s=%s" $k $v) }}
{{- end }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ join "," $attrs | quote }}
{{- end }}
{{- with .values.env }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Prometheus scrape annotations of a component's pods:
(dict "ctx" $ "port" 8080).
*/}}
{{- define "nemesis.scrapeAnnotations" -}}
{{- if .ctx.Values.metrics.podAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end }}

{{/*
A rule file of the rule sets given, keys in the order of docs/rules.md
(name first) rather than toYaml's alphabetical one, so that the ConfigMap
reads like a rule file; keys outside that order follow, and the scaler
reports the ones it does not know.
*/}}
{{- define "nemesis.ruleFile" -}}
{{- $order := list "name" "description" "queries" "replicas" "active" "min" "max" "onError" "staleAfter" -}}
ruleSets:
{{- range $rs := . }}
{{- if hasKey $rs "name" }}
  - name: {{ toYaml $rs.name }}
{{- else }}
  -
{{- end }}
{{- range $k := rest $order }}
{{- if hasKey $rs $k }}
{{- toYaml (dict $k (index $rs $k)) | nindent 4 }}
{{- end }}
{{- end }}
{{- with omit $rs "name" "description" "queries" "replicas" "active" "min" "max" "onError" "staleAfter" }}
{{- toYaml . | nindent 4 }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The NetworkPolicy peer of the Prometheus that scrapes both components.
*/}}
{{- define "nemesis.networkPolicy.prometheusPeer" -}}
{{- $p := .Values.networkPolicy.prometheus -}}
- namespaceSelector:
    {{- toYaml $p.namespaceSelector | nindent 4 }}
  podSelector:
    {{- toYaml $p.podSelector | nindent 4 }}
{{- end }}
