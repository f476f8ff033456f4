//go:build tools

// Package keda only pins the KEDA commands built by the e2e harness.
package keda

import (
	_ "github.com/kedacore/keda/v2/cmd/adapter"
	_ "github.com/kedacore/keda/v2/cmd/operator"
)
