#!/usr/bin/env bash
# The Helm chart's whole lifecycle on a real Kubernetes API server (the local
# control plane of scripts/kube.sh: etcd, kube-apiserver, kube-controller-manager):
#
#   * the CRDs the chart can use, from their official versioned definitions
#     (fetched as Go modules): Traefik, Prometheus Operator (ServiceMonitor,
#     PrometheusRule), Gateway API, KEDA
#   * a namespace that enforces the "restricted" Pod Security Standard
#   * for each values file (values.yaml, values-minikube.yaml,
#     values-production.yaml) and for the KEDA / Gateway API / operator-access
#     variants: strict server-side validation of every object, `helm install`
#     with no warning, the Pods the controller-manager creates for the
#     Deployments, StatefulSets and Jobs admitted (no FailedCreate), `helm
#     upgrade` with a changed config value (the pod template checksum changes,
#     no immutable-field error), `helm rollback`, and `helm uninstall` leaving
#     nothing behind (by label across every namespaced kind, and by name for
#     every object of the render, hooks included)
#   * the prediction-service's model: the release's ConfigMap holds the bytes of
#     models/wine-forest.onnx, and the Pod the controller made mounts it read-only
#     at the MODEL_PATH directory; predictionService.model.existingConfigMap swaps it
#   * RBAC of operatorAccess with the real authorizer (allowed and denied)
#   * values the chart must refuse (latest / empty image tags) and the
#     production image path
#
# There is no kubelet: Pods are created and admitted but never run. Helm waits
# for its hook Jobs to complete, so this script stands in for the kubelet for
# Job pods only: it marks them Succeeded through the status subresource, and the
# real Job controller completes the Job.
#
# Usage: scripts/check-chart-cluster.sh
#        ONLY=minikube CHART=/tmp/changed-chart scripts/check-chart-cluster.sh
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/deploy-tools.sh
. "$REPO_ROOT/scripts/lib/deploy-tools.sh"
cd "$REPO_ROOT"

# CHART and ONLY (one lifecycle name) are for trying a changed chart quickly.
CHART="${CHART:-charts/platform}"
ONLY="${ONLY:-}"
NS=platform-chart-test
RELEASE=platform
# CRD sources: Go modules at pinned releases (Traefik at the version docker-compose.yml runs).
TRAEFIK_VERSION="$(sed -n 's/^ *image: traefik:\(v[0-9.]*\)$/\1/p' docker-compose.yml | head -n1)"
PROMETHEUS_OPERATOR_VERSION=v0.85.0
GATEWAY_API_VERSION=v1.6.3
KEDA_VERSION=v2.21.0

WORK="$(mktemp -d)"
STANDIN_PID=""
cleanup() {
  if [ -n "$STANDIN_PID" ]; then kill "$STANDIN_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
started=$SECONDS
checks=0
pass() { checks=$((checks + 1)); log "ok: $*"; }

[ -n "$TRAEFIK_VERSION" ] || die "cannot read Traefik's version from docker-compose.yml"

step "control plane (scripts/kube.sh up) and tools"
eval "$(scripts/kube.sh up)"
ensure_helm
command -v python3 >/dev/null || ensure_python
k() { kubectl "$@"; }
log "$(k version 2>/dev/null | tr '\n' ' ')"

# module_dir MODULE@VERSION: the module's source directory in Go's module cache.
module_dir() {
  ensure_go
  local json dir
  json=$(cd "$WORK" && GOFLAGS=-mod=mod go mod download -json "$1") || die "go mod download $1 failed"
  dir=$(python3 -c 'import json,sys; print(json.load(sys.stdin).get("Dir",""))' <<<"$json")
  [ -d "$dir" ] || die "go mod download $1 gave no source directory"
  echo "$dir"
}

install_crds() {
  step "CRDs from their official releases"
  local traefik promop gateway keda
  traefik=$(module_dir "github.com/traefik/traefik/v3@$TRAEFIK_VERSION")
  promop=$(module_dir "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION")
  gateway=$(module_dir "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION")
  keda=$(module_dir "github.com/kedacore/keda/v2@$KEDA_VERSION")
  local files=(
    "$traefik/docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml"
    "$promop/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"
    "$promop/example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml"
    "$keda/config/crd/bases/keda.sh_scaledobjects.yaml"
    "$keda/config/crd/bases/keda.sh_triggerauthentications.yaml"
  )
  local f
  for f in "$gateway"/config/crd/standard/gateway.networking.k8s.io_*.yaml; do
    case $f in *_vap_*) continue ;; esac # a ValidatingAdmissionPolicy, not a CRD
    files+=("$f")
  done
  for f in "${files[@]}"; do
    [ -f "$f" ] || die "CRD file missing in its module: $f"
    k apply --server-side --force-conflicts -f "$f" >/dev/null || die "the API server refused $f"
  done
  k wait --for condition=Established --timeout=60s \
    crd/middlewares.traefik.io crd/servicemonitors.monitoring.coreos.com crd/prometheusrules.monitoring.coreos.com \
    crd/httproutes.gateway.networking.k8s.io crd/scaledobjects.keda.sh crd/triggerauthentications.keda.sh >/dev/null \
    || die "the CRDs did not become established"
  pass "CRDs: Traefik $TRAEFIK_VERSION, Prometheus Operator $PROMETHEUS_OPERATOR_VERSION, Gateway API $GATEWAY_API_VERSION, KEDA $KEDA_VERSION"
}

