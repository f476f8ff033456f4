package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Binaries are the programs a local cluster runs.
type Binaries struct {
	APIServer         string
	ControllerManager string
	KEDAOperator      string
	KEDAAdapter       string
	// Kubectl is kubectl of the control plane's release.
	Kubectl string
	// KEDACRDs is the directory of KEDA's CRDs (config/crd/bases in KEDA's
	// module).
	KEDACRDs string
	// Images maps each container image of the suite's manifests to the
	// binary that runs it: nemesis, the sample app and llmsim.
	Images map[string]string
}

// toolSet is one pinned tools module under e2e/tools and what it builds.
type toolSet struct {
	dir      string
	packages []string
}

// buildTools builds the commands of the tools module in dir (relative to the
// repository root) into cacheDir/<hash>/, where hash covers the module's
// go.mod and go.sum and the Go version, unless that build is already there.
// It returns the binaries' directory.
func buildTools(ctx context.Context, logger *slog.Logger, repo, cacheDir string, ts toolSet) (string, error) {
	modDir := filepath.Join(repo, ts.dir)
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(modDir, f))
		if err != nil {
			return "", err
		}
		h.Write(b)
	}
	h.Write([]byte(runtime.Version()))
	h.Write([]byte(strings.Join(ts.packages, " ")))
	out := filepath.Join(cacheDir, filepath.Base(ts.dir)+"-"+hex.EncodeToString(h.Sum(nil))[:16])
	stamp := filepath.Join(out, ".complete")
	if _, err := os.Stat(stamp); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	logger.Info("building pinned tools (cold: several minutes; cached afterwards)", "module", ts.dir, "into", out)
	start := time.Now()
	args := append([]string{"build", "-trimpath", "-o", out + string(filepath.Separator)}, ts.packages...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = modDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build in %s: %v\n%s", ts.dir, err, b)
	}
	if err := os.WriteFile(stamp, nil, 0o644); err != nil {
		return "", err
	}
	logger.Info("built pinned tools", "module", ts.dir, "took", time.Since(start).Round(time.Second))
	return out, nil
}

// moduleDir returns the directory of module mod as required by the module in
// dir (downloading it if needed).
func moduleDir(ctx context.Context, dir, mod string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", mod)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go mod download %s: %v\n%s", mod, err, b)
	}
	cmd = exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", mod)
	cmd.Dir = dir
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list -m %s: %w", mod, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// buildRepo builds this repository's commands that run in the cluster into
// dir, and returns them by the image that stands for each.
func buildRepo(ctx context.Context, repo, dir string) (map[string]string, error) {
	images := map[string]string{}
	for image, pkg := range map[string]string{
		NemesisImage:   "./cmd/nemesis",
		SampleAppImage: "./e2e/sampleapp",
		LLMSimImage:    "./e2e/llmsim",
	} {
		bin := filepath.Join(dir, filepath.Base(pkg))
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, pkg)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
		}
		images[image] = bin
	}
	return images, nil
}

// Build builds (or finds in the cache) every binary of a local cluster.
func Build(ctx context.Context, logger *slog.Logger, repo, cacheDir, binDir string) (*Binaries, error) {
	kube, err := buildTools(ctx, logger, repo, cacheDir, toolSet{
		dir:      "e2e/tools/kube",
		packages: []string{"k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kube-controller-manager", "k8s.io/kubernetes/cmd/kubectl"},
	})
	if err != nil {
		return nil, err
	}
	keda, err := buildTools(ctx, logger, repo, cacheDir, toolSet{
		dir:      "e2e/tools/keda",
		packages: []string{"github.com/kedacore/keda/v2/cmd/operator", "github.com/kedacore/keda/v2/cmd/adapter"},
	})
	if err != nil {
		return nil, err
	}
	kedaMod, err := moduleDir(ctx, filepath.Join(repo, "e2e/tools/keda"), "github.com/kedacore/keda/v2")
	if err != nil {
		return nil, err
	}
	images, err := buildRepo(ctx, repo, binDir)
	if err != nil {
		return nil, err
	}
	return &Binaries{
		APIServer:         filepath.Join(kube, "kube-apiserver"),
		ControllerManager: filepath.Join(kube, "kube-controller-manager"),
		KEDAOperator:      filepath.Join(keda, "operator"),
		KEDAAdapter:       filepath.Join(keda, "adapter"),
		Kubectl:           filepath.Join(kube, "kubectl"),
		KEDACRDs:          filepath.Join(kedaMod, "config", "crd", "bases"),
		Images:            images,
	}, nil
}

// RepoRoot finds the repository's root from the working directory upwards.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/k8s-nemesis/nemesis\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("cluster: no go.mod of github.com/k8s-nemesis/nemesis above the working directory")
		}
		dir = parent
	}
}

// DefaultCacheDir is where pinned tools are built: $NEMESIS_E2E_CACHE, or
// nemesis-e2e in the user's cache directory.
func DefaultCacheDir() (string, error) {
	if d := os.Getenv("NEMESIS_E2E_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "nemesis-e2e"), nil
}
