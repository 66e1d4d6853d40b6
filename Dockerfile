# wspush container image: a static binary on distroless, run as non-root.
#
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t wspush .
#   docker run --rm -p 8080:8080 --ulimit nofile=1048576:1048576 --stop-timeout 30 wspush
#
# Not built in this repository's CI (no Docker daemon there). The test in
# deploy/ runs the builder stage's `go build` with the same flags and checks
# that the result is a static binary that starts; see
# docs/deploy.md.

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# VERSION is stamped into main.version, which `wspush -version` prints
# (cmd/wspush declares `var version`; without it -X is silently ignored).
ARG VERSION=dev
# Static: distroless/static has no libc. -trimpath keeps build paths out.
ENV CGO_ENABLED=0
RUN go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/wspush ./cmd/wspush

# distroless/static: CA certificates and /etc/passwd with the nonroot user
# (65532), no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/wspush /usr/local/bin/wspush
USER nonroot:nonroot
# 8080: public WebSocket port (/ws, demo page, /wspush.js).
# 8081: admin API (/publish, /metrics, /healthz, /debug/pprof/). The admin
# port is meant for loopback (its default is becoming 127.0.0.1:8081), which
# inside a container is unreachable from outside: publish it on purpose with
# WSPUSH_ADMIN=:8081 and a WSPUSH_PUBLISH_TOKEN (and the admin token), on a
# network only publishers and Prometheus reach.
EXPOSE 8080 8081
# Settings: WSPUSH_* environment variables, one per flag (`wspush -h`).
# docker stop sends SIGTERM; wspush closes every client with 1001 within
# WSPUSH_SHUTDOWN_TIMEOUT (10s), so give docker stop more (--stop-timeout 30).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/wspush"]
