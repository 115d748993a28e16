#!/usr/bin/env bash
# Validates everything the platform deploys with, offline, with the real tools:
#
#   Helm chart      helm lint --strict and helm template with the default,
#                   minikube and production values
#   Kubernetes      what an API server does not check (tools/k8s-validate):
#                   platform policy, references inside the render, the minikube
#                   resource budget (2 CPUs / 4 GiB of requests); kube-score best
#                   practices. What the server checks (schemas, CRDs, Pod
#                   Security, RBAC) runs on a real one: scripts/check-chart-cluster.sh
#   k8s/            equals a fresh render of the chart
#   compose         the Compose Specification via compose-go (tools/compose-validate),
#                   healthchecks, pinned tags, memory limits; the Traefik file;
#                   every service image built from the Dockerfile is a target of
#                   it, scraped by prometheus.yml, routed by Traefik with its
#                   prefix stripped, and finds its topics (and its model) there
#   Helm model      the chart's copy of the model equals models/wine-forest.onnx
#   Dockerfile      hadolint
#   Prometheus      promtool check config / check rules / test rules
#   Grafana         the dashboards parse and every target has an expression
#   shell scripts   shellcheck
#
# Tools are installed on first use (see scripts/lib/deploy-tools.sh) into
# ${PLATFORM_CACHE:-$HOME/.cache/platform} and reused afterwards.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/deploy-tools.sh
. "$REPO_ROOT/scripts/lib/deploy-tools.sh"
cd "$REPO_ROOT"

CHART=charts/platform
RENDERS="$(mktemp -d)"
trap 'rm -rf "$RENDERS"' EXIT
# Name of the Secrets the production values expect to exist in the cluster.
PRODUCTION_EXTERNAL_SECRETS=platform-credentials,platform-tls
MINIKUBE_MAX_CPU=2
MINIKUBE_MAX_MEMORY=4Gi
started=$SECONDS


values_files() { printf '%s\n' default minikube production; }
values_arg() {
  case $1 in
    default) echo "$CHART/values.yaml" ;;
    *) echo "$CHART/values-$1.yaml" ;;
  esac
}

install_tools() {
  step "tools (cache: $PLATFORM_CACHE)"
  ensure_python
  python3 -c 'import yaml' 2>/dev/null || apt_install python3-yaml
  ensure_helm
  ensure_kube_score
  build_own_tool k8s-validate
  build_own_tool compose-validate
  ensure_promtool
  ensure_shellcheck
  ensure_hadolint
  log "helm $(helm version --template '{{.Version}}'), kube-score $KUBE_SCORE_VERSION, $(promtool --version 2>&1 | head -1 | cut -d' ' -f1-3), shellcheck $(shellcheck --version | sed -n 's/^version: //p'), $(hadolint --version)"
}

check_chart() {
  step "Helm chart: lint --strict and template"
  local v
  for v in $(values_files); do
    log "helm lint --strict ($v values)"
    helm lint --strict "$CHART" -f "$(values_arg "$v")" --namespace platform >"$RENDERS/lint-$v.log" 2>&1 \
      || { cat "$RENDERS/lint-$v.log" >&2; die "helm lint failed with the $v values"; }
    log "helm template ($v values)"
    helm template platform "$CHART" -f "$(values_arg "$v")" --namespace platform >"$RENDERS/$v.yaml" \
      || die "helm template failed with the $v values"
  done
  log "helm template (Gateway API variant: HTTPRoutes instead of the Ingress)"
  helm template platform "$CHART" --namespace platform -f "$CHART/values.yaml" \
    --set ingress.enabled=false --set gatewayApi.enabled=true \
    --set 'gatewayApi.parentRefs[0].name=traefik-gateway' --set 'gatewayApi.parentRefs[0].namespace=traefik' \
    >"$RENDERS/gateway.yaml" || die "helm template failed for the Gateway API variant"
  log "values validation rejects a broken configuration"
  if helm template platform "$CHART" --set mysql.enabled=false >/dev/null 2>&1; then
    die "the chart rendered without any database configured: its values validation is broken"
  fi
}

