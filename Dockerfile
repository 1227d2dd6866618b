# proxy-renewd in a container: `docker build -t proxy-renewd .`, then
#   docker run -d --name proxy-renewd \
#     -v proxy-renewd-state:/var/lib/proxy-renewd \
#     -v "$PWD/config.toml:/etc/proxy-renewd/config.toml:ro" \
#     -e PROXY_RENEWD_API__KEY_FILE=/run/secrets/api_key --secret … (or -e PROXY_RENEWD_API__KEY=rk_…) \
#     proxy-renewd
# Config: /etc/proxy-renewd/config.toml and/or PROXY_RENEWD_* variables. Logs: JSON lines.

# --- build: the Rust toolchain image; dependencies cached in their own layer -------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
# config.example.toml: config errors quote its examples (include_str!).
COPY Cargo.toml Cargo.lock build.rs config.example.toml ./
COPY migrations ./migrations
RUN mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && echo 'fn main() {}' > benches/cycle.rs \
 && cargo build --release --locked \
 && rm -rf src benches
COPY src ./src
COPY benches ./benches
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked \
 && strip target/release/proxy-renewd \
 && mkdir -p /state

# --- run: distroless with glibc and libgcc only, as a non-root user ------------------------
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/proxy-renewd /usr/local/bin/proxy-renewd
# The state directory must exist, owned by the non-root user, before VOLUME declares it.
COPY --from=build --chown=65532:65532 /state /var/lib/proxy-renewd
ENV PROXY_RENEWD_DATABASE__URL=sqlite:///var/lib/proxy-renewd/proxy-renewd.db \
    PROXY_RENEWD_LOG__FORMAT=json
VOLUME ["/var/lib/proxy-renewd"]
USER 65532:65532
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5m --timeout=30s --start-period=2m --retries=2 \
  CMD ["/usr/local/bin/proxy-renewd", "health", "--max-age", "30m"]
ENTRYPOINT ["/usr/local/bin/proxy-renewd"]
CMD ["run"]
