package memprom

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
)

func TestParseSeries(t *testing.T) {
	stale := math.Float64frombits(value.StaleNaN)
	cases := map[string]struct {
		series, values string
		interval       time.Duration
		wantLabels     string
		want           []Sample
	}{
		"plain values": {`up{job="a"}`, "1 2 3", time.Minute, `{__name__="up", job="a"}`,
			[]Sample{{0, 1}, {60_000, 2}, {120_000, 3}}},
		"x repeats the value n more times": {`m`, "4x3", 15 * time.Second, `{__name__="m"}`,
			[]Sample{{0, 4}, {15_000, 4}, {30_000, 4}, {45_000, 4}}},
		"a+bxn counts up": {`m`, "0+10x2 -1-1x1", time.Minute, `{__name__="m"}`,
			[]Sample{{0, 0}, {60_000, 10}, {120_000, 20}, {180_000, -1}, {240_000, -2}}},
		"_ is no sample but takes a slot": {`m`, "1 _ 3 _x2 6", time.Minute, `{__name__="m"}`,
			[]Sample{{0, 1}, {120_000, 3}, {300_000, 6}}},
		"stale is a staleness marker": {`m`, "1 stale", time.Minute, `{__name__="m"}`,
			[]Sample{{0, 1}, {60_000, stale}}},
		"labels only": {`{a="b"}`, "7", time.Minute, `{a="b"}`, []Sample{{0, 7}}},
		"no values":   {`m`, "", time.Minute, `{__name__="m"}`, []Sample{}},
		"sub-millisecond interval truncates each time as promtool": {`m`, "1 2 3", 1500 * time.Microsecond, `{__name__="m"}`,
			[]Sample{{0, 1}, {1, 2}, {3, 3}}},
		"special floats": {`m`, "Inf -Inf NaN", time.Minute, `{__name__="m"}`,
			[]Sample{{0, math.Inf(1)}, {60_000, math.Inf(-1)}, {120_000, math.NaN()}}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			lset, got, err := ParseSeries(tc.series, tc.values, Epoch(), tc.interval)
			if err != nil {
				t.Fatal(err)
			}
			if lset.String() != tc.wantLabels {
				t.Errorf("labels %s, want %s", lset, tc.wantLabels)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("samples %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i].T != tc.want[i].T || math.Float64bits(got[i].V) != math.Float64bits(tc.want[i].V) {
					t.Errorf("sample %d: %v (bits %x), want %v (bits %x)", i, got[i], math.Float64bits(got[i].V), tc.want[i], math.Float64bits(tc.want[i].V))
				}
			}
		})
	}
}

func TestParseSeriesStart(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	_, got, err := ParseSeries("m", "1 2", start, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].T != start.UnixMilli() || got[1].T != start.Add(time.Minute).UnixMilli() {
		t.Errorf("times %d, %d; want %d, %d", got[0].T, got[1].T, start.UnixMilli(), start.Add(time.Minute).UnixMilli())
	}
}

