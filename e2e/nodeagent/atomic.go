package nodeagent

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

const (
	dataDirName    = "..data"
	newDataDirName = "..data_tmp"
)

// fileContent is one file of a volume.
type fileContent struct {
	data []byte
	mode fs.FileMode
}

// writeAtomic makes dir hold exactly payload (relative path -> content) the
// way the kubelet's AtomicWriter does, so that readers never see a mix of
// two versions and fsnotify watchers see one swap:
//
//	dir/..2026_11_26_10_00_00.123456789/<path>   the files of this version
//	dir/..data -> ..2026_11_26_10_00_00.123456789
//	dir/<first path element> -> ..data/<first path element>
//
// A new version is written into a fresh timestamped directory, then
// ..data_tmp is made to point at it and renamed over ..data (one atomic
// step), then the visible symlinks are added or removed and the old version
// deleted. It reports whether anything changed: a payload equal to the
// current version writes nothing.
func writeAtomic(dir string, payload map[string]fileContent) (bool, error) {
	for p := range payload {
		if err := validPayloadPath(p); err != nil {
			return false, fmt.Errorf("writing volume %s: %w", dir, err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("writing volume %s: %w", dir, err)
	}
	oldTS, err := os.Readlink(filepath.Join(dir, dataDirName))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("writing volume %s: %w", dir, err)
	}
	if oldTS != "" && sameContent(filepath.Join(dir, oldTS), payload) && visibleLinksOK(dir, payload) {
		return false, nil
	}

	tsDir, err := os.MkdirTemp(dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return false, fmt.Errorf("writing volume %s: %w", dir, err)
	}
	if err := os.Chmod(tsDir, 0o755); err != nil {
		return false, fmt.Errorf("writing volume %s: %w", dir, err)
	}
	for _, p := range slices.Sorted(maps.Keys(payload)) {
		f := payload[p]
		full := filepath.Join(tsDir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			_ = os.RemoveAll(tsDir)
			return false, fmt.Errorf("writing volume %s: %w", dir, err)
		}
		if err := os.WriteFile(full, f.data, f.mode); err != nil {
			_ = os.RemoveAll(tsDir)
			return false, fmt.Errorf("writing volume %s: %w", dir, err)
		}
		if err := os.Chmod(full, f.mode); err != nil { // WriteFile's mode is masked by the umask
			_ = os.RemoveAll(tsDir)
			return false, fmt.Errorf("writing volume %s: %w", dir, err)
		}
	}

	tmpLink := filepath.Join(dir, newDataDirName)
	_ = os.Remove(tmpLink)
	if err := os.Symlink(filepath.Base(tsDir), tmpLink); err != nil {
		_ = os.RemoveAll(tsDir)
		return false, fmt.Errorf("writing volume %s: %w", dir, err)
	}
	if err := os.Rename(tmpLink, filepath.Join(dir, dataDirName)); err != nil {
		_ = os.Remove(tmpLink)
		_ = os.RemoveAll(tsDir)
		return false, fmt.Errorf("writing volume %s: swapping %s: %w", dir, dataDirName, err)
	}

	// Visible names: add the new ones, then drop the ones gone.
	want := visibleNames(payload)
	for name := range want {
		link := filepath.Join(dir, name)
		target := filepath.Join(dataDirName, name)
		if cur, err := os.Readlink(link); err == nil && cur == target {
			continue
		}
		_ = os.Remove(link)
		if err := os.Symlink(target, link); err != nil {
			return true, fmt.Errorf("writing volume %s: %w", dir, err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return true, fmt.Errorf("writing volume %s: %w", dir, err)
	}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		switch {
		case name == dataDirName:
		case strings.HasPrefix(name, ".."):
			// Old versions (and a stray ..data_tmp).
			if name != filepath.Base(tsDir) {
				if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
					errs = append(errs, err)
				}
			}
		case !want[name]:
			if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return true, fmt.Errorf("writing volume %s: removing the old version: %w", dir, err)
	}
	return true, nil
}

// validPayloadPath refuses paths that could leave the volume or clash with
// the writer's own names.
func validPayloadPath(p string) error {
	if p == "" {
		return errors.New("empty file path")
	}
	if filepath.IsAbs(p) {
		return fmt.Errorf("file path %q is absolute", p)
	}
	if strings.HasPrefix(p, "..") {
		return fmt.Errorf("file path %q starts with '..'", p)
	}
	for el := range strings.SplitSeq(p, "/") {
		if el == ".." || el == "." || el == "" {
			return fmt.Errorf("file path %q has an empty, '.' or '..' element", p)
		}
	}
	return nil
}

func visibleNames(payload map[string]fileContent) map[string]bool {
	names := map[string]bool{}
	for p := range payload {
		first, _, _ := strings.Cut(p, "/")
		names[first] = true
	}
	return names
}

// sameContent reports whether the version in tsDir holds exactly payload.
func sameContent(tsDir string, payload map[string]fileContent) bool {
	n := 0
	err := filepath.WalkDir(tsDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(tsDir, path)
		if err != nil {
			return err
		}
		want, ok := payload[filepath.ToSlash(rel)]
		if !ok {
			return fs.ErrNotExist
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode().Perm() != want.mode.Perm() {
			return fs.ErrInvalid
		}
		got, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want.data) {
			return fs.ErrInvalid
		}
		n++
		return nil
	})
	return err == nil && n == len(payload)
}

// visibleLinksOK reports whether dir has exactly the visible symlinks of
// payload (an earlier write may have stopped half-way).
func visibleLinksOK(dir string, payload map[string]fileContent) bool {
	want := visibleNames(payload)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	n := 0
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, "..") {
			continue
		}
		if !want[name] {
			return false
		}
		if cur, err := os.Readlink(filepath.Join(dir, name)); err != nil || cur != filepath.Join(dataDirName, name) {
			return false
		}
		n++
	}
	return n == len(want)
}
