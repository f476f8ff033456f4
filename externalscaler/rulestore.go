package externalscaler

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/k8s-nemesis/nemesis/internal/watch"
	"github.com/k8s-nemesis/nemesis/rules"
)

// Catalog is one loaded, valid version of all rule files. It is immutable.
type Catalog struct {
	// Files are the rule files read, in order.
	Files []string
	// Version counts successful loads, starting at 1.
	Version uint64
	sets    map[string]*rules.RuleSet
	digest  [sha256.Size]byte
}

// RuleSet returns the rule set with the given name.
func (c *Catalog) RuleSet(name string) (*rules.RuleSet, bool) {
	rs, ok := c.sets[name]
	return rs, ok
}

// Names returns the names of all rule sets, sorted.
func (c *Catalog) Names() []string {
	names := make([]string, 0, len(c.sets))
	for n := range c.sets {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ruleFiles expands paths: a file stands for itself, a directory for the
// *.yaml and *.yml files directly in it (hidden entries, such as the ..data
// link of a mounted ConfigMap, are skipped; links to files are followed).
// A rules test file in a directory (rules.IsTestFile) is skipped too, so
// that the tests of a rule set can ship beside it, in the same ConfigMap;
// a file named on its own is always read as rules.
func ruleFiles(paths []string) ([]string, error) {
	var files []string
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("reading rules: %w", err)
		}
		if !info.IsDir() {
			files = append(files, p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, fmt.Errorf("reading rules: %w", err)
		}
		var inDir []string
		for _, e := range entries {
			name := e.Name()
			if strings.HasPrefix(name, ".") || !(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")) {
				continue
			}
			full := filepath.Join(p, name)
			if st, err := os.Stat(full); err != nil || st.IsDir() {
				continue
			}
			// A file that cannot be read is kept: LoadCatalog reports it.
			if data, err := os.ReadFile(full); err == nil && rules.IsTestFile(data) {
				continue
			}
			inDir = append(inDir, full)
		}
		if len(inDir) == 0 {
			return nil, fmt.Errorf("reading rules: directory %s holds no *.yaml rule files", p)
		}
		files = append(files, inDir...)
	}
	return files, nil
}

// LoadCatalog reads and checks every rule file under paths. On problems it
// returns an error joining one [*rules.Error] per problem, across all files.
func LoadCatalog(paths []string) (*Catalog, error) {
	files, err := ruleFiles(paths)
	if err != nil {
		return nil, err
	}
	c := &Catalog{Files: files, sets: map[string]*rules.RuleSet{}}
	h := sha256.New()
	var errs []error
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("reading rules: %w", err))
			continue
		}
		fmt.Fprintf(h, "%s\x00%d\x00", f, len(data))
		h.Write(data)
		sets, err := rules.Parse(f, data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, rs := range sets {
			if prev, ok := c.sets[rs.Name]; ok {
				errs = append(errs, &rules.Error{File: rs.File, Line: rs.Line, Column: rs.Column, RuleSet: rs.Name, Field: "name",
					Msg: fmt.Sprintf("duplicate rule set name: also defined at %s:%d:%d", prev.File, prev.Line, prev.Column)})
				continue
			}
			c.sets[rs.Name] = rs
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	copy(c.digest[:], h.Sum(nil))
	return c, nil
}

// RuleStore holds the current catalog and reloads it when rule files
// change. Readers never block.
type RuleStore struct {
	paths   []string
	current atomic.Pointer[Catalog]
	logger  *slog.Logger
	m       *storeMetrics
	now     func() time.Time

	// mu guards the reload state below.
	mu       sync.Mutex
	loadedAt time.Time
	// lastErr is the last reload's error while the files on disk are
	// rejected; nil once they load (or match the version in force) again.
	lastErr   error
	lastErrAt time.Time
}

// ReloadState is what the store knows of its reloads.
type ReloadState struct {
	// Catalog is the version in force, loaded at LoadedAt.
	Catalog  *Catalog
	LoadedAt time.Time
	// LastError is why the newest files on disk were rejected, nil while
	// the catalog in force is what they hold; LastErrorAt is when.
	LastError   error
	LastErrorAt time.Time
}

// State returns the catalog in force and the state of the last reload.
func (s *RuleStore) State() ReloadState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ReloadState{Catalog: s.current.Load(), LoadedAt: s.loadedAt, LastError: s.lastErr, LastErrorAt: s.lastErrAt}
}

// NewRuleStore loads the rule files under paths. It fails if they are
// invalid: a scaler must not start without rules. A nil reg keeps the
// store's metrics unregistered.
func NewRuleStore(paths []string, logger *slog.Logger, reg prometheus.Registerer) (*RuleStore, error) {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	c, err := LoadCatalog(paths)
	if err != nil {
		return nil, err
	}
	c.Version = 1
	s := &RuleStore{paths: paths, logger: logger, m: newStoreMetrics(reg), now: time.Now}
	s.loadedAt = s.now()
	s.current.Store(c)
	s.m.loaded(c)
	return s, nil
}

// Current returns the catalog in force.
func (s *RuleStore) Current() *Catalog { return s.current.Load() }

// Reload reads the rule files again. A valid new version replaces the
// current one; an invalid one is logged, counted and ignored, and the
// current one keeps serving. It reports whether the catalog changed.
func (s *RuleStore) Reload() (bool, error) {
	c, err := LoadCatalog(s.paths)
	if err != nil {
		s.m.reloads.WithLabelValues("failure").Inc()
		s.m.lastFailure.Set(1)
		s.mu.Lock()
		s.lastErr, s.lastErrAt = err, s.now()
		s.mu.Unlock()
		for _, e := range strings.Split(err.Error(), "\n") {
			s.logger.Error("rule files rejected; the last good version keeps serving", "problem", e)
		}
		return false, err
	}
	old := s.current.Load()
	if c.digest == old.digest {
		// The files are valid again, back to the version in force: a
		// rejected version no longer waits on disk.
		s.m.lastFailure.Set(0)
		s.mu.Lock()
		s.lastErr = nil
		s.mu.Unlock()
		return false, nil
	}
	c.Version = old.Version + 1
	s.mu.Lock()
	s.lastErr, s.loadedAt = nil, s.now()
	s.current.Store(c)
	s.mu.Unlock()
	s.m.reloads.WithLabelValues("success").Inc()
	s.m.loaded(c)
	s.logger.Info("rule files reloaded", "version", c.Version, "files", len(c.Files), "ruleSets", len(c.sets))
	return true, nil
}

// Watch reloads the rules whenever a file under the store's paths changes,
// until ctx ends (see [watch.Dirs]: directories are watched, so a
// ConfigMap's symlink swap is seen), and every resync as a safety net.
func (s *RuleStore) Watch(ctx context.Context, resync time.Duration) error {
	return watch.Dirs(ctx, s.paths, resync, s.logger, func() { _, _ = s.Reload() })
}
