//go:build tools

// Package tools pins the prometheus-operator commands that build.sh compiles, so `go mod tidy` keeps their
// dependencies in go.mod and go.sum.
package tools

import (
	_ "github.com/prometheus-operator/prometheus-operator/cmd/operator"
	_ "github.com/prometheus-operator/prometheus-operator/cmd/prometheus-config-reloader"
)
