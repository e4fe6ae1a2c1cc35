# syntax=docker/dockerfile:1
# The CacheBridge operator image. Build from the repository root:
#   docker build -f docker/operator.Dockerfile -t ghcr.io/cachebridge/operator:0.1.0 .
# Stage 1 compiles the release binary; stage 2 is distroless: glibc and CA
# certificates, no shell, no package manager, running as uid 65532.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
# The whole workspace: the operator depends on the api and dataplane crates.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p cachebridge-operator \
 && install -D -m 0755 target/release/cachebridge-operator /out/cachebridge-operator

# Debian 12 (bookworm) runtime for a binary built on bookworm: the same glibc.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/cachebridge-operator /usr/local/bin/cachebridge-operator
USER 65532:65532
# /metrics, /healthz, /readyz (LISTEN, default 0.0.0.0:8080).
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/cachebridge-operator"]
CMD ["run"]