fresh_namespace() {
  if k get namespace "$NS" >/dev/null 2>&1; then
    k delete namespace "$NS" --wait=true --timeout=120s >/dev/null || die "cannot delete the old namespace $NS"
  fi
  k create namespace "$NS" >/dev/null
  k label namespace "$NS" \
    pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/enforce-version=latest \
    pod-security.kubernetes.io/warn=restricted pod-security.kubernetes.io/audit=restricted >/dev/null
}

# The kubelet's stand-in for Job pods only: a pending Job pod is marked
# Succeeded (its container terminated with exit code 0) through the status
# subresource; the Job controller then completes the Job, which Helm waits for.
standin_complete_job_pods() {
  local pod patch
  while :; do
    for pod in $(k get pods -n "$NS" -l batch.kubernetes.io/job-name \
      -o jsonpath='{range .items[?(@.status.phase=="Pending")]}{.metadata.name}{" "}{end}' 2>/dev/null); do
      local container
      container=$(k get pod -n "$NS" "$pod" -o jsonpath='{.spec.containers[0].name}' 2>/dev/null) || continue
      local image
      image=$(k get pod -n "$NS" "$pod" -o jsonpath='{.spec.containers[0].image}' 2>/dev/null) || continue
      local now
      now=$(date -u +%FT%TZ)
      patch=$(printf '{"status":{"phase":"Succeeded","conditions":[{"type":"Ready","status":"False","reason":"PodCompleted","lastTransitionTime":"%s"}],"containerStatuses":[{"name":"%s","image":"%s","imageID":"","ready":false,"restartCount":0,"started":false,"state":{"terminated":{"exitCode":0,"reason":"Completed","startedAt":"%s","finishedAt":"%s"}}}]}}' \
        "$now" "$container" "$image" "$now" "$now")
      k patch pod -n "$NS" "$pod" --subresource=status --type=merge -p "$patch" >/dev/null 2>&1 || true
    done
    sleep 1
  done
}

start_standin() {
  standin_complete_job_pods &
  STANDIN_PID=$!
}

# helm_run LOG ARGS...: run helm, keep its output, fail on any warning.
helm_run() {
  local out=$1
  shift
  if ! helm "$@" >"$out" 2>&1; then
    cat "$out" >&2
    die "helm $1 failed"
  fi
  # client-go's reflector logs "Warning: watch ended with error" when Helm's --wait
  # closes its watch: that is Helm's own watch ending, not a warning of the API server.
  if grep -Ei 'warning|deprecated' "$out" | grep -qv 'reflector.go.*watch ended with error'; then
    cat "$out" >&2
    die "helm $1 printed a warning (deprecated API or unknown field)"
  fi
}

