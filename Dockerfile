# zai2api container image.
# Build stage: the same `cargo build --release --locked -p zai2api` the README and CI use.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# jemalloc, the gateway's default allocator, is built from C sources with make.
RUN apt-get update && apt-get install -y --no-install-recommends make \
 && rm -rf /var/lib/apt/lists/*
COPY Cargo.toml Cargo.lock clippy.toml ./
COPY crates ./crates
RUN cargo build --release --locked -p zai2api \
 && cp target/release/zai2api /zai2api

# Runtime stage: a small Debian base, an unprivileged user, state on a volume.
# TLS roots are compiled into the binary (webpki roots), so no CA package is needed.
FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin zai2api \
 && mkdir -p /app/data \
 && chown -R zai2api /app
COPY --from=build /zai2api /usr/local/bin/zai2api
USER zai2api
WORKDIR /app
ENV PORT=8080 \
    ZAI2API_STATE_DIR=/app/data
VOLUME ["/app/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["zai2api", "healthcheck"]
ENTRYPOINT ["zai2api"]
CMD ["serve"]
