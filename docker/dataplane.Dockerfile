# syntax=docker/dockerfile:1
# The CacheBridge dataplane image (writer, reader, local). Build from the repository root:
#   docker build -f docker/dataplane.Dockerfile -t ghcr.io/cachebridge/dataplane:0.1.0 .
# The operator runs it as `writer|reader --bridge NS/NAME --config /etc/cachebridge/config.yaml`
# with uid 65532 and a read-only root filesystem (/tmp is an emptyDir).

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p cachebridge-dataplane \
 && install -D -m 0755 target/release/cachebridge-dataplane /out/cachebridge-dataplane

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/cachebridge-dataplane /usr/local/bin/cachebridge-dataplane
USER 65532:65532
# Reader API and /metrics (8080), writer ingest (9090).
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/cachebridge-dataplane"]
# Without arguments: the self-contained demo, reachable from outside the container.
CMD ["local", "--listen", "0.0.0.0:8080"]
