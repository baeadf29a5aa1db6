# syntax=docker/dockerfile:1
# The mcp-gateway binary (serve, dev, demo-agent, keys, agents, …) in a
# distroless image: static, non-root, no shell.
#   docker build -t mcp-gateway:latest .

FROM golang:1.26 AS build
WORKDIR /src
# Modules first: this layer stays cached until go.mod/go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" \
      -o /out/mcp-gateway ./cmd/mcp-gateway

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/mcp-gateway /mcp-gateway
USER nonroot:nonroot
# HTTP (authorization server, HTTP check), gRPC Check, admin (metrics, health).
EXPOSE 8080 9191 9090 18000
ENTRYPOINT ["/mcp-gateway"]
CMD ["serve", "--config", "/etc/mcp-gateway/config.yaml"]
