#!/usr/bin/env bash
# The container walkthrough on a real Docker engine: the three service images built from
# the Dockerfile as a user builds them and checked, then docs/deployment.md's
# "docker compose" section on the unmodified docker-compose.yml, faults under load
# counted by id, and `docker compose down -v` leaving nothing behind. The steps and
# their verdicts are a Rust harness (platformctl/tests/compose); this script wires it up:
#
#   1. scripts/docker.sh up      the engine, in its own network namespace
#   2. scripts/images.sh build   the images compose pulls, built here (no registry)
#   3. the harness, inside the engine's network namespace, where compose publishes its ports
#
# Ends with the harness's line "N passed, N failed".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/common.sh
. scripts/lib/common.sh
LOG_TAG=compose

eval "$(scripts/docker.sh up)"
scripts/images.sh build
# Built here, where the crate registry is reachable; run in the namespace, where it is not
# needed (everything is downloaded and compiled by then).
log "building the walkthrough (cargo test --features harnesses --no-run)"
cargo test -p platformctl --features harnesses --test compose --locked --no-run
log "running the walkthrough in network namespace $DOCKER_NETNS_PATH"
# Its commands run in a copy of the working tree, as a clone gives a user.
nsenter --net="$DOCKER_NETNS_PATH" \
  cargo test -p platformctl --features harnesses --test compose --locked --offline
