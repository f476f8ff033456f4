package memprom

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// Sample is one float sample of a series. A staleness marker is a sample
// whose value is value.StaleNaN (of package
// github.com/prometheus/prometheus/model/value; test with value.IsStaleNaN), as
// Prometheus writes one when a series disappears.
type Sample struct {
	T int64 // milliseconds since the Unix epoch
	V float64
}

// Storage is an in-memory set of float series that the PromQL engine
// queries through [storage.Queryable]. It holds only what a test file or a
// backtest's --series file gives it, so it keeps no index beyond a map of
// series: a select scans every series, which is cheap for the tens of
// series such files hold.
//
// Add and AddSeries may run while queries run: a query sees the samples
// that were added before its select.
type Storage struct {
	mu     sync.RWMutex
	series map[uint64][]*memSeries // by label hash; more than one on a collision
}

var _ storage.Queryable = (*Storage)(nil)

// memSeries is one series. Its samples slice is only ever appended to in
// place, past the end that a running query may hold; a merge that lands
// before the end builds a new slice, so a query's view never changes.
type memSeries struct {
	lset    labels.Labels
	samples points
}

// New returns an empty Storage.
func New() *Storage {
	return &Storage{series: map[uint64][]*memSeries{}}
}

// Add appends samples, in time order, to the series lset. Adding to labels
// already present merges the new samples with the old ones by time, so a
// series may be loaded in several chunks; a second sample at a time the
// series already has is an error unless it is the very same value, as
// Prometheus' TSDB treats a duplicate. Native histograms are not held.
func (s *Storage) Add(lset labels.Labels, samples []Sample) error {
	if lset.IsEmpty() {
		return errors.New("series has no labels")
	}
	if name, dup := lset.HasDuplicateLabelNames(); dup {
		return fmt.Errorf("series %s: label %q appears twice", lset, name)
	}
	for i := 1; i < len(samples); i++ {
		if samples[i].T <= samples[i-1].T {
			return fmt.Errorf("series %s: samples out of time order: %d ms after %d ms", lset, samples[i].T, samples[i-1].T)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h := lset.Hash()
	var ms *memSeries
	for _, c := range s.series[h] {
		if labels.Equal(c.lset, lset) {
			ms = c
			break
		}
	}
	if ms == nil {
		ms = &memSeries{lset: lset.Copy()}
		s.series[h] = append(s.series[h], ms)
	}
	if len(samples) == 0 {
		return nil
	}
	if n := len(ms.samples); n == 0 || ms.samples[n-1].t < samples[0].T {
		ms.samples = slices.Grow(ms.samples, len(samples))
		for _, x := range samples {
			ms.samples = append(ms.samples, point{t: x.T, v: x.V})
		}
		return nil
	}
	merged, err := mergeSamples(ms.samples, samples)
	if err != nil {
		return fmt.Errorf("series %s: %w", lset, err)
	}
	ms.samples = merged
	return nil
}

// mergeSamples merges two time-ordered runs into a new slice.
func mergeSamples(a points, b []Sample) (points, error) {
	out := make(points, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i].t < b[j].T):
			out = append(out, a[i])
			i++
		case i == len(a) || a[i].t > b[j].T:
			out = append(out, point{t: b[j].T, v: b[j].V})
			j++
		default:
			if !sameValue(a[i].v, b[j].V) {
				return nil, fmt.Errorf("two different values at %d ms: %g and %g", b[j].T, a[i].v, b[j].V)
			}
			out = append(out, a[i])
			i++
			j++
		}
	}
	return out, nil
}

// sameValue compares bit for bit, so that a staleness marker equals itself
// and differs from an ordinary NaN, as in the TSDB.
func sameValue(a, b float64) bool {
	return math.Float64bits(a) == math.Float64bits(b)
}

// Querier returns a querier over the samples in [mint, maxt] (milliseconds,
// both inclusive).
func (s *Storage) Querier(mint, maxt int64) (storage.Querier, error) {
	return &querier{s: s, mint: mint, maxt: maxt}, nil
}

type querier struct {
	s          *Storage
	mint, maxt int64
}

