# gatelog, built in one stage and run from a small one.
#
#   docker build -t gatelog .
#   docker run -p 8080:8080 -v gatelog-data:/var/lib/gatelog \
#     -e GATELOG_AUTH__INGEST_KEYS=… -e GATELOG_AUTH__READ_KEYS=… \
#     -e SUPABASE_URL=… -e SUPABASE_KEY=… gatelog
#
# Secrets come from the environment at run time; none is baked in.

FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits do not refetch them.
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY tests tests
COPY migrations migrations
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p gatelog-supervisor --bin gatelog \
    && install -m 0755 target/release/gatelog /usr/local/bin/gatelog

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/gatelog \
       --shell /usr/sbin/nologin gatelog \
    && mkdir -p /var/lib/gatelog /etc/gatelog \
    && chown gatelog:gatelog /var/lib/gatelog
COPY --from=build /usr/local/bin/gatelog /usr/local/bin/gatelog
COPY config/production.toml /etc/gatelog/gatelog.toml
USER gatelog
WORKDIR /var/lib/gatelog
VOLUME /var/lib/gatelog
EXPOSE 8080
# gatelog drains in-flight requests and the writer's queue on SIGTERM;
# give it longer than server.shutdown_timeout_secs (docker stop -t 45).
STOPSIGNAL SIGTERM
ENTRYPOINT ["gatelog", "--config", "/etc/gatelog/gatelog.toml"]
CMD ["serve"]
