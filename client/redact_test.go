package client

import "github.com/buildkite-exporter/buildkite_exporter/client/internal/safety"

// redacted is what replaces the token in errors; the tests look for it.
const redacted = safety.Redacted