check_kubernetes() {
  step "Kubernetes: platform policy, references and budget (tools/k8s-validate)"
  local v
  for v in $(values_files); do
    log "k8s-validate ($v render)"
    case $v in
      minikube)
        log "  resource budget: requests <= $MINIKUBE_MAX_CPU CPUs / $MINIKUBE_MAX_MEMORY"
        k8s-validate -quiet -max-cpu "$MINIKUBE_MAX_CPU" -max-memory "$MINIKUBE_MAX_MEMORY" "$RENDERS/$v.yaml" \
          || die "the minikube render is invalid or over budget" ;;
      production)
        k8s-validate -quiet -external-secrets "$PRODUCTION_EXTERNAL_SECRETS" "$RENDERS/$v.yaml" \
          || die "the production render is invalid" ;;
      *)
        k8s-validate -quiet "$RENDERS/$v.yaml" || die "the $v render is invalid" ;;
    esac
  done
  log "k8s-validate (Gateway API variant)"
  k8s-validate -quiet "$RENDERS/gateway.yaml" || die "the Gateway API variant is invalid"
  log "k8s-validate (k8s/namespace.yaml, k8s/platform.yaml)"
  k8s-validate -quiet k8s/namespace.yaml k8s/platform.yaml || die "k8s/ manifests are invalid"
}

# kube_score_args RENDER: the flags .kube-score-ignore selects for a render.
kube_score_args() {
  local render=$1 kind arg scope ignored=""
  [ -f .kube-score-ignore ] || die "missing .kube-score-ignore"
  while read -r kind arg scope; do
    case $kind in ''|'#'*) continue ;; esac
    [ -n "$scope" ] || die ".kube-score-ignore: '$kind $arg' has no render scope"
    [ "$scope" = all ] || [ "$scope" = "$render" ] || continue
    case $kind in
      flag) echo "$arg" ;;
      ignore-test) ignored="${ignored:+$ignored,}$arg" ;;
      *) die ".kube-score-ignore: unknown setting '$kind'" ;;
    esac
  done < .kube-score-ignore
  if [ -n "$ignored" ]; then echo "--ignore-test=$ignored"; fi
}

check_kube_score() {
  step "Kubernetes best practices (kube-score)"
  local v out args
  for v in $(values_files); do
    mapfile -t args < <(kube_score_args "$v")
    log "kube-score ($v render) ${args[*]}"
    if ! out=$(kube-score score --output-format ci --exit-one-on-warning "${args[@]}" "$RENDERS/$v.yaml" 2>&1); then
      grep -v '^\[OK\]\|^\[SKIPPED\]' <<<"$out" >&2 || true
      die "kube-score found problems in the $v render (fix them, or add a justified exception)"
    fi
  done
}

check_k8s_dir() {
  step "k8s/ is a fresh render of the chart"
  [ -f k8s/platform.yaml ] || die "k8s/platform.yaml is missing: run scripts/render-k8s.sh"
  [ -f k8s/namespace.yaml ] || die "k8s/namespace.yaml is missing"
  [ -x k8s/deploy.sh ] || die "k8s/deploy.sh is missing or not executable"
  scripts/render-k8s.sh --check
}

# Published host ports of docker-compose.yml: service:variable:default:container port.
# Every one is "127.0.0.1:${VARIABLE:-default}:port"; the list is the table in the
# compose file's header and in docs/deployment.md.
COMPOSE_HOST_PORTS=(
  traefik:GATEWAY_PORT:80:80
  traefik:TRAEFIK_DASHBOARD_PORT:8080:8080
  user-service:USER_SERVICE_PORT:8000:8000
  notification-service:NOTIFICATION_SERVICE_PORT:8001:8001
  prediction-service:PREDICTION_SERVICE_PORT:8002:8002
  mysql:MYSQL_PORT:3306:3306
  kafka:KAFKA_PORT:9094:9094
  prometheus:PROMETHEUS_PORT:9090:9090
  grafana:GRAFANA_PORT:3000:3000
  adminer:ADMINER_PORT:8081:8080
)

check_compose() {
  step "docker compose: Compose Specification, healthchecks, pinned images, Traefik routes"
  compose-validate docker-compose.yml deploy/traefik/dynamic.yml || die "docker-compose.yml is invalid"
  check_compose_ports
  check_compose_services
  step "Dockerfile (hadolint)"
  hadolint --config .hadolint.yaml Dockerfile || die "hadolint found problems in the Dockerfile"
  log "Dockerfile passes hadolint"
}