# pod_template_checksum KIND NAME: the config checksum annotation of a pod template.
pod_template_checksum() {
  k get "$1" "$2" -n "$NS" -o jsonpath='{.spec.template.metadata.annotations.checksum/config}'
}

# render_objects RENDER: "kind name" of every object in a helm template output.
render_objects() {
  python3 - "$1" <<'PY'
import sys
kind = name = None
in_meta = False
for line in open(sys.argv[1]):
    if line.startswith("---"):
        if kind and name:
            print(kind, name)
        kind = name = None
        in_meta = False
        continue
    if line.startswith("kind: "):
        kind = line.split(":", 1)[1].strip()
    elif line.startswith("metadata:"):
        in_meta = True
    elif in_meta and line.startswith("  name: ") and name is None:
        name = line.split(":", 1)[1].strip().strip('"')
    elif line and not line.startswith(" ") and not line.startswith("metadata:"):
        in_meta = False
if kind and name:
    print(kind, name)
PY
}

check_workload_pods() {
  local label="$1" deadline=$((SECONDS + 60)) missing
  while :; do
    missing=""
    local d
    for d in $(k get deployments,statefulsets -n "$NS" -l "$label" -o name); do
      local sel
      # shellcheck disable=SC2016  # a Go template, not shell
      sel=$(k get "$d" -n "$NS" -o go-template='{{range $k, $v := .spec.selector.matchLabels}}{{$k}}={{$v}},{{end}}')
      sel=${sel%,}
      [ -n "$(k get pods -n "$NS" -l "$sel" -o name)" ] || missing="$missing $d"
    done
    [ -z "$missing" ] && break
    ((SECONDS < deadline)) || die "no Pod was created for:$missing ($(k get events -n "$NS" --field-selector reason=FailedCreate -o jsonpath='{.items[*].message}'))"
    sleep 1
  done
  local failed
  failed=$(k get events -n "$NS" --field-selector reason=FailedCreate -o jsonpath='{range .items[*]}{.involvedObject.kind}/{.involvedObject.name}: {.message}{"\n"}{end}')
  [ -z "$failed" ] || die "the controllers could not create Pods (PodSecurity or validation):
$failed"
}

