package memprom

import (
	"context"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// all reads every sample of every series matching matchers in [mint, maxt].
func all(t *testing.T, s *Storage, mint, maxt int64, matchers ...*labels.Matcher) map[string][]Sample {
	t.Helper()
	q, err := s.Querier(mint, maxt)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	out := map[string][]Sample{}
	set := q.Select(context.Background(), true, nil, matchers...)
	var it chunkenc.Iterator
	for set.Next() {
		it = set.At().Iterator(it)
		var got []Sample
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			got = append(got, Sample{ts, v})
		}
		out[set.At().Labels().String()] = got
	}
	return out
}

func TestStorageAdd(t *testing.T) {
	a := labels.FromStrings("__name__", "m", "pod", "a")
	b := labels.FromStrings("__name__", "m", "pod", "b")
	cases := map[string]struct {
		adds    [][]Sample // all to series a
		want    []Sample
		wantErr string
	}{
		"appends":               {[][]Sample{{{1, 1}, {2, 2}}, {{3, 3}}}, []Sample{{1, 1}, {2, 2}, {3, 3}}, ""},
		"merges an earlier run": {[][]Sample{{{2, 2}, {4, 4}}, {{1, 1}, {3, 3}, {5, 5}}}, []Sample{{1, 1}, {2, 2}, {3, 3}, {4, 4}, {5, 5}}, ""},
		"same sample twice":     {[][]Sample{{{1, 1}, {2, 2}}, {{2, 2}}}, []Sample{{1, 1}, {2, 2}}, ""},
		"other value same time": {[][]Sample{{{1, 1}, {2, 2}}, {{2, 3}}}, nil, "two different values at 2 ms"},
		"out of order in one":   {[][]Sample{{{2, 2}, {1, 1}}}, nil, "out of time order"},
		"duplicate time in one": {[][]Sample{{{1, 1}, {1, 1}}}, nil, "out of time order"},
		"staleness marker is kept": {[][]Sample{{{1, 1}, {2, math.Float64frombits(0x7ff0000000000002)}}},
			[]Sample{{1, 1}, {2, math.Float64frombits(0x7ff0000000000002)}}, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := New()
			if err := s.Add(b, []Sample{{1, 100}}); err != nil {
				t.Fatal(err)
			}
			var err error
			for _, add := range tc.adds {
				if err = s.Add(a, add); err != nil {
					break
				}
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := all(t, s, math.MinInt64, math.MaxInt64, labels.MustNewMatcher(labels.MatchEqual, "pod", "a"))
			if len(got) != 1 || !sameSamples(got[a.String()], tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func sameSamples(a, b []Sample) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].T != b[i].T || math.Float64bits(a[i].V) != math.Float64bits(b[i].V) {
			return false
		}
	}
	return true
}

func TestStorageRejects(t *testing.T) {
	s := New()
	if err := s.Add(labels.EmptyLabels(), []Sample{{1, 1}}); err == nil {
		t.Error("empty labels: no error")
	}
	if err := s.Add(labels.New(labels.Label{Name: "a", Value: "1"}, labels.Label{Name: "a", Value: "2"}), nil); err == nil {
		t.Error("duplicate label names: no error")
	}
}

func TestStorageSelect(t *testing.T) {
	s := New()
	for _, def := range [][2]string{
		{`m{pod="b"}`, "1 2 3 4"},
		{`m{pod="a"}`, "5 6 7 8"},
		{`other{pod="a"}`, "9"},
	} {
		if err := s.AddSeries(def[0], def[1], Epoch(), time.Second); err != nil {
			t.Fatal(err)
		}
	}
	// The window cuts samples (both ends included) and drops series with
	// none left; series come sorted by labels.
	got := all(t, s, 1000, 2000, labels.MustNewMatcher(labels.MatchEqual, "__name__", "m"))
	want := map[string][]Sample{
		`{__name__="m", pod="a"}`: {{1000, 6}, {2000, 7}},
		`{__name__="m", pod="b"}`: {{1000, 2}, {2000, 3}},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, w := range want {
		if !sameSamples(got[k], w) {
			t.Errorf("%s: got %v, want %v", k, got[k], w)
		}
	}
	if got := all(t, s, 1000, 2000, labels.MustNewMatcher(labels.MatchEqual, "__name__", "other")); len(got) != 0 {
		t.Errorf("other has no sample in [1s, 2s], got %v", got)
	}
	q, _ := s.Querier(0, 5000)
	names, _, _ := q.LabelNames(context.Background(), nil)
	values, _, _ := q.LabelValues(context.Background(), "pod", nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "m"))
	if strings.Join(names, ",") != "__name__,pod" || strings.Join(values, ",") != "a,b" {
		t.Errorf("names %v, values %v", names, values)
	}
	set := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "pod", "b"))
	set.Next()
	it := set.At().Iterator(nil)
	for _, step := range []struct {
		seek    int64
		wantT   int64
		wantNil bool
	}{{1500, 2000, false}, {0, 2000, false}, {3000, 3000, false}, {3001, 0, true}} {
		vt := it.Seek(step.seek)
		if step.wantNil {
			if vt != chunkenc.ValNone {
				t.Errorf("seek %d: %v, want none", step.seek, vt)
			}
			continue
		}
		if ts, _ := it.At(); vt != chunkenc.ValFloat || ts != step.wantT {
			t.Errorf("seek %d: %v at %d, want float at %d (seek never goes back)", step.seek, vt, ts, step.wantT)
		}
	}
}

// TestStorageConcurrent adds while queries run; run it with -race.
func TestStorageConcurrent(t *testing.T) {
	s := New()
	lset := labels.FromStrings("__name__", "m")
	e := NewEngine(s, Options{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 200 {
			if err := s.Add(lset, []Sample{{int64(i) * 1000, float64(i)}}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := range 50 {
		if _, err := e.Query(context.Background(), "sum_over_time(m[1m])", time.UnixMilli(int64(i)*4000)); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}
