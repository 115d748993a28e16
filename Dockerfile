# One Dockerfile, three final targets: `user-service`, `notification-service` and
# `prediction-service`.
#
# Why one file: the services live in one Cargo workspace and share almost all of
# their dependency graph (rdkafka with its bundled librdkafka, axum, the shared
# crates). A single builder stage compiles all binaries in one cargo invocation,
# and BuildKit builds that stage once for every target, so building all images
# costs one compilation of the dependency graph instead of three.
#
#   docker build --target user-service         -t platform/user-service:dev .
#   docker build --target notification-service -t platform/notification-service:dev .
#   docker build --target prediction-service   -t platform/prediction-service:dev .
#
# The prediction-service image carries no model: it is mounted (compose: the
# repository's models/ directory; Kubernetes: a ConfigMap) at /models.
#
# The user-service image also carries `platformctl`, used by the topic-creation
# job (compose `kafka-init`, Helm hook Job).
#
# Dependency caching uses BuildKit cache mounts (the cargo registry and the target
# directory survive between builds), so a source-only change recompiles only the
# workspace crates. BuildKit is the default builder of current Docker releases;
# the legacy builder cannot build this file (RUN --mount, $BUILDPLATFORM).
#
# Two architectures, no emulated Rust build: the builder stage always runs on the
# build machine's platform ($BUILDPLATFORM) and cross-compiles for the image's
# platform ($TARGETPLATFORM) with Debian's cross toolchain and the target's -dev
# packages from Debian's multi-arch archive (scripts/lib/cross-env.sh sets the
# linker, CC/CXX/AR for cc-rs and librdkafka's configure, and pkg-config). Only the
# runtime stage's apt-get runs for the target platform (under QEMU when foreign).
#
#   docker buildx build --platform linux/amd64,linux/arm64 --target user-service \
#     -t registry.example/platform/user-service:0.1.0 --push .
#
# scripts/cross-arm64.sh proves the arm64 path without Docker: the same
# cross-env.sh, the release binaries for aarch64, run under qemu-user.

ARG RUST_IMAGE=rust:1.95.0-bookworm
ARG RUNTIME_IMAGE=debian:12.12-slim

FROM --platform=$BUILDPLATFORM ${RUST_IMAGE} AS builder
ARG BUILDARCH
ARG TARGETARCH
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Build dependencies of the librdkafka that rdkafka-sys compiles from source
# (its own configure/make), and headers of the TLS, SASL and compression
# libraries it may link dynamically. For a foreign TARGETARCH also the cross
# compiler and the target's OpenSSL and zlib (multi-arch :<arch> packages, the
# same versions the runtime image installs), and the Rust standard library for
# the target.
RUN case "$TARGETARCH" in \
      amd64) rust_target=x86_64-unknown-linux-gnu; gnu=x86-64-linux-gnu ;; \
      arm64) rust_target=aarch64-unknown-linux-gnu; gnu=aarch64-linux-gnu ;; \
      *) echo "unsupported TARGETARCH '$TARGETARCH' (amd64, arm64)" >&2; exit 1 ;; \
    esac \
 && packages=(build-essential cmake pkg-config perl libssl-dev libsasl2-dev zlib1g-dev libzstd-dev) \
 && if [ "$TARGETARCH" != "$BUILDARCH" ]; then \
      dpkg --add-architecture "$TARGETARCH" \
      && packages+=("gcc-$gnu" "g++-$gnu" "libc6-dev-$TARGETARCH-cross" \
                    "libssl-dev:$TARGETARCH" "zlib1g-dev:$TARGETARCH"); \
    fi \
 && apt-get update \
 && apt-get install -y --no-install-recommends "${packages[@]}" \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add "$rust_target" \
 && echo "$rust_target" > /etc/rust-target
WORKDIR /src
# Migrations are embedded at compile time from the source tree; no database is
# needed to build.
# Symbols stripped: they are most of a release binary's size, and a panic's message
# and location survive without them.
ENV CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0 \
    CARGO_PROFILE_RELEASE_STRIP=symbols
COPY . .
# The target directory cache is shared by both architectures: cargo keeps each
# target's artifacts under target/<triple>/.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    CARGO_BUILD_TARGET=$(cat /etc/rust-target) \
 && export CARGO_BUILD_TARGET \
 && . scripts/lib/cross-env.sh \
 && cargo build --release --locked \
      -p user-service -p notification-service -p prediction-service -p platformctl \
 && mkdir -p /out \
 && bin="target/$CARGO_BUILD_TARGET/release" \
 && cp "$bin/user-service" "$bin/notification-service" "$bin/prediction-service" "$bin/platformctl" /out/

# The runtime files, gathered in the image's own platform (under QEMU when foreign):
# the shared libraries the binaries link, read off the binaries themselves with ldd
# (libc, libm, libgcc_s, OpenSSL for Kafka and MySQL TLS, zlib), the CA bundle, and
# the app user. Only these go into the final images, which start from an empty one:
# no shell, no package manager, nothing an intruder could use that the service does
# not need (docs/deployment.md, "Container images", says how to debug such a container).
FROM ${RUNTIME_IMAGE} AS runtime-files
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/*
COPY --from=builder /out/ /out/
RUN mkdir -p /rootfs/etc/ssl/certs /rootfs/tmp \
 && chmod 1777 /rootfs/tmp \
 && ldd /out/* | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\/.*[^:]$/ { print $1 }' | sort -u \
    | xargs -I{} cp --parents --dereference {} /rootfs/ \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ \
 && echo 'root:x:0:0:root:/root:/usr/sbin/nologin' > /rootfs/etc/passwd \
 && echo 'app:x:10001:10001:app:/nonexistent:/usr/sbin/nologin' >> /rootfs/etc/passwd \
 && printf 'root:x:0:\napp:x:10001:\n' > /rootfs/etc/group \
 && echo 'hosts: files dns' > /rootfs/etc/nsswitch.conf

FROM scratch AS runtime
COPY --from=runtime-files /rootfs/ /
ENV RUST_LOG=info \
    LOG_FORMAT=json \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
WORKDIR /
# Numeric user so Kubernetes can verify runAsNonRoot without reading /etc/passwd.
USER 10001:10001
STOPSIGNAL SIGTERM

FROM runtime AS user-service
LABEL org.opencontainers.image.title="user-service" \
      org.opencontainers.image.description="User registration API with a transactional outbox to Kafka" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/user-service /out/platformctl /usr/local/bin/
ENV HTTP_ADDR=0.0.0.0:8000
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/user-service", "--healthcheck"]
ENTRYPOINT ["/usr/local/bin/user-service"]

FROM runtime AS notification-service
LABEL org.opencontainers.image.title="notification-service" \
      org.opencontainers.image.description="Consumes user events and delivers welcome notifications" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/notification-service /usr/local/bin/
ENV HTTP_ADDR=0.0.0.0:8001
EXPOSE 8001
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/notification-service", "--healthcheck"]
ENTRYPOINT ["/usr/local/bin/notification-service"]

FROM runtime AS prediction-service
LABEL org.opencontainers.image.title="prediction-service" \
      org.opencontainers.image.description="Classifies wines with a mounted ONNX random forest over Kafka request/reply and HTTP" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/prediction-service /usr/local/bin/
# The model is mounted here (read-only); the service does not start without it.
ENV HTTP_ADDR=0.0.0.0:8002 \
    MODEL_PATH=/models/wine-forest.onnx
EXPOSE 8002
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/prediction-service", "--healthcheck"]
ENTRYPOINT ["/usr/local/bin/prediction-service"]