# lifecycle NAME HELM_VALUE_ARGS...: install, check, upgrade, rollback, uninstall.
lifecycle() {
  local name=$1
  shift
  local values=("$@")
  if [ -n "$ONLY" ] && [ "$ONLY" != "$name" ]; then return; fi
  step "lifecycle: $name"
  fresh_namespace
  if [ "$name" = production ]; then
    # values-production.yaml reads credentials and the TLS certificate from Secrets it does not create.
    k create secret generic platform-credentials -n "$NS" \
      --from-literal=admin-token=test-admin-token \
      --from-literal=user-service-database-url=mysql://user_service:pw@mysql.internal:3306/users \
      --from-literal=notification-service-database-url=mysql://notification_service:pw@mysql.internal:3306/notifications \
      --from-literal=kafka-properties=security.protocol=SASL_SSL,sasl.mechanism=SCRAM-SHA-512,sasl.username=platform,sasl.password=pw >/dev/null
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=platform.example.com \
      -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null
    k create secret tls platform-tls -n "$NS" --cert "$WORK/tls.crt" --key "$WORK/tls.key" >/dev/null
  fi
  local render="$WORK/$name.yaml"
  helm template "$RELEASE" "$CHART" -n "$NS" "${values[@]}" >"$render" || die "helm template failed ($name)"

  # Every object, CRD-backed ones included, through the API server's validation
  # and defaulting with unknown fields refused (nothing is stored).
  # The `helm test` Pod needs its ServiceAccount to exist (admission looks it up),
  # so the test hook objects go second: the ServiceAccount for real, then the Pod.
  helm template "$RELEASE" "$CHART" -n "$NS" "${values[@]}" --skip-tests >"$WORK/no-tests.yaml"
  k create --dry-run=server --validate=strict -n "$NS" -f "$WORK/no-tests.yaml" >"$WORK/dry-run.log" 2>&1 \
    || { cat "$WORK/dry-run.log" >&2; die "the API server refused objects of the $name render"; }
  if grep -qi warning "$WORK/dry-run.log"; then cat "$WORK/dry-run.log" >&2; die "warnings for the $name render"; fi
  local objects
  objects=$(grep -c . "$WORK/dry-run.log")
  helm template "$RELEASE" "$CHART" -n "$NS" "${values[@]}" --show-only templates/tests/test-registration.yaml >"$WORK/test-hook.yaml"
  python3 - "$WORK" <<'PY'
import sys
work = sys.argv[1]
docs = [d for d in open(f"{work}/test-hook.yaml").read().split("\n---") if "kind:" in d]
open(f"{work}/test-sa.yaml", "w").write("\n---".join(d for d in docs if "kind: ServiceAccount" in d))
open(f"{work}/test-pod.yaml", "w").write("\n---".join(d for d in docs if "kind: Pod" in d))
PY
  k create -n "$NS" -f "$WORK/test-sa.yaml" >/dev/null || die "the test ServiceAccount was refused"
  k create --dry-run=server --validate=strict -n "$NS" -f "$WORK/test-pod.yaml" >"$WORK/dry-run-test.log" 2>&1 \
    || { cat "$WORK/dry-run-test.log" >&2; die "the API server refused the helm test Pod ($name)"; }
  k delete -n "$NS" -f "$WORK/test-sa.yaml" --wait=true >/dev/null
  pass "$name: $((objects + 2)) objects accepted by a strict server-side dry run (the helm test Pod admitted as a Pod)"

  helm_run "$WORK/install.log" install "$RELEASE" "$CHART" -n "$NS" "${values[@]}" --timeout 3m
  pass "$name: helm install, no warning"
  check_workload_pods "app.kubernetes.io/instance=$RELEASE"
  pass "$name: the controllers created a Pod for every Deployment/StatefulSet under restricted PodSecurity ($(k get pods -n "$NS" --no-headers | wc -l) pods, no FailedCreate)"

  local deploy="deployment/$RELEASE-notification-service" before after
  before=$(pod_template_checksum deployment "$RELEASE-notification-service")
  [ -n "$before" ] || die "$deploy has no checksum/config annotation"
  helm_run "$WORK/upgrade.log" upgrade "$RELEASE" "$CHART" -n "$NS" "${values[@]}" --set config.rustLog=debug --timeout 3m
  after=$(pod_template_checksum deployment "$RELEASE-notification-service")
  [ "$before" != "$after" ] || die "helm upgrade with a changed config value left the pod template checksum unchanged"
  check_workload_pods "app.kubernetes.io/instance=$RELEASE"
  pass "$name: helm upgrade (config.rustLog) changed checksum/config, no immutable-field error"

  helm_run "$WORK/rollback.log" rollback "$RELEASE" 1 -n "$NS" --timeout 3m
  [ "$(pod_template_checksum deployment "$RELEASE-notification-service")" = "$before" ] \
    || die "helm rollback did not restore the pod template"
  pass "$name: helm rollback to revision 1"

  check_model "$name"
  if [ "$name" = keda ]; then check_keda; fi
  if [ "$name" = operator-access ]; then check_rbac; fi

  helm_run "$WORK/uninstall.log" uninstall "$RELEASE" -n "$NS" --wait --timeout 3m
  check_nothing_left "$name" "$render"
}

check_nothing_left() {
  local name=$1 render=$2 kinds leftovers deadline=$((SECONDS + 90))
  kinds=$(k api-resources --verbs=list,delete --namespaced -o name | grep -v '^events' | paste -sd, -)
  # Pods and PVCs go through the garbage collector after their owners: poll.
  while :; do
    leftovers=$(k get "$kinds" -n "$NS" -l "app.kubernetes.io/instance=$RELEASE" -o name 2>/dev/null)
    [ -z "$leftovers" ] && break
    ((SECONDS < deadline)) || die "helm uninstall left objects of the release ($name):
$leftovers"
    sleep 1
  done
  local kind obj n=0
  while read -r kind obj; do
    n=$((n + 1))
    if k get "$kind" "$obj" -n "$NS" >/dev/null 2>&1; then
      die "helm uninstall left $kind/$obj ($name)"
    fi
  done < <(render_objects "$render")
  pass "$name: helm uninstall left nothing (by label across every namespaced kind; $n objects of the render, hooks included, by name)"
}