# The host ports interpolate: with no environment every port is its default, and
# with every variable set (as a user would export them) every port moves, Kafka
# advertises the moved port, and nothing else is published.
check_compose_ports() {
  step "docker compose: host ports from variables (defaults and an override)"
  local entry service var default target overrides=() spec_default="" spec_override="" port=20001
  for entry in "${COMPOSE_HOST_PORTS[@]}"; do
    IFS=: read -r service var default target <<<"$entry"
    overrides+=(-env "$var=$port")
    spec_default+="$service 127.0.0.1:$default:$target"$'\n'
    spec_override+="$service 127.0.0.1:$port:$target"$'\n'
    grep -q "^#.*\b$var\b" docker-compose.yml || die "$var is not documented in docker-compose.yml's header"
    grep -q "\b$var\b" docs/deployment.md || die "$var is not documented in docs/deployment.md"
    port=$((port + 1))
  done
  compose-validate -config docker-compose.yml >"$RENDERS/compose-defaults.json" 2>/dev/null \
    || die "docker-compose.yml does not load with an empty environment"
  compose-validate "${overrides[@]}" -config docker-compose.yml >"$RENDERS/compose-override.json" 2>/dev/null \
    || die "docker-compose.yml does not load with the host-port variables set"
  python3 - "$RENDERS/compose-defaults.json" "$spec_default" "$RENDERS/compose-override.json" "$spec_override" <<'PY' \
    || die "the compose host ports do not interpolate as documented"
import json, sys

def published(path):
    project = json.load(open(path))
    out = set()
    for name, svc in project["services"].items():
        for p in svc.get("ports") or []:
            out.add(f'{name} {p.get("host_ip", "")}:{p.get("published", "")}:{p["target"]}')
    kafka_env = project["services"]["kafka"].get("environment") or {}
    return out, kafka_env.get("KAFKA_ADVERTISED_LISTENERS", "")

failed = False
for label, path, spec in (("defaults", sys.argv[1], sys.argv[2]), ("override", sys.argv[3], sys.argv[4])):
    want = {line for line in spec.splitlines() if line}
    got, advertised = published(path)
    for missing in sorted(want - got):
        print(f"[deploy] {label}: expected published port {missing} is missing"); failed = True
    for extra in sorted(got - want):
        print(f"[deploy] {label}: published port {extra} is not in the documented table"); failed = True
    kafka = next(l for l in want if l.startswith("kafka "))
    host_port = kafka.split()[1].split(":")[1]
    if f"EXTERNAL://localhost:{host_port}" not in advertised:
        print(f"[deploy] {label}: Kafka advertises {advertised!r}, not localhost:{host_port}"); failed = True
    if not failed:
        print(f"[deploy] {label}: {len(got)} published ports as documented, Kafka advertises localhost:{host_port}")
sys.exit(1 if failed else 0)
PY
}

