# Baton in a container: a static binary on distroless, as user 65532.
#
#   docker build -t baton --build-arg VERSION=$(git describe --tags --always --dirty) \
#     --build-arg REVISION=$(git rev-parse HEAD) .
#   docker run -v baton-data:/var/lib/baton -v $PWD/baton.yaml:/etc/baton/baton.yaml:ro \
#     --env-file baton.env -p 8080:8080 -p 127.0.0.1:8081:8081 baton
#
# Secrets come from the environment (--env-file, compose's env_file),
# never from this image. deploy/compose.yaml runs it with a data volume.

FROM golang:1.26-bookworm AS build
WORKDIR /src
# The modules first: a change in the code does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=""
ARG REVISION=""
# CGO_ENABLED=0: a static binary that needs no libc in the final image;
# -trimpath: no build paths in it. .git is not in the context (see
# .dockerignore), so VERSION and REVISION are what `baton version` shows.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION} -X main.revision=${REVISION}" -o /out/baton ./cmd/baton \
 && mkdir -p /out/data

# distroless/static: CA certificates (Baton calls graph.facebook.com over
# TLS) and time zones (the hours rule), no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot AS run
COPY --from=build /out/baton /usr/local/bin/baton
# The data volume belongs to the user Baton runs as, so a fresh named
# volume is writable.
COPY --from=build --chown=65532:65532 /out/data /var/lib/baton
USER 65532:65532
VOLUME ["/var/lib/baton"]
# 8080: webhooks, bot API, /graph, /healthz, /readyz. 8081: admin API and
# /metrics (publish it on a private interface only). 8090: a replica's
# internal listener (cluster:), for the other replicas alone.
EXPOSE 8080 8081 8090
ENTRYPOINT ["baton"]
CMD ["serve", "-config", "/etc/baton/baton.yaml"]