# check_model NAME: the model ConfigMap as stored by the API server is the committed
# model, and the prediction-service Pod created by the controller mounts it.
check_model() {
  local name=$1 want got pod
  want=$(sha256sum <models/wine-forest.onnx | cut -d' ' -f1)
  got=$(k get configmap "$RELEASE-model" -n "$NS" -o jsonpath='{.binaryData.wine-forest\.onnx}' | base64 -d | sha256sum | cut -d' ' -f1)
  [ "$got" = "$want" ] || die "$name: ConfigMap $RELEASE-model does not hold models/wine-forest.onnx (sha256 $got, want $want)"
  pod=$(k get pods -n "$NS" -l app.kubernetes.io/component=prediction-service -o jsonpath='{.items[0].metadata.name}' 2>/dev/null || true)
  [ -n "$pod" ] || die "$name: no prediction-service Pod"
  # shellcheck disable=SC2016  # a Go template, not shell
  got=$(k get pod "$pod" -n "$NS" -o go-template='{{range .spec.volumes}}{{if .configMap}}{{.name}}={{.configMap.name}} {{end}}{{end}}|{{range (index .spec.containers 0).volumeMounts}}{{if eq .name "model"}}{{.mountPath}} ro={{.readOnly}}{{end}}{{end}}|{{range (index .spec.containers 0).env}}{{if eq .name "MODEL_PATH"}}{{.value}}{{end}}{{end}}')
  [ "$got" = "model=$RELEASE-model |/models ro=true|/models/wine-forest.onnx" ] \
    || die "$name: the prediction-service Pod does not mount the model as expected: $got"
  pass "$name: ConfigMap $RELEASE-model holds models/wine-forest.onnx (sha256 ${want:0:12}), mounted read-only by $pod at MODEL_PATH's directory"
}

check_keda() {
  k get scaledobject "$RELEASE-notification-service" -n "$NS" >/dev/null || die "no ScaledObject with autoscaling.keda.enabled"
  k get triggerauthentication "$RELEASE-notification-service" -n "$NS" >/dev/null \
    || die "no TriggerAuthentication although secrets.kafkaProperties sets SASL_SSL"
  if k get hpa "$RELEASE-notification-service" -n "$NS" >/dev/null 2>&1; then
    die "the notification-service still has the chart's HPA next to KEDA's ScaledObject"
  fi
  k get hpa "$RELEASE-user-service" -n "$NS" >/dev/null || die "the user-service lost its HPA"
  local sasl
  sasl=$(k get secret "$RELEASE-keda-kafka" -n "$NS" -o jsonpath='{.data.sasl}' | base64 -d)
  [ "$sasl" = scram_sha512 ] || die "the KEDA Kafka credentials say sasl=$sasl, expected scram_sha512"
  pass "keda: ScaledObject + TriggerAuthentication (SASL_SSL/SCRAM-SHA-512) accepted by KEDA's CRDs, no HPA for the notification-service"
}

check_rbac() {
  local as="system:serviceaccount:$NS:$RELEASE-operator" secret="$RELEASE" verb_res
  local allowed=(
    "get deployments.apps" "list deployments.apps" "get statefulsets.apps" "list statefulsets.apps"
    "get pods" "list pods" "get services" "list services" "get secrets/$secret"
    "get pods --subresource=proxy" "create pods --subresource=proxy"
    "get services --subresource=proxy" "create services --subresource=proxy"
  )
  local denied=(
    "list secrets" "get secrets/other-secret" "watch secrets" "delete pods" "create pods" "patch deployments.apps"
    "update deployments.apps --subresource=scale" "create pods --subresource=exec" "get pods --subresource=log"
    "delete services --subresource=proxy" "create deployments.apps" "get configmaps"
  )
  for verb_res in "${allowed[@]}"; do
    # shellcheck disable=SC2086  # verb, resource and flags are separate words
    [ "$(k auth can-i $verb_res -n "$NS" --as "$as" 2>/dev/null)" = yes ] || die "RBAC: $as cannot '$verb_res' but platformctl needs it"
  done
  for verb_res in "${denied[@]}"; do
    # shellcheck disable=SC2086
    [ "$(k auth can-i $verb_res -n "$NS" --as "$as" 2>/dev/null)" = no ] || die "RBAC: $as may '$verb_res', more than platformctl needs"
  done
  [ "$(k auth can-i list pods -n kube-system --as "$as" 2>/dev/null)" = no ] || die "RBAC: the operator Role reaches other namespaces"
  pass "operator RBAC: ${#allowed[@]} needed permissions allowed, $((${#denied[@]} + 1)) others denied (real authorizer)"
}

