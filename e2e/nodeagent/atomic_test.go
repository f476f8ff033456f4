package nodeagent

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

// readVolume returns the visible files of a volume (following the
// symlinks) and checks the kubelet layout on the way.
func readVolume(t *testing.T, dir string) map[string]string {
	t.Helper()
	data, err := os.Readlink(filepath.Join(dir, dataDirName))
	if err != nil {
		t.Fatalf("..data: %v", err)
	}
	if !strings.HasPrefix(data, "..") || strings.Contains(data, "/") {
		t.Fatalf("..data points at %q, want a sibling timestamped directory", data)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	var versions []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, "..") {
			if name != dataDirName {
				versions = append(versions, name)
			}
			continue
		}
		target, err := os.Readlink(filepath.Join(dir, name))
		if err != nil || target != filepath.Join(dataDirName, name) {
			t.Fatalf("%s: link to %q (%v), want ..data/%s", name, target, err, name)
		}
		err = filepath.WalkDir(filepath.Join(dir, data, name), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(filepath.Join(dir, data), p)
			b, err := os.ReadFile(filepath.Join(dir, rel)) // through the visible link
			got[rel] = string(b)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(versions, []string{data}) {
		t.Fatalf("versions on disk %v, want only %s", versions, data)
	}
	return got
}

func payloadOf(m map[string]string) map[string]fileContent {
	p := map[string]fileContent{}
	for k, v := range m {
		p[k] = fileContent{data: []byte(v), mode: 0o644}
	}
	return p
}

func TestWriteAtomic(t *testing.T) {
	tests := map[string]struct {
		versions []map[string]string
		changed  []bool
	}{
		"first write": {
			versions: []map[string]string{{"a": "1", "b.yaml": "x: 2"}},
			changed:  []bool{true},
		},
		"update swaps, keys come and go": {
			versions: []map[string]string{{"a": "1", "b": "2"}, {"a": "1", "c": "3"}},
			changed:  []bool{true, true},
		},
		"same content writes nothing": {
			versions: []map[string]string{{"a": "1"}, {"a": "1"}},
			changed:  []bool{true, false},
		},
		"nested paths": {
			versions: []map[string]string{{"dir/a": "1", "dir/sub/b": "2", "c": "3"}, {"dir/a": "10"}},
			changed:  []bool{true, true},
		},
		"empty": {
			versions: []map[string]string{{"a": "1"}, {}},
			changed:  []bool{true, true},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "vol")
			for i, v := range tc.versions {
				before, _ := os.Readlink(filepath.Join(dir, dataDirName))
				changed, err := writeAtomic(dir, payloadOf(v))
				if err != nil {
					t.Fatalf("version %d: %v", i, err)
				}
				if changed != tc.changed[i] {
					t.Fatalf("version %d: changed = %v, want %v", i, changed, tc.changed[i])
				}
				after, _ := os.Readlink(filepath.Join(dir, dataDirName))
				if changed == (before == after) {
					t.Fatalf("version %d: ..data %q -> %q with changed = %v", i, before, after, changed)
				}
				got := readVolume(t, dir)
				if len(got) != len(v) {
					t.Fatalf("version %d: files %v, want %v", i, got, v)
				}
				for k, want := range v {
					if got[k] != want {
						t.Fatalf("version %d: %s = %q, want %q", i, k, got[k], want)
					}
				}
			}
		})
	}
}

func TestWriteAtomicModes(t *testing.T) {
	dir := t.TempDir()
	if _, err := writeAtomic(dir, map[string]fileContent{"secret": {data: []byte("s"), mode: 0o400}, "conf": {data: []byte("c"), mode: 0o644}}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]fs.FileMode{"secret": 0o400, "conf": 0o644} {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", name, info.Mode().Perm(), want)
		}
	}
	// A mode change alone is a change.
	changed, err := writeAtomic(dir, map[string]fileContent{"secret": {data: []byte("s"), mode: 0o440}, "conf": {data: []byte("c"), mode: 0o644}})
	if err != nil || !changed {
		t.Fatalf("mode change: changed %v, %v", changed, err)
	}
}

func TestWriteAtomicRejectsPaths(t *testing.T) {
	for _, p := range []string{"", "/etc/passwd", "../x", "a/../../x", "..data", "a//b", "./a"} {
		if _, err := writeAtomic(t.TempDir(), map[string]fileContent{p: {data: []byte("x"), mode: 0o644}}); err == nil {
			t.Errorf("path %q: accepted", p)
		}
	}
}

// TestWriteAtomicSwapSeenByFsnotify checks what Nemesis' rule reloader
// relies on: an update shows as an event on ..data in the watched
// directory, and a reader of a visible file sees either version, whole.
func TestWriteAtomicSwapSeenByFsnotify(t *testing.T) {
	dir := t.TempDir()
	if _, err := writeAtomic(dir, payloadOf(map[string]string{"rules.yaml": "version: 1"})); err != nil {
		t.Fatal(err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Add(dir); err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	bad := make(chan string, 1)
	go func() { // a reader hammering the visible file
		for {
			select {
			case <-stop:
				close(bad)
				return
			default:
			}
			b, err := os.ReadFile(filepath.Join(dir, "rules.yaml"))
			if err == nil && string(b) != "version: 1" && string(b) != "version: 2" {
				bad <- string(b)
				return
			}
		}
	}()
	if _, err := writeAtomic(dir, payloadOf(map[string]string{"rules.yaml": "version: 2"})); err != nil {
		t.Fatal(err)
	}
	close(stop)
	if b, ok := <-bad; ok {
		t.Fatalf("reader saw %q", b)
	}

	timeout := time.After(2 * time.Second)
	for {
		select {
		case ev := <-w.Events:
			if filepath.Base(ev.Name) == dataDirName && ev.Has(fsnotify.Create) {
				b, err := os.ReadFile(filepath.Join(dir, "rules.yaml"))
				if err != nil || string(b) != "version: 2" {
					t.Fatalf("after the swap: %q, %v", b, err)
				}
				return
			}
		case err := <-w.Errors:
			t.Fatal(err)
		case <-timeout:
			t.Fatal("no fsnotify Create event for ..data")
		}
	}
}
