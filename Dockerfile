# chat-api container: built on Debian 12, run as a non-root user.
FROM debian:bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev make pkg-config \
      libhiredis-dev libssl-dev libcjson-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY src ./src
COPY web ./web
RUN make build/chat-api

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libhiredis0.14 libssl3 libcjson1 curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin chat
COPY --from=build /src/build/chat-api /usr/local/bin/chat-api
USER chat
ENV PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=2s --start-period=5s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${PORT}/healthz" || exit 1
# SIGTERM starts the graceful shutdown; give it SHUTDOWN_TIMEOUT plus a margin.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/chat-api"]