check_enforcement() {
  step "restricted PodSecurity is enforced in the test namespace (controls)"
  fresh_namespace
  local deadline=$((SECONDS + 60))
  until k get serviceaccount default -n "$NS" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "the controller-manager created no default ServiceAccount in $NS"
    sleep 0.5
  done
  # The user-service's pod template as a Pod, as is and with privilege escalation allowed.
  helm template "$RELEASE" "$CHART" -n "$NS" --show-only templates/deployment.yaml >"$WORK/deployments.yaml"
  k create --dry-run=client -f "$WORK/deployments.yaml" -o json >"$WORK/deployments.json"
  python3 - "$WORK" <<'PY'
import copy, json, sys
work = sys.argv[1]
text, items, pos = open(f"{work}/deployments.json").read(), [], 0
while text[pos:].strip():  # kubectl prints one JSON document per object
    obj, end = json.JSONDecoder().raw_decode(text, pos)
    items.append(obj)
    pos = end
    while pos < len(text) and text[pos].isspace():
        pos += 1
template = items[0]["spec"]["template"]
pod = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "pod-security-control", "labels": template["metadata"]["labels"]},
       "spec": template["spec"]}
pod["spec"].pop("serviceAccountName", None)  # the release's ServiceAccount does not exist here
json.dump(pod, open(f"{work}/good-pod.json", "w"))
bad = copy.deepcopy(pod)
bad["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
json.dump(bad, open(f"{work}/bad-pod.json", "w"))
PY
  k create --dry-run=server -n "$NS" -f "$WORK/good-pod.json" >/dev/null 2>"$WORK/good.log" \
    || { cat "$WORK/good.log" >&2; die "the chart's own pod template is refused as a Pod"; }
  if k create --dry-run=server -n "$NS" -f "$WORK/bad-pod.json" >/dev/null 2>"$WORK/bad.log"; then
    die "a Pod that allows privilege escalation was admitted: PodSecurity is not enforced"
  fi
  grep -q 'violates PodSecurity "restricted' "$WORK/bad.log" || { cat "$WORK/bad.log" >&2; die "the bad Pod was refused for another reason"; }
  pass "the user-service pod template is admitted as a Pod; with allowPrivilegeEscalation it is refused (violates PodSecurity restricted)"
}