func TestParseSeriesErrors(t *testing.T) {
	cases := map[string]struct {
		series, values string
		interval       time.Duration
		field          string
		offset         int // -1: none
		msg            string
	}{
		"word in values":         {"m", "1 two 3", time.Minute, "values", 2, "unexpected identifier"},
		"bad character":          {"m", "1 2 $", time.Minute, "values", 4, "unexpected character"},
		"unclosed label set":     {`m{a="b"`, "1", time.Minute, "series", -2, ""},
		"bad label name":         {`m{1a="b"}`, "1", time.Minute, "series", 2, ""},
		"empty series":           {``, "1", time.Minute, "series", -1, "series: empty"},
		"empty label set":        {`{}`, "1", time.Minute, "series", -1, "no metric name and no labels"},
		"histogram":              {"m", "{{schema:0 sum:1 count:1}}", time.Minute, "values", -1, "native histogram"},
		"huge repeat":            {"m", "1x99999999999999999999999", time.Minute, "values", 1, "more than 1000000 samples"},
		"repeats add up":         {"m", "1x600000 2x600000", time.Minute, "values", 10, "more than 1000000 samples"},
		"gap repeat too large":   {"m", "_x1000001", time.Minute, "values", 1, "more than 1000000 samples"},
		"zero interval":          {"m", "1", 0, "", -1, "interval 0s: must be positive"},
		"x without a count":      {"m", "1x", time.Minute, "values", -2, ""},
		"negative repeat":        {"m", "1x-2", time.Minute, "values", -2, ""},
		"repeat is not a number": {"m", "1xa", time.Minute, "values", -2, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, _, err := ParseSeries(tc.series, tc.values, Epoch(), tc.interval)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q, want one containing %q", err, tc.msg)
			}
			if tc.field == "" {
				return
			}
			var ne *NotationError
			if !errors.As(err, &ne) {
				t.Fatalf("error %q is not a NotationError", err)
			}
			if ne.Field != tc.field {
				t.Errorf("field %q, want %q (error %q)", ne.Field, tc.field, err)
			}
			// -2: some position within the field's string, the parser's choice.
			switch {
			case tc.offset == -2:
				n := len(tc.values)
				if tc.field == "series" {
					n = len(tc.series)
				}
				if ne.Offset < 0 || ne.Offset > n {
					t.Errorf("offset %d, want one within the %d bytes of the %s (error %q)", ne.Offset, n, tc.field, err)
				}
			case ne.Offset != tc.offset:
				t.Errorf("offset %d, want %d (error %q)", ne.Offset, tc.offset, err)
			}
		})
	}
}

func TestParseLabels(t *testing.T) {
	got, err := ParseLabels(`queue_depth{model="llama", namespace="ml"}`)
	if err != nil {
		t.Fatal(err)
	}
	if want := labels.FromStrings("__name__", "queue_depth", "model", "llama", "namespace", "ml"); !labels.Equal(labels.FromMap(got), want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got, err := ParseLabels(`{}`); err != nil || len(got) != 0 {
		t.Errorf(`ParseLabels("{}") = %v, %v; want no labels`, got, err)
	}
	_, err = ParseLabels(`{model="llama", namespace=ml}`)
	var ne *NotationError
	if !errors.As(err, &ne) || ne.Field != "labels" || ne.Offset != 26 {
		t.Errorf("error %#v, want a labels NotationError at offset 26", err)
	}
}

func FuzzAddSeries(f *testing.F) {
	for _, seed := range [][2]string{
		{`m{a="b"}`, "0+10x5 4x3 _ stale"},
		{"m", "1 _x3 2 -1-1x2"},
		{`{__name__="m", le="+Inf"}`, "Inf NaN -Inf 1e3 0x10 .5"},
		{"m", "{{schema:0 sum:1 count:1 buckets:[1]}}x2"},
		{`m{a="b"`, "1x"},
		{"m", "1x99999999999"},
		{"", ""},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, series, values string) {
		s := New()
		if err := s.AddSeries(series, values, Epoch(), 15*time.Second); err != nil {
			var ne *NotationError
			if errors.As(err, &ne) && ne.Offset >= 0 {
				n := len(values)
				if ne.Field == "series" {
					n = len(series)
				}
				if ne.Offset > n {
					t.Fatalf("offset %d past the %d bytes of the %s: %v", ne.Offset, n, ne.Field, err)
				}
			}
			return
		}
		// Whatever loaded can be selected back, in time order.
		q, _ := s.Querier(math.MinInt64, math.MaxInt64)
		set := q.Select(t.Context(), true, nil)
		for set.Next() {
			it := set.At().Iterator(nil)
			last := int64(math.MinInt64)
			n := 0
			for it.Next() != 0 {
				ts, _ := it.At()
				if ts <= last {
					t.Fatalf("sample at %d after %d", ts, last)
				}
				last = ts
				n++
			}
			if n > MaxSeriesSamples {
				t.Fatalf("%d samples, more than MaxSeriesSamples", n)
			}
		}
	})
}
