# syntax=docker/dockerfile:1
#
# make docker builds this with the same version information as make build:
#   docker build --build-arg VERSION=$(cat VERSION) --build-arg REVISION=$(git rev-parse HEAD) ... .
# dockerfile_test.go checks the port, user, binary path and -X variables
# against the Makefile.

FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so the download layer is cached across source changes.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=unknown
ARG REVISION=unknown
ARG BRANCH=unknown
ARG BUILD_USER=docker
ARG BUILD_DATE=unknown
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w \
      -X github.com/prometheus/common/version.Version=${VERSION} \
      -X github.com/prometheus/common/version.Revision=${REVISION} \
      -X github.com/prometheus/common/version.Branch=${BRANCH} \
      -X github.com/prometheus/common/version.BuildUser=${BUILD_USER} \
      -X github.com/prometheus/common/version.BuildDate=${BUILD_DATE}" \
    -o /out/buildkite_exporter . \
 && /out/buildkite_exporter --version

# Distroless static: CA certificates, tzdata, /etc/passwd with nonroot
# (65532), no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="buildkite_exporter" \
      org.opencontainers.image.description="Prometheus exporter for a Buildkite agent fleet" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/buildkite_exporter /bin/buildkite_exporter
USER 65532:65532
EXPOSE 9260
ENTRYPOINT ["/bin/buildkite_exporter"]