check_values_refused() {
  step "values the chart refuses, and image references"
  local bad
  for bad in image.tag=latest image.tag= userService.image.tag=latest notificationService.image.tag= \
    predictionService.image.tag=latest predictionService.image.tag= 'userService.image.tag=1.0 bad' \
    predictionService.kafka.requestTopic= 'predictionService.model.fileName=../x' ; do
    if helm template "$RELEASE" "$CHART" --set "$bad" >/dev/null 2>"$WORK/refused.log"; then
      die "the chart accepted --set $bad (the schema must refuse latest and empty tags)"
    fi
    grep -q 'values don.t meet the specifications of the schema' "$WORK/refused.log" \
      || { cat "$WORK/refused.log" >&2; die "--set $bad failed for another reason than the schema"; }
  done
  helm template "$RELEASE" "$CHART" --set image.tag=1.4.2 --set notificationService.image.tag=1.4.3 \
    --set predictionService.image.tag=1.4.4 >"$WORK/tags.yaml" || die "a pinned tag was refused"
  grep -q 'image: "platform/user-service:1.4.2"' "$WORK/tags.yaml" || die "image.tag is not used"
  grep -q 'image: "platform/notification-service:1.4.3"' "$WORK/tags.yaml" || die "a service's own tag is not used"
  grep -q 'image: "platform/prediction-service:1.4.4"' "$WORK/tags.yaml" || die "the prediction-service's own tag is not used"
  pass "schema refuses latest, empty and malformed tags of the platform images and bad topic or model names; pinned tags are used"

  helm template "$RELEASE" "$CHART" --set predictionService.model.existingConfigMap=my-model \
    --set predictionService.model.fileName=forest-v2.onnx >"$WORK/model.yaml" || die "an existing model ConfigMap was refused"
  if grep -q "name: $RELEASE-model\$" "$WORK/model.yaml"; then die "the chart renders its model ConfigMap next to an existing one"; fi
  if ! grep -q 'name: my-model$' "$WORK/model.yaml" || ! grep -q 'value: /models/forest-v2.onnx$' "$WORK/model.yaml"; then
    die "predictionService.model.existingConfigMap / fileName are not used"
  fi
  pass "predictionService.model.existingConfigMap replaces the chart's model ConfigMap (MODEL_PATH /models/forest-v2.onnx)"

  # Without the prediction-service nothing of it is rendered (route, topics, scrape
  # target, test), and the other services render exactly as with it.
  helm template "$RELEASE" "$CHART" -f "$CHART/values-minikube.yaml" --set predictionService.enabled=false \
    >"$WORK/no-predictions.yaml" || die "predictionService.enabled=false was refused"
  # The shared dashboard and alert rules keep their prediction panels and rule (no data
  # then); every other mention is a leftover.
  python3 - "$WORK/no-predictions.yaml" <<'PY' || die "predictionService.enabled=false still renders parts of the prediction-service"
import re, sys, yaml
left = []
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if not doc:
        continue
    for key in ("platform.json", "alerts.yml"):
        (doc.get("data") or {}).pop(key, None)
    text = yaml.safe_dump(doc)
    if re.search("predict", text, re.I):
        left.append(f'{doc["kind"]}/{doc["metadata"]["name"]}')
if left:
    print("[deploy] still rendered with predictionService.enabled=false:", ", ".join(left))
sys.exit(1 if left else 0)
PY
  pass "predictionService.enabled=false renders nothing of the prediction-service"

  helm template "$RELEASE" "$CHART" -f "$CHART/values-production.yaml" --set image.tag=1.4.2 >"$WORK/prod.yaml"
  local images
  images=$(sed -n 's/^ *image: "\(.*\)"$/\1/p' "$WORK/prod.yaml" | grep -E 'user-service|notification-service|prediction-service' | sort -u | paste -sd' ' -)
  [ "$images" = "registry.example.internal/platform/notification-service:1.4.2 registry.example.internal/platform/prediction-service:1.4.2 registry.example.internal/platform/user-service:1.4.2" ] \
    || die "production image references are wrong: $images"
  pass "production images: $images"
}

install_crds
check_values_refused
check_enforcement
start_standin
lifecycle default -f "$CHART/values.yaml"
lifecycle minikube -f "$CHART/values-minikube.yaml"
lifecycle production -f "$CHART/values-production.yaml"
lifecycle keda -f "$CHART/values.yaml" --set autoscaling.keda.enabled=true \
  --set-string 'secrets.kafkaProperties=security.protocol=SASL_SSL\,sasl.mechanism=SCRAM-SHA-512\,sasl.username=platform\,sasl.password=pw'
lifecycle gateway-api -f "$CHART/values.yaml" --set ingress.enabled=false --set gatewayApi.enabled=true \
  --set 'gatewayApi.parentRefs[0].name=traefik-gateway' --set 'gatewayApi.parentRefs[0].namespace=traefik' \
  --set serviceMonitor.enabled=true --set prometheusRule.enabled=true
lifecycle operator-access -f "$CHART/values-minikube.yaml" --set operatorAccess.enabled=true
k delete namespace "$NS" --wait=false >/dev/null
printf '\n[deploy] chart lifecycle on the API server: %d passed, 0 failed in %ss\n' "$checks" "$((SECONDS - started))"
