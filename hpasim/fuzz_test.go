package hpasim

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzParseScaledObject feeds arbitrary manifests to the parser: it must
// never panic, every problem must carry a position, and whatever it accepts
// must be valid and must simulate without panicking.
func FuzzParseScaledObject(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(manifest(behavior("        scaleUp:\n          policies:\n          - {type: Percent, value: 900, periodSeconds: 1}\n"))))
	f.Add([]byte(manifest("  minReplicaCount: 3\n  idleReplicaCount: 0\n  maxReplicaCount: 2147483647\n  cooldownPeriod: 0\n")))
	f.Add([]byte(manifest("  maxReplicaCount: 1100000000\n"))) // 2×current wrapped past int32
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseScaledObject("fuzz.yaml", data)
		if err != nil {
			var n int
			for _, e := range unjoin(err) {
				var pe *Error
				if !errors.As(e, &pe) || pe.File != "fuzz.yaml" || pe.Line < 1 || pe.Column < 1 {
					t.Fatalf("error without a position: %q", e)
				}
				n++
			}
			if n == 0 {
				t.Fatalf("empty error %q", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted an invalid config: %v", err)
		}
		s, err := New(cfg, t0, 1)
		if err != nil {
			t.Fatalf("New refused what ParseScaledObject accepted: %v", err)
		}
		loads := []float64{0, 1e12, 3.5, -1, 1e300, 7}
		for i := range 200 {
			d := loads[i%len(loads)]
			st := s.Step(t0.Add(time.Duration(i)*7*time.Second), Input{Desired: d, DesiredOK: i%11 != 0, Active: d > 0, ActiveOK: i%13 != 0})
			if st.Replicas < 0 || st.Replicas > cfg.MaxReplicas || st.Ready > st.Replicas || st.Ready < 0 {
				t.Fatalf("step %d: impossible state %+v with %+v", i, st, cfg)
			}
		}
	})
}

// unjoin splits an errors.Join into its parts.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