# What ties the compose services to the rest of the stack, which compose-go cannot
# know: each image built from the Dockerfile is one of its targets (the binary of the
# same name, built by the builder stage); each long-running one (HTTP_ADDR) is
# scraped by prometheus.yml as job <service> at <service>:<port>, routed by the
# Traefik file at a /api/... prefix that the router's stripPrefix middleware removes,
# health-checked with its own --healthcheck, and has its Kafka topics created by
# kafka-init before it starts; a MODEL_PATH lies in a read-only bind mount of a file
# that exists in the repository.
check_compose_services() {
  step "docker compose: Dockerfile targets, scrape jobs, gateway routes, topics, model mount"
  python3 - "$RENDERS/compose-defaults.json" Dockerfile prometheus.yml deploy/traefik/dynamic.yml "$REPO_ROOT" <<'PY' \
    || die "the compose services are not wired to the Dockerfile, Prometheus, Traefik or Kafka as they must be"
import json, os, re, sys, yaml

project = json.load(open(sys.argv[1]))
dockerfile = open(sys.argv[2]).read()
prometheus = yaml.safe_load(open(sys.argv[3]))
traefik = yaml.safe_load(open(sys.argv[4]))["http"]
repo = sys.argv[5]
services = project["services"]
stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", dockerfile, re.M | re.I))
build = re.search(r"cargo build --release --locked((?:[\s\\]*-p \S+)+)", dockerfile)
built = set(re.findall(r"-p (\S+)", build.group(1))) if build else set()
jobs = {j["job_name"]: [t for s in j.get("static_configs", []) for t in s["targets"]]
        for j in prometheus["scrape_configs"]}
init = services.get("kafka-init", {})
# `platformctl topics create [TOPIC...]`: the named topics, or KAFKA_TOPIC when none.
init_args = (init.get("entrypoint") or []) + (init.get("command") or [])
init_named = init_args[init_args.index("create") + 1:] if "create" in init_args else []
init_topics = set(init_named) or {(init.get("environment") or {}).get("KAFKA_TOPIC")}
problems, checked = [], []

for name, svc in sorted(services.items()):
    target = (svc.get("build") or {}).get("target")
    if not target:
        continue
    if os.path.basename((svc.get("build") or {}).get("dockerfile", "")) != "Dockerfile":
        problems.append(f"{name}: not built from the Dockerfile")
    if target not in stages:
        problems.append(f"{name}: build target {target} is not a stage of the Dockerfile")
    if target not in built or f"/out/{target}" not in dockerfile:
        problems.append(f"{name}: the builder stage does not build and copy out the {target} binary")
    env = svc.get("environment") or {}
    if "HTTP_ADDR" not in env:
        continue  # a one-shot job (kafka-init)
    port = env["HTTP_ADDR"].rsplit(":", 1)[1]
    address = f"{name}:{port}"
    if jobs.get(name) != [address]:
        problems.append(f"{name}: prometheus.yml has no job {name} scraping {address} (has {jobs.get(name)})")
    if svc.get("healthcheck", {}).get("test") != ["CMD", f"/usr/local/bin/{target}", "--healthcheck"]:
        problems.append(f"{name}: the healthcheck is not the binary's own --healthcheck")
    backends = [s for s, v in traefik["services"].items()
                if any(srv["url"] == f"http://{address}" for srv in v["loadBalancer"]["servers"])]
    routers = [(r, v) for r, v in traefik["routers"].items() if v["service"] in backends]
    if not routers:
        problems.append(f"{name}: no Traefik router reaches http://{address}")
    for router, r in routers:
        m = re.fullmatch(r"PathPrefix\(`(/api/[a-z-]+)`\)", r["rule"])
        if not m:
            problems.append(f"{name}: router {router} does not route a /api/... prefix ({r['rule']})")
            continue
        stripped = [p for mw in r.get("middlewares", [])
                    for p in ((traefik["middlewares"][mw].get("stripPrefix") or {}).get("prefixes") or [])]
        if m.group(1) not in stripped:
            problems.append(f"{name}: router {router} does not strip its prefix {m.group(1)}")
        else:
            checked.append(f"{name} at {m.group(1)}")
    topics = [env[k] for k in ("KAFKA_TOPIC", "KAFKA_RESULT_TOPIC") if k in env]
    for topic in topics:
        if topic not in init_topics:
            problems.append(f"{name}: kafka-init does not create its topic {topic} (creates {sorted(t for t in init_topics if t)})")
    if topics and (svc.get("depends_on") or {}).get("kafka-init", {}).get("condition") != "service_completed_successfully":
        problems.append(f"{name}: does not wait for kafka-init to complete")
    if topics and (svc.get("depends_on") or {}).get("kafka", {}).get("condition") != "service_healthy":
        problems.append(f"{name}: does not wait for a healthy kafka")
    if "MODEL_PATH" in env:
        model = env["MODEL_PATH"]
        mounts = [v for v in svc.get("volumes") or []
                  if v["type"] == "bind" and model.startswith(v["target"].rstrip("/") + "/")]
        if not mounts:
            problems.append(f"{name}: MODEL_PATH {model} is not inside a bind mount")
        for v in mounts:
            if not v.get("read_only"):
                problems.append(f"{name}: the model mount {v['target']} is not read-only")
            host = os.path.join(v["source"], model[len(v["target"].rstrip("/")) + 1:])
            if not os.path.isfile(host):
                problems.append(f"{name}: MODEL_PATH {model} is {host} on the host, which does not exist")
            else:
                checked.append(f"{name} model {os.path.relpath(host, repo)} (read-only)")

for p in problems:
    print(f"[deploy] {p}")
if not problems:
    print(f"[deploy] compose services wired: {', '.join(checked)}")
sys.exit(1 if problems else 0)
PY
}

# Helm reads files only inside the chart: the chart ships a copy of the committed
# model, which must be the same bytes.
check_chart_model() {
  step "the chart's model is models/wine-forest.onnx"
  cmp -s models/wine-forest.onnx "$CHART/files/wine-forest.onnx" \
    || die "$CHART/files/wine-forest.onnx differs from models/wine-forest.onnx: cp models/wine-forest.onnx $CHART/files/ and run scripts/render-k8s.sh"
  log "$CHART/files/wine-forest.onnx equals models/wine-forest.onnx ($(sha256sum <models/wine-forest.onnx | cut -c1-12))"
}

