package main

import (
	"slices"
	"strings"
	"testing"
)

func TestParseRequest(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		chat    bool
		body    string
		want    parsed
		wantErr string
	}{
		"completion defaults": {body: `{"prompt":"a  b\tc\n d"}`,
			want: parsed{words: []string{"a", "b", "c", "d"}, maxTokens: 16}},
		"completion streamed with usage": {body: `{"model":"m","prompt":["x y"],"max_tokens":3,"stream":true,"stream_options":{"include_usage":true}}`,
			want: parsed{model: "m", words: []string{"x", "y"}, maxTokens: 3, stream: true, includeUsage: true}},
		"token ids": {body: `{"prompt":[1,22,333]}`,
			want: parsed{words: []string{"1", "22", "333"}, maxTokens: 16}},
		"chat contents in order, no roles": {chat: true,
			body: `{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"why so"},{"type":"text","text":"blue"}]}],"max_completion_tokens":4,"max_tokens":9}`,
			want: parsed{words: []string{"be", "brief", "why", "so", "blue"}, maxTokens: 4}},
		"chat max_tokens": {chat: true, body: `{"messages":[{"role":"user","content":"hi"}],"max_tokens":2}`,
			want: parsed{words: []string{"hi"}, maxTokens: 2}},
		"not json":               {body: `{"prompt":`, wantErr: "decoding the request body"},
		"two values":             {body: `{"prompt":"a"} {}`, wantErr: "more than one JSON value"},
		"no prompt":              {body: `{}`, wantErr: "prompt is missing"},
		"empty prompt":           {body: `{"prompt":"   "}`, wantErr: "the prompt is empty"},
		"batch of prompts":       {body: `{"prompt":["a","b"]}`, wantErr: "array of 2 strings"},
		"prompt of another type": {body: `{"prompt":{"a":1}}`, wantErr: "prompt must be"},
		"zero max_tokens":        {body: `{"prompt":"a","max_tokens":0}`, wantErr: "max_tokens 0 must be at least 1"},
		"stream_options alone":   {body: `{"prompt":"a","stream_options":{"include_usage":true}}`, wantErr: "stream_options"},
		"chat without messages":  {chat: true, body: `{"messages":[]}`, wantErr: "messages is missing"},
		"chat bad content":       {chat: true, body: `{"messages":[{"role":"user","content":3}]}`, wantErr: "messages[0].content"},
		"chat ignores prompt":    {chat: true, body: `{"prompt":"a","messages":[{"role":"user","content":null}]}`, wantErr: "the prompt is empty"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := parseRequest([]byte(tc.body), tc.chat)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.model != tc.want.model || !slices.Equal(got.words, tc.want.words) || got.maxTokens != tc.want.maxTokens ||
				got.stream != tc.want.stream || got.includeUsage != tc.want.includeUsage {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestBlockHashes(t *testing.T) {
	t.Parallel()
	a := append(words("s", 40), "x")
	b := append(words("s", 40), "y")
	c := append(append(words("t", 1), words("s", 40)[1:]...), "x")
	ha, hb, hc := blockHashes(a), blockHashes(b), blockHashes(c)
	if len(ha) != 2 {
		t.Fatalf("%d hashes for 41 words, want 2 full blocks", len(ha))
	}
	if !slices.Equal(ha, hb) {
		t.Error("prompts differing after their full blocks hash differently")
	}
	// c differs in its first word only: the chain makes every block differ.
	if ha[0] == hc[0] || ha[1] == hc[1] {
		t.Errorf("a prefix change did not change every later block: %v vs %v", ha, hc)
	}
}

// FuzzParseRequest checks that no body makes the parser panic, and that
// what it accepts is usable: a non-empty prompt of words without spaces
// and at least one output token.
func FuzzParseRequest(f *testing.F) {
	for _, seed := range []string{
		`{"prompt":"hello world","max_tokens":5,"stream":true,"stream_options":{"include_usage":true}}`,
		`{"prompt":[1,2,3]}`,
		`{"prompt":["one"]}`,
		`{"messages":[{"role":"user","content":"hi"}],"max_completion_tokens":2}`,
		`{"messages":[{"role":"user","content":[{"type":"text","text":"a b"}]}]}`,
		`{"prompt":null}`,
		`[]`,
		``,
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, chat bool) {
		p, err := parseRequest(body, chat)
		if err != nil {
			return
		}
		if len(p.words) == 0 || p.maxTokens < 1 {
			t.Fatalf("accepted %q as %d words, max_tokens %d", body, len(p.words), p.maxTokens)
		}
		for _, w := range p.words {
			if w == "" || len(strings.Fields(w)) != 1 {
				t.Fatalf("word %q is not one token", w)
			}
		}
		if p.includeUsage && !p.stream {
			t.Fatal("include_usage without stream")
		}
		if got := blockHashes(p.words); len(got) != len(p.words)/blockSize {
			t.Fatalf("%d block hashes for %d words", len(got), len(p.words))
		}
	})
}
