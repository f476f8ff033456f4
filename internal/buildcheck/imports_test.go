package buildcheck

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// Prometheus packages the binary must not link: promqltest, rules and
// tsdb bring in the service-discovery package, which registers every
// cloud SDK's discoverer. memprom uses promql and storage alone.
const (
	promqltestPkg = "github.com/prometheus/prometheus/promql/promqltest"
	rulesPkg      = "github.com/prometheus/prometheus/rules"
	tsdbPkg       = "github.com/prometheus/prometheus/tsdb"
	discoveryPkg  = "github.com/prometheus/prometheus/discovery"
	// targetgroup is discovery's plain data type, which config and
	// storage may use without any discoverer.
	targetgroupPkg = discoveryPkg + "/targetgroup"
)

// heavyImports returns the packages of deps that the binary must not link.
func heavyImports(deps []string) []string {
	var bad []string
	for _, p := range deps {
		switch {
		case p == promqltestPkg, p == rulesPkg, p == tsdbPkg, p == discoveryPkg:
			bad = append(bad, p)
		case strings.HasPrefix(p, discoveryPkg+"/") && p != targetgroupPkg:
			bad = append(bad, p)
		}
	}
	return bad
}

// goListDeps lists the packages that pkgs import, transitively, from the
// repository's root; -e lists them even when some would not build.
func goListDeps(t *testing.T, pkgs ...string) []string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not on PATH: %v", err)
	}
	cmd := exec.Command(goBin, append([]string{"list", "-e", "-deps"}, pkgs...)...)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", strings.Join(pkgs, " "), err)
	}
	return strings.Fields(string(out))
}

// TestBinaryLeavesOutPromtoolPackages keeps the binary, and memprom which
// it uses for `rules test` and `rules backtest`, from linking Prometheus'
// test loader, rule manager or TSDB.
func TestBinaryLeavesOutPromtoolPackages(t *testing.T) {
	deps := goListDeps(t, "./cmd/nemesis", "./memprom")
	if !slices.Contains(deps, "github.com/prometheus/prometheus/promql") {
		t.Fatalf("memprom no longer imports promql: the check below would hold trivially (%d packages listed)", len(deps))
	}
	if bad := heavyImports(deps); len(bad) > 0 {
		t.Errorf("the binary or memprom links %s: keep to promql, its parser, storage and model", strings.Join(bad, ", "))
	}
}

// TestHeavyImportsFails proves the check on Prometheus' real graph: the
// promqltest package links all three of what the binary must not.
func TestHeavyImportsFails(t *testing.T) {
	bad := heavyImports(goListDeps(t, promqltestPkg))
	for _, want := range []string{promqltestPkg, tsdbPkg, discoveryPkg} {
		if !slices.Contains(bad, want) {
			t.Errorf("heavyImports of promqltest's graph = %v, want it to hold %s", bad, want)
		}
	}
	if got := heavyImports([]string{rulesPkg, targetgroupPkg, discoveryPkg + "/aws", tsdbPkg + "/chunkenc"}); !slices.Equal(got, []string{rulesPkg, discoveryPkg + "/aws"}) {
		t.Errorf("heavyImports = %v, want rules and discovery/aws only (targetgroup and tsdb/chunkenc are light)", got)
	}
}
