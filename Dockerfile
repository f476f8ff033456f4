# syntax=docker/dockerfile:1

# The Nemesis image: one static binary for both components,
# `nemesis scaler` and `nemesis activator` (the pod's args pick one).
#
#   go tool task image            # docker build with VERSION and REVISION
#
# The build stage runs the Taskfile's build command (BUILD in Taskfile.yml),
# the one CI runs; internal/buildcheck fails if the two drift apart, and if
# the Go version here is not go.mod's.

FROM golang:1.26.4-bookworm AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o bin/nemesis ./cmd/nemesis

# Static binary, no shell: distroless static, as its nonroot user.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=https://github.com/k8s-nemesis/nemesis
# No license file is in the repository yet: NOASSERTION (SPDX) until one is.
ARG LICENSES=NOASSERTION
LABEL org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.title="nemesis" \
      org.opencontainers.image.description="Kubernetes autoscaling on what loads a workload, plugged into KEDA: the scaler (nemesis scaler) and the activator (nemesis activator)" \
      org.opencontainers.image.licenses="${LICENSES}"
COPY --from=build /src/bin/nemesis /nemesis
USER 65532:65532
ENTRYPOINT ["/nemesis"]
