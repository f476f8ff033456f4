package main

import (
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestVocabularyDistinct(t *testing.T) {
	v := vocabulary()
	if len(v) != vocabularySize {
		t.Fatalf("%d words, want %d", len(v), vocabularySize)
	}
	seen := map[string]bool{}
	for _, w := range v {
		if w == "" || strings.ContainsAny(w, " \t\n") {
			t.Fatalf("word %q is empty or holds space", w)
		}
		if seen[w] {
			t.Fatalf("word %q twice", w)
		}
		seen[w] = true
	}
}

func TestGenerateDeterministic(t *testing.T) {
	for _, w := range []workload{mixed, sharedPrefix} {
		a, err := generate(w, defaultShape(), 50, 7)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := generate(w, defaultShape(), 50, 7)
		c, _ := generate(w, defaultShape(), 50, 8)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: same seed, different requests", w)
		}
		if reflect.DeepEqual(a, c) {
			t.Errorf("%s: different seeds, same requests", w)
		}
	}
}

func TestGenerateShapes(t *testing.T) {
	s := defaultShape()
	const n = 2000
	t.Run("mixed", func(t *testing.T) {
		reqs, err := generate(mixed, s, n, 1)
		if err != nil {
			t.Fatal(err)
		}
		prefixes := map[string]bool{}
		var outSum float64
		for i, r := range reqs {
			words := len(strings.Fields(r.user))
			if words != r.words || r.words < s.promptMin || r.words > s.promptMax {
				t.Fatalf("request %d: %d words (field %d), want %d–%d", i, words, r.words, s.promptMin, s.promptMax)
			}
			if r.maxTokens < s.outputMin || r.maxTokens > s.outputMax {
				t.Fatalf("request %d: max_tokens %d outside %d–%d", i, r.maxTokens, s.outputMin, s.outputMax)
			}
			if r.system != "" || r.group != -1 {
				t.Fatalf("request %d: a mixed request has a system prompt", i)
			}
			// Four words are 48 bits of randomness: equal starts mean the
			// prompts were not independent.
			p := strings.Join(strings.Fields(r.user)[:4], " ")
			if prefixes[p] {
				t.Fatalf("request %d: prompt start %q repeats", i, p)
			}
			prefixes[p] = true
			outSum += float64(r.maxTokens)
		}
		// Log-uniform on [20, 300]: mean (300−20)/ln(15) ≈ 103.
		if mean := outSum / n; mean < 90 || mean > 118 {
			t.Errorf("mean output %.1f tokens, want about 103", mean)
		}
	})
	t.Run("shared-prefix", func(t *testing.T) {
		reqs, err := generate(sharedPrefix, s, n, 1)
		if err != nil {
			t.Fatal(err)
		}
		systems := map[string]int{}
		for i, r := range reqs {
			if len(strings.Fields(r.system)) != s.systemWords {
				t.Fatalf("request %d: system prompt of %d words", i, len(strings.Fields(r.system)))
			}
			q := len(strings.Fields(r.user))
			if q < s.questionMin || q > s.questionMax || r.words != s.systemWords+q {
				t.Fatalf("request %d: question of %d words, words %d", i, q, r.words)
			}
			if r.maxTokens < s.sharedOutMin || r.maxTokens > s.sharedOutMax {
				t.Fatalf("request %d: max_tokens %d", i, r.maxTokens)
			}
			if g, ok := systems[r.system]; ok && g != r.group {
				t.Fatalf("request %d: one system prompt in groups %d and %d", i, g, r.group)
			}
			systems[r.system] = r.group
		}
		if len(systems) != s.groups {
			t.Errorf("%d distinct system prompts, want %d", len(systems), s.groups)
		}
	})
}

// TestPoissonArrivals checks the arrival process: exponential gaps of
// mean 1/rate (mean and coefficient of variation 1), in order.
func TestPoissonArrivals(t *testing.T) {
	const n, rate = 20000, 8.0
	reqs, err := generate(mixed, shape{promptMin: 1, promptMax: 1, outputMin: 1, outputMax: 1, groups: 1, systemWords: 1,
		questionMin: 1, questionMax: 1, sharedOutMin: 1, sharedOutMax: 1}, n, 3)
	if err != nil {
		t.Fatal(err)
	}
	timed := atRate(reqs, rate)
	if reqs[n-1].at == timed[n-1].at {
		t.Fatal("atRate changed nothing, or changed its argument")
	}
	var sum, sq float64
	prev := time.Duration(0)
	for i, r := range timed {
		if r.at < prev {
			t.Fatalf("request %d due before request %d", i, i-1)
		}
		gap := (r.at - prev).Seconds()
		sum += gap
		sq += gap * gap
		prev = r.at
	}
	mean := sum / n
	cv := math.Sqrt(sq/n-mean*mean) / mean
	if math.Abs(mean-1/rate)/(1/rate) > 0.03 {
		t.Errorf("mean gap %.4fs, want %.4fs", mean, 1/rate)
	}
	if cv < 0.95 || cv > 1.05 {
		t.Errorf("coefficient of variation %.3f, want 1 (exponential)", cv)
	}
}

func TestLogUniformBounds(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	seen := map[int]bool{}
	for range 100000 {
		v := logUniform(rng, 20, 300)
		if v < 20 || v > 300 {
			t.Fatalf("%d outside 20–300", v)
		}
		seen[v] = true
	}
	if !seen[20] || !seen[300] {
		t.Errorf("the bounds are never drawn: 20 %v, 300 %v", seen[20], seen[300])
	}
	if logUniform(rng, 5, 5) != 5 || between(rng, 9, 9) != 9 {
		t.Error("a one-value range gave another value")
	}
}

func TestGenerateErrors(t *testing.T) {
	if _, err := generate("bursty", defaultShape(), 1, 1); err == nil {
		t.Error("an unknown workload was accepted")
	}
	bad := defaultShape()
	bad.promptMax = bad.promptMin - 1
	if _, err := generate(mixed, bad, 1, 1); err == nil {
		t.Error("an empty prompt range was accepted")
	}
	if _, err := generate(mixed, defaultShape(), -1, 1); err == nil {
		t.Error("a negative count was accepted")
	}
}
