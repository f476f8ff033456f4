package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"
)

// workload names one of the two request mixes.
type workload string

const (
	// mixed draws prompt and output lengths from wide distributions and
	// shares nothing between requests.
	mixed workload = "mixed"
	// sharedPrefix gives every request one of a few long system prompts
	// followed by a short question.
	sharedPrefix workload = "shared-prefix"
)

// shape holds the length distributions of the workloads; every bound is
// inclusive. defaultShape documents the numbers in doc.go.
type shape struct {
	// Mixed: prompt words uniform in [promptMin, promptMax], output
	// tokens log-uniform in [outputMin, outputMax].
	promptMin, promptMax int
	outputMin, outputMax int
	// Shared prefixes: groups system prompts of systemWords words, each
	// request one of them (uniformly) and a question of questionMin to
	// questionMax words; output tokens uniform in [sharedOutMin,
	// sharedOutMax].
	groups                     int
	systemWords                int
	questionMin, questionMax   int
	sharedOutMin, sharedOutMax int
}

func defaultShape() shape {
	return shape{
		promptMin: 100, promptMax: 1500,
		outputMin: 20, outputMax: 300,
		groups: 16, systemWords: 2000,
		questionMin: 20, questionMax: 60,
		sharedOutMin: 20, sharedOutMax: 80,
	}
}

// request is one request of an arrival sequence.
type request struct {
	// at is when the request is due, from the start of the cell, in
	// wall time.
	at time.Duration
	// system is the system message ("" for none), user the user message.
	system, user string
	// group is the shared system prompt's index, or -1.
	group int
	// words is the prompt's length in words, which llmsim counts as
	// tokens.
	words     int
	maxTokens int
}

// vocabularySize is how many distinct words prompts are made of; random
// words from a large vocabulary make accidental prefix matches between
// unrelated prompts vanishingly rare.
const vocabularySize = 4096

// vocabulary returns vocabularySize distinct lower-case words, the same
// for every run: "ba", "be", … built from syllables, so prompts look like
// text in logs, not like numbers.
func vocabulary() []string {
	consonants := "bdfgklmnprstvz"
	vowels := "aeiou"
	words := make([]string, 0, vocabularySize)
	for i := 0; len(words) < vocabularySize; i++ {
		var b strings.Builder
		n := i
		for {
			b.WriteByte(consonants[n%len(consonants)])
			n /= len(consonants)
			b.WriteByte(vowels[n%len(vowels)])
			n /= len(vowels)
			if n == 0 {
				break
			}
			n--
		}
		words = append(words, b.String())
	}
	return words
}

// text returns n words drawn from vocab, separated by single spaces.
func text(rng *rand.Rand, vocab []string, n int) string {
	var b strings.Builder
	b.Grow(n * 7)
	for i := range n {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(vocab[rng.IntN(len(vocab))])
	}
	return b.String()
}

// between returns an integer uniform in [lo, hi].
func between(rng *rand.Rand, lo, hi int) int {
	if hi <= lo {
		return lo
	}
	return lo + rng.IntN(hi-lo+1)
}

// logUniform returns an integer whose logarithm is uniform in [ln lo,
// ln hi]: many short answers, a long tail of long ones, as chat outputs
// are. lo must be at least 1.
func logUniform(rng *rand.Rand, lo, hi int) int {
	if hi <= lo {
		return lo
	}
	v := math.Exp(math.Log(float64(lo)) + rng.Float64()*(math.Log(float64(hi)+1)-math.Log(float64(lo))))
	return min(hi, max(lo, int(v)))
}

// generate returns n requests of workload w, the same for the same seed.
// Their arrival times are a Poisson process of rate 1/s; scale them with
// atRate. Keeping content and rate apart gives every load level the very
// same requests in the same order, only closer together.
func generate(w workload, s shape, n int, seed uint64) ([]request, error) {
	if n < 0 {
		return nil, fmt.Errorf("negative request count %d", n)
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, uint64(len(w))))
	vocab := vocabulary()
	var systems []string
	if w == sharedPrefix {
		for range s.groups {
			systems = append(systems, text(rng, vocab, s.systemWords))
		}
	}
	reqs := make([]request, n)
	var t float64
	for i := range reqs {
		t += rng.ExpFloat64()
		r := request{at: time.Duration(t * float64(time.Second)), group: -1}
		switch w {
		case mixed:
			r.words = between(rng, s.promptMin, s.promptMax)
			r.user = text(rng, vocab, r.words)
			r.maxTokens = logUniform(rng, s.outputMin, s.outputMax)
		case sharedPrefix:
			r.group = rng.IntN(s.groups)
			q := between(rng, s.questionMin, s.questionMax)
			r.system = systems[r.group]
			r.user = text(rng, vocab, q)
			r.words = s.systemWords + q
			r.maxTokens = between(rng, s.sharedOutMin, s.sharedOutMax)
		default:
			return nil, fmt.Errorf("unknown workload %q", w)
		}
		reqs[i] = r
	}
	return reqs, nil
}

func (s shape) validate() error {
	switch {
	case s.promptMin < 1 || s.promptMax < s.promptMin:
		return fmt.Errorf("prompt words %d–%d: need 1 ≤ min ≤ max", s.promptMin, s.promptMax)
	case s.outputMin < 1 || s.outputMax < s.outputMin:
		return fmt.Errorf("output tokens %d–%d: need 1 ≤ min ≤ max", s.outputMin, s.outputMax)
	case s.groups < 1 || s.systemWords < 1:
		return fmt.Errorf("shared prefixes: %d groups of %d words: need at least 1 of each", s.groups, s.systemWords)
	case s.questionMin < 1 || s.questionMax < s.questionMin:
		return fmt.Errorf("question words %d–%d: need 1 ≤ min ≤ max", s.questionMin, s.questionMax)
	case s.sharedOutMin < 1 || s.sharedOutMax < s.sharedOutMin:
		return fmt.Errorf("shared-prefix output tokens %d–%d: need 1 ≤ min ≤ max", s.sharedOutMin, s.sharedOutMax)
	}
	return nil
}

// atRate returns reqs with their arrival times divided by rate (requests
// per second of wall time), leaving reqs unchanged.
func atRate(reqs []request, rate float64) []request {
	out := make([]request, len(reqs))
	for i, r := range reqs {
		r.at = time.Duration(float64(r.at) / rate)
		out[i] = r
	}
	return out
}