check_prometheus() {
  step "Prometheus configuration and alert rules (promtool)"
  promtool check config prometheus.yml || die "promtool rejected prometheus.yml"
  promtool check rules charts/platform/files/alerts.yml || die "promtool rejected the alert rules"
  promtool test rules charts/platform/files/alerts_test.yml || die "the alert rules fail their unit tests"
  log "the chart's bundled Prometheus configuration (minikube render)"
  local dir="$RENDERS/configmaps" config
  k8s-validate -quiet -dump-configmaps "$dir" "$RENDERS/minikube.yaml" >/dev/null \
    || die "cannot extract the ConfigMaps of the minikube render"
  config="$dir/platform-prometheus/prometheus.yml"
  [ -f "$config" ] || die "the minikube render has no platform-prometheus ConfigMap with prometheus.yml"
  # In the pod the rules are mounted next to the configuration.
  sed -i 's|/etc/prometheus/alerts.yml|alerts.yml|' "$config"
  promtool check config "$config" || die "promtool rejected the chart's Prometheus configuration"
}

check_dashboards() {
  step "Grafana dashboards"
  python3 - "$CHART"/dashboards/*.json <<'PY' || die "dashboard check failed"
import json, sys

def panels(items):
    for p in items:
        yield p
        yield from panels(p.get("panels", []))

failed = False
for path in sys.argv[1:]:
    try:
        with open(path) as f:
            dash = json.load(f)
    except (OSError, ValueError) as e:
        print(f"[deploy] {path}: not valid JSON: {e}"); failed = True; continue
    problems = []
    if not dash.get("uid") or not dash.get("title"):
        problems.append("dashboard needs a uid and a title")
    names = {v.get("name") for v in dash.get("templating", {}).get("list", [])}
    if "datasource" not in names:
        problems.append("no templated 'datasource' variable")
    ids, count = set(), 0
    for p in panels(dash.get("panels", [])):
        if p.get("type") == "row":
            continue
        count += 1
        title = p.get("title") or f"panel {p.get('id')}"
        if p.get("id") in ids:
            problems.append(f"{title}: duplicate panel id {p.get('id')}")
        ids.add(p.get("id"))
        targets = p.get("targets") or []
        if not targets:
            problems.append(f"{title}: no targets")
        for t in targets:
            if not str(t.get("expr", "")).strip():
                problems.append(f"{title}: target {t.get('refId')} has an empty expr")
    for msg in problems:
        print(f"[deploy] {path}: {msg}")
    failed |= bool(problems)
    if not problems:
        print(f"[deploy] {path}: {count} panels, every target has an expression")
sys.exit(1 if failed else 0)
PY
}

check_shell() {
  step "shell scripts (shellcheck)"
  local scripts=(scripts/check-deploy.sh scripts/check-dashboards.sh scripts/render-k8s.sh scripts/lib/common.sh scripts/lib/deploy-tools.sh scripts/fuzz-api.sh scripts/soak.sh scripts/bench.sh k8s/deploy.sh generate-test-data.sh scripts/cross-arm64.sh scripts/lib/cross-env.sh scripts/kube.sh scripts/check-chart-cluster.sh scripts/gateway.sh scripts/check-gateway.sh scripts/check-gateway-kube.sh scripts/tract-parity.sh
    scripts/docker.sh scripts/images.sh scripts/check-compose.sh
    tools/images/*/build.sh tools/images/*/*entrypoint.sh tools/images/kafka/docker/run tools/images/kafka/bin/*.sh)
  local s
  for s in "${scripts[@]}"; do
    [ -f "$s" ] || die "missing $s"
    bash -n "$s" || die "$s has a syntax error"
  done
  shellcheck -x "${scripts[@]}" || die "shellcheck found problems"
  log "${#scripts[@]} scripts pass bash -n and shellcheck"
}

main() {
  install_tools
  check_chart_model
  check_chart
  check_kubernetes
  check_kube_score
  check_k8s_dir
  check_compose
  check_prometheus
  check_dashboards
  check_shell
  printf '\n[deploy] all deployment checks passed in %ss\n' "$((SECONDS - started))"
}

main "$@"
