// Package watch reloads configuration files when they change on disk.
package watch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// debounce groups the events of one edit (a ConfigMap swap is several).
const debounce = 100 * time.Millisecond

// Dirs calls reload once the files under paths have changed, until ctx ends.
// It watches directories, not files, so that the atomic symlink swap of a
// mounted ConfigMap is seen: a path that is a directory is watched itself,
// any other path through its directory. Events are debounced. As a safety
// net against missed events it also calls reload every resync (0: never).
func Dirs(ctx context.Context, paths []string, resync time.Duration, logger *slog.Logger, reload func()) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching %v: %w", paths, err)
	}
	defer w.Close()
	watched := map[string]bool{}
	for _, p := range paths {
		dir := p
		if info, err := os.Stat(p); err == nil && !info.IsDir() {
			dir = filepath.Dir(p)
		}
		if !watched[dir] {
			watched[dir] = true
			if err := w.Add(dir); err != nil {
				return fmt.Errorf("watching %s: %w", dir, err)
			}
		}
	}
	var timer, tick <-chan time.Time
	if resync > 0 {
		t := time.NewTicker(resync)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			logger.Debug("file event", "path", ev.Name, "op", ev.Op.String())
			timer = time.After(debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			if !errors.Is(err, fs.ErrClosed) {
				logger.Warn("watching files", "err", err)
			}
		case <-timer:
			timer = nil
			reload()
		case <-tick:
			reload()
		}
	}
}
