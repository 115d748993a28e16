{{/*
Helpers are prefixed with "platform." so they never collide with a parent
chart's helpers when this chart is used as a dependency.
*/}}

{{/* Chart name, overridable with nameOverride. */}}
{{- define "platform.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Fully qualified release name. Component suffixes (-user-service, ...) are
appended to it, so it is truncated to leave room for them.
*/}}
{{- define "platform.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Chart label value. */}}
{{- define "platform.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels common to every object. */}}
{{- define "platform.labels" -}}
helm.sh/chart: {{ include "platform.chart" . }}
app.kubernetes.io/name: {{ include "platform.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: platform
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component. Usage: include "platform.selectorLabels" (list $ "user-service") */}}
{{- define "platform.selectorLabels" -}}
{{- $ctx := index . 0 -}}
app.kubernetes.io/name: {{ include "platform.name" $ctx }}
app.kubernetes.io/instance: {{ $ctx.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* All labels of one component. Usage: include "platform.componentLabels" (list $ "user-service") */}}
{{- define "platform.componentLabels" -}}
{{ include "platform.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* Labels that identify any pod of this release (used by NetworkPolicies). */}}
{{- define "platform.releasePodLabels" -}}
app.kubernetes.io/name: {{ include "platform.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
The services. Everything per-service in the templates is driven by this list,
so the services are always rendered the same way. `database`: the service has a
database (its URL, admin token and migrations); `model`: it serves the mounted ONNX
model; `pathValue`: the key under .Values.ingress of its gateway path prefix.
*/}}
{{- define "platform.apps" -}}
- key: userService
  name: user-service
  port: 8000
  database: true
  pathValue: userServicePath
- key: notificationService
  name: notification-service
  port: 8001
  database: true
  pathValue: notificationServicePath
{{- if .Values.predictionService.enabled }}
- key: predictionService
  name: prediction-service
  port: 8002
  database: false
  model: true
  pathValue: predictionServicePath
{{- end }}
{{- end -}}

{{/* Name of the ConfigMap holding the prediction-service's model. */}}
{{- define "platform.modelConfigMap" -}}
{{- .Values.predictionService.model.existingConfigMap | default (printf "%s-model" (include "platform.fullname" .)) -}}
{{- end -}}

{{/* Image reference of a service. Usage: include "platform.appImage" (list $ $values) */}}
{{- define "platform.appImage" -}}
{{- $ctx := index . 0 -}}
{{- $img := (index . 1).image -}}
{{- $registry := $ctx.Values.image.registry -}}
{{- $tag := $img.tag | default $ctx.Values.image.tag | default $ctx.Chart.AppVersion -}}
{{- if $registry -}}
{{- printf "%s/%s:%s" $registry $img.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" $img.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* Image reference of a third-party component (MySQL, Kafka, ...). */}}
{{- define "platform.image" -}}
{{- printf "%s:%s" .repository .tag -}}
{{- end -}}

{{/* Name of the Secret holding credentials: the user's existingSecret or the chart's. */}}
{{- define "platform.secretName" -}}
{{- .Values.secrets.existingSecret | default (include "platform.fullname" .) -}}
{{- end -}}

{{/* Kafka bootstrap servers: the bundled broker or the external cluster. */}}
{{- define "platform.kafkaBootstrap" -}}
{{- if .Values.kafka.enabled -}}
{{- printf "%s-kafka.%s.svc.cluster.local:9092" (include "platform.fullname" .) .Release.Namespace -}}
{{- else -}}
{{- .Values.externalKafka.bootstrapServers -}}
{{- end -}}
{{- end -}}

{{/*
Hook phases of the migrations. The bundled MySQL is an ordinary release object
that does not exist before install, so against it the migrations run
post-install (the services also migrate at start in that mode); against an
external database they run pre-install so new pods find a ready schema. Both
run pre-upgrade. Topic creation is decided in job-topics.yaml.
*/}}
{{- define "platform.migrationsHook" -}}
{{- if .Values.mysql.enabled -}}post-install,pre-upgrade{{- else -}}pre-install,pre-upgrade{{- end -}}
{{- end -}}

{{/* True ("true") when some hook Job runs pre-install. */}}
{{- define "platform.anyPreInstallHook" -}}
{{- if or (and .Values.migrations.enabled (not .Values.mysql.enabled)) (and .Values.topics.enabled (not .Values.kafka.enabled)) -}}true{{- end -}}
{{- end -}}

{{/*
Secret a hook Job reads. Pre-install hooks run before the chart's own Secret
exists, so they read the hook Secret (rendered from explicit values only);
post-install hooks and existingSecret users read the main Secret.
Usage: include "platform.hookSecretName" (list $ "pre-install,pre-upgrade")
*/}}
{{- define "platform.hookSecretName" -}}
{{- $ctx := index . 0 -}}
{{- if or $ctx.Values.secrets.existingSecret (hasPrefix "post-install" (index . 1)) -}}
{{- include "platform.secretName" $ctx -}}
{{- else -}}
{{- printf "%s-hooks" (include "platform.fullname" $ctx) -}}
{{- end -}}
{{- end -}}

{{/*
A generated credential that survives upgrades: an explicit value wins, then the
value already stored in the release's Secret, then a new random one.
Usage: include "platform.credential" (dict "ctx" $ "key" "admin-token" "value" .Values.secrets.adminToken)
*/}}
{{- define "platform.credential" -}}
{{- if .value -}}
{{- .value -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace (include "platform.fullname" .ctx) -}}
{{- if and $existing (hasKey $existing.data .key) -}}
{{- index $existing.data .key | b64dec -}}
{{- else -}}
{{- randAlphaNum 32 -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Pod-level security context shared by the platform's pods (restricted profile). */}}
{{- define "platform.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext -}}
{{- end -}}

{{/* Container-level security context shared by the platform's containers. */}}
{{- define "platform.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext -}}
{{- end -}}

{{/* Scheduling fields of a component values block. */}}
{{- define "platform.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
Fail early, with a message naming the value to set, instead of rendering
objects that cannot work.
*/}}
{{- define "platform.validateValues" -}}
{{- $errors := list -}}
{{- if and (not .Values.mysql.enabled) (not .Values.secrets.existingSecret) -}}
{{- if or (not .Values.secrets.userServiceDatabaseUrl) (not .Values.secrets.notificationServiceDatabaseUrl) -}}
{{- $errors = append $errors "mysql.enabled=false needs the external databases: set secrets.userServiceDatabaseUrl and secrets.notificationServiceDatabaseUrl, or secrets.existingSecret" -}}
{{- end -}}
{{- end -}}
{{- if and (not .Values.kafka.enabled) (not .Values.externalKafka.bootstrapServers) -}}
{{- $errors = append $errors "kafka.enabled=false needs externalKafka.bootstrapServers" -}}
{{- end -}}
{{- if and .Values.mysql.enabled .Values.secrets.existingSecret -}}
{{- $errors = append $errors "secrets.existingSecret is for external databases; the bundled MySQL (mysql.enabled=true) keeps its generated credentials in the chart's Secret" -}}
{{- end -}}
{{- if and .Values.monitoring.enabled .Values.monitoring.grafana.enabled .Values.secrets.existingSecret -}}
{{- $errors = append $errors "monitoring.enabled=true (bundled Grafana) keeps its admin password in the chart's Secret; it cannot be combined with secrets.existingSecret" -}}
{{- end -}}
{{- if and .Values.monitoring.enabled .Values.monitoring.grafana.enabled (not .Values.grafanaDashboards.enabled) -}}
{{- $errors = append $errors "monitoring.enabled=true provisions the bundled Grafana from the dashboard ConfigMaps: keep grafanaDashboards.enabled=true" -}}
{{- end -}}
{{- range $app := include "platform.apps" . | fromYamlArray -}}
{{- $v := index $.Values $app.key -}}
{{- if and $v.autoscaling.enabled (gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) -}}
{{- $errors = append $errors (printf "%s.autoscaling.minReplicas must not exceed maxReplicas" $app.key) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.autoscaling.keda.enabled (gt (int .Values.autoscaling.keda.minReplicaCount) (int .Values.autoscaling.keda.maxReplicaCount)) -}}
{{- $errors = append $errors "autoscaling.keda.minReplicaCount must not exceed maxReplicaCount" -}}
{{- end -}}
{{- if and .Values.gatewayApi.enabled (not .Values.gatewayApi.parentRefs) -}}
{{- $errors = append $errors "gatewayApi.enabled=true needs gatewayApi.parentRefs (the Gateway to attach the routes to)" -}}
{{- end -}}
{{- if $errors -}}
{{- fail (printf "\n\nVALUES VALIDATION:\n  - %s\n" (join "\n  - " $errors)) -}}
{{- end -}}
{{- end -}}

{{/*
KEDA Kafka scaler authentication derived from secrets.kafkaProperties
(librdkafka's comma-separated key=value form): a YAML map of KEDA's parameter
names (sasl, username, password, tls), empty when the brokers need neither.
*/}}
{{- define "platform.kedaKafkaAuth" -}}
{{- $props := dict -}}
{{- range $pair := splitList "," (.Values.secrets.kafkaProperties | default "") -}}
{{- $kv := regexSplit "=" (trim $pair) 2 -}}
{{- if eq (len $kv) 2 -}}
{{- $_ := set $props (trim (index $kv 0)) (trim (index $kv 1)) -}}
{{- end -}}
{{- end -}}
{{- $protocol := get $props "security.protocol" | upper -}}
{{- $auth := dict -}}
{{- if has $protocol (list "SSL" "SASL_SSL") -}}
{{- $_ := set $auth "tls" "enable" -}}
{{- end -}}
{{- if has $protocol (list "SASL_PLAINTEXT" "SASL_SSL") -}}
{{- $mechanisms := dict "PLAIN" "plaintext" "SCRAM-SHA-256" "scram_sha256" "SCRAM-SHA-512" "scram_sha512" -}}
{{- $mechanism := get $props "sasl.mechanism" | default "PLAIN" | upper -}}
{{- $sasl := get $mechanisms $mechanism -}}
{{- if not $sasl -}}
{{- fail (printf "autoscaling.keda: sasl.mechanism=%s in secrets.kafkaProperties has no KEDA Kafka scaler equivalent (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512); use autoscaling.keda.kafkaAuthSecret" $mechanism) -}}
{{- end -}}
{{- $_ := set $auth "sasl" $sasl -}}
{{- $_ := set $auth "username" (get $props "sasl.username") -}}
{{- $_ := set $auth "password" (get $props "sasl.password") -}}
{{- end -}}
{{- if $auth -}}
{{- toYaml $auth -}}
{{- end -}}
{{- end -}}

{{/* "true" when KEDA scales this service (the notification-service with autoscaling.keda.enabled). Usage: include "platform.scaledByKeda" (list $ "notificationService") */}}
{{- define "platform.scaledByKeda" -}}
{{- if and (index . 0).Values.autoscaling.keda.enabled (eq (index . 1) "notificationService") -}}true{{- end -}}
{{- end -}}