// Select returns the matching series, always sorted by labels: sorting the
// few series a file holds costs nothing, and the engine then never sees
// an order that depends on map iteration.
func (q *querier) Select(_ context.Context, _ bool, hints *storage.SelectHints, matchers ...*labels.Matcher) storage.SeriesSet {
	mint, maxt := q.mint, q.maxt
	if hints != nil {
		mint, maxt = max(mint, hints.Start), min(maxt, hints.End)
	}
	var out []storage.Series
	for _, ms := range q.s.matching(matchers) {
		lo := sort.Search(len(ms.samples), func(i int) bool { return ms.samples[i].t >= mint })
		hi := sort.Search(len(ms.samples), func(i int) bool { return ms.samples[i].t > maxt })
		if lo >= hi {
			continue
		}
		out = append(out, &series{lset: ms.lset, samples: ms.samples[lo:hi:hi]})
	}
	slices.SortFunc(out, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	return &seriesSet{series: out, i: -1}
}

// matching returns a snapshot of the series that every matcher accepts.
func (s *Storage) matching(matchers []*labels.Matcher) []memSeries {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []memSeries
	for _, bucket := range s.series {
	next:
		for _, ms := range bucket {
			for _, m := range matchers {
				if !m.Matches(ms.lset.Get(m.Name)) {
					continue next
				}
			}
			out = append(out, memSeries{lset: ms.lset, samples: ms.samples})
		}
	}
	return out
}

// LabelValues returns the sorted values of name among the matching series
// that have a sample in the querier's window.
func (q *querier) LabelValues(_ context.Context, name string, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	seen := map[string]struct{}{}
	for _, ms := range q.inWindow(matchers) {
		if v := ms.lset.Get(name); v != "" {
			seen[v] = struct{}{}
		}
	}
	return limited(seen, hints), nil, nil
}

// LabelNames returns the sorted label names of the matching series that
// have a sample in the querier's window.
func (q *querier) LabelNames(_ context.Context, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	seen := map[string]struct{}{}
	for _, ms := range q.inWindow(matchers) {
		ms.lset.Range(func(l labels.Label) { seen[l.Name] = struct{}{} })
	}
	return limited(seen, hints), nil, nil
}

func (q *querier) inWindow(matchers []*labels.Matcher) []memSeries {
	all := q.s.matching(matchers)
	out := all[:0]
	for _, ms := range all {
		i := sort.Search(len(ms.samples), func(i int) bool { return ms.samples[i].t >= q.mint })
		if i < len(ms.samples) && ms.samples[i].t <= q.maxt {
			out = append(out, ms)
		}
	}
	return out
}

func limited(set map[string]struct{}, hints *storage.LabelHints) []string {
	out := make([]string, 0, len(set))
	for v := range set {
		out = append(out, v)
	}
	slices.Sort(out)
	if hints != nil && hints.Limit > 0 && len(out) > hints.Limit {
		out = out[:hints.Limit]
	}
	return out
}

// Close releases nothing: the querier holds no resources.
func (q *querier) Close() error { return nil }

type seriesSet struct {
	series []storage.Series
	i      int
}

func (ss *seriesSet) Next() bool                        { ss.i++; return ss.i < len(ss.series) }
func (ss *seriesSet) At() storage.Series                { return ss.series[ss.i] }
func (ss *seriesSet) Err() error                        { return nil }
func (ss *seriesSet) Warnings() annotations.Annotations { return nil }

// series is one selected series, its samples cut to the select's window.
type series struct {
	lset    labels.Labels
	samples points
}

func (s *series) Labels() labels.Labels { return s.lset }

// Iterator reuses it when it is the iterator of an earlier series, as the
// engine hands back the previous series' iterator. The iterator is
// storage's list iterator: defining one here would mean a method named
// Seek that go vet mistakes for io.Seeker's.
func (s *series) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	if r, ok := it.(interface{ Reset(storage.Samples) }); ok {
		r.Reset(s.samples)
		return it
	}
	return storage.NewListSeriesIterator(s.samples)
}

// points is a series' samples as storage.Samples.
type points []point

func (p points) Get(i int) chunks.Sample { return &p[i] }
func (p points) Len() int                { return len(p) }

// point is a float sample as chunks.Sample; Get hands out pointers into
// the slice, so iterating allocates nothing per sample.
type point struct {
	t int64
	v float64
}

func (p *point) T() int64                      { return p.t }
func (p *point) ST() int64                     { return 0 } // test series have no start timestamps
func (p *point) F() float64                    { return p.v }
func (p *point) H() *histogram.Histogram       { return nil }
func (p *point) FH() *histogram.FloatHistogram { return nil }
func (p *point) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (p *point) Copy() chunks.Sample           { c := *p; return &c }
