# Quiver's container image: built in the Rust image, run in Debian slim as a non-root user.
#
#   docker build -t quiver .
#   docker run -p 9090:9090 -v quiver-data:/var/lib/quiver quiver
#
# The runtime image is Debian's slim one rather than distroless: the build's glibc matches
# it, and its bash runs the health check without an HTTP client in the image.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# Manifests first, so the dependency layer is cached while only the sources change.
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY benches benches
COPY tests tests
COPY migrations migrations
RUN cargo build --release --locked --bin quiver \
    && install -D target/release/quiver /out/quiver

FROM debian:bookworm-slim
ARG VERSION=dev
LABEL org.opencontainers.image.title="quiver" \
      org.opencontainers.image.description="A Prometheus-compatible metrics server on Arrow, Parquet and DataFusion" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 65532 quiver \
    && useradd --system --uid 65532 --gid quiver --home-dir /var/lib/quiver --shell /usr/sbin/nologin quiver \
    && install -d -o quiver -g quiver /var/lib/quiver /etc/quiver
COPY --from=build /out/quiver /usr/local/bin/quiver
USER quiver:quiver
WORKDIR /var/lib/quiver
VOLUME ["/var/lib/quiver"]
EXPOSE 9090 5433
# /-/ready answers 200 once the WAL is replayed; bash's /dev/tcp needs no HTTP client.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9090 && printf 'GET /-/ready HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/quiver"]
CMD ["--storage.tsdb.path=/var/lib/quiver", "--web.listen-address=0.0.0.0:9090", "--postgres.listen-address=0.0.0.0:5433"]
