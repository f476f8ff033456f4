package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// chatStream is a stream as vLLM sends it for a chat completion of two
// tokens with include_usage.
const chatStream = `data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}

data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":" hello"},"finish_reason":null}]}

data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":" world"},"finish_reason":null}]}

data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"length"}]}

data: {"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":40,"completion_tokens":2,"total_tokens":42,"prompt_tokens_details":{"cached_tokens":32}}}

data: [DONE]

`

func TestReadStream(t *testing.T) {
	tests := map[string]struct {
		in                   string
		tokens               int
		prompt, done, cached int
		finish               string
		err                  string
	}{
		"chat":                {in: chatStream, tokens: 2, prompt: 40, done: 2, cached: 32, finish: "length"},
		"crlf":                {in: strings.ReplaceAll(chatStream, "\n", "\r\n"), tokens: 2, prompt: 40, done: 2, cached: 32, finish: "length"},
		"cr":                  {in: strings.ReplaceAll(chatStream, "\n", "\r"), tokens: 2, prompt: 40, done: 2, cached: 32, finish: "length"},
		"no space after data": {in: strings.ReplaceAll(chatStream, "data: ", "data:"), tokens: 2, prompt: 40, done: 2, cached: 32, finish: "length"},
		"comments and ids": {in: ": keep-alive\n\nid: 7\nevent: message\ndata: {\"choices\":[{\"text\":\"a\"}]}\n\n" +
			"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n", tokens: 1, prompt: 3, done: 1},
		"data split over lines": {in: "data: {\"choices\":\ndata: [{\"text\":\"a\"}]}\n\ndata: [DONE]\n\n", tokens: 1},
		"done without blank":    {in: "data: {\"choices\":[{\"text\":\"a\"}]}\n\ndata: [DONE]", tokens: 1},
		"no usage":              {in: "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\ndata: [DONE]\n\n", tokens: 1},
		"no done":               {in: "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n", tokens: 1, err: "without data: [DONE]"},
		"cut off event":         {in: "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\ndata: {\"choi", tokens: 1, err: "without data: [DONE]"},
		"empty":                 {in: "", err: "without data: [DONE]"},
		"not json":              {in: "data: hello\n\n", err: "frame \"hello\""},
		"error frame":           {in: "data: {\"error\":{\"message\":\"overloaded\"}}\n\n", err: "error frame"},
		"data after done":       {in: "data: [DONE]\n\ndata: {}\n\n", err: "data after [DONE]"},
		"null error":            {in: "data: {\"error\":null,\"choices\":[{\"text\":\"a\"}]}\n\ndata: [DONE]\n\n", tokens: 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			calls := 0
			s, err := readStream(strings.NewReader(tc.in), func() { calls++ })
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if s.tokens != tc.tokens || calls != tc.tokens {
				t.Errorf("%d tokens, %d onToken calls, want %d", s.tokens, calls, tc.tokens)
			}
			if tc.err != "" {
				return
			}
			if tc.prompt > 0 {
				if s.usage == nil {
					t.Fatal("no usage")
				}
				if s.usage.PromptTokens != tc.prompt || s.usage.CompletionTokens != tc.done || s.usage.cached() != tc.cached {
					t.Errorf("usage %+v cached %d, want prompt %d completion %d cached %d", *s.usage, s.usage.cached(), tc.prompt, tc.done, tc.cached)
				}
			} else if s.usage != nil {
				t.Errorf("usage %+v from a stream without one", *s.usage)
			}
			if s.finish != tc.finish {
				t.Errorf("finish %q, want %q", s.finish, tc.finish)
			}
		})
	}
}

// TestReadStreamFirstTokenEarly checks that onToken runs when the first
// token frame arrives, not when the stream ends: the TTFT depends on it.
func TestReadStreamFirstTokenEarly(t *testing.T) {
	pr, pw := io.Pipe()
	first := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := readStream(pr, func() {
			select {
			case <-first:
			default:
				close(first)
			}
		})
		done <- err
	}()
	if _, err := io.WriteString(pw, "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n"); err != nil {
		t.Fatal(err)
	}
	<-first // the stream is still open: this returns only if onToken ran
	io.WriteString(pw, "data: [DONE]\n\n")
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestReadStreamLongFrame(t *testing.T) {
	in := "data: {\"choices\":[{\"text\":\"" + strings.Repeat("a", maxFrame) + "\"}]}\n\ndata: [DONE]\n\n"
	if _, err := readStream(strings.NewReader(in), nil); err == nil {
		t.Error("a frame longer than maxFrame was read")
	}
}

// FuzzReadStream checks that any input is read without a panic, that
// how it arrives (all at once or byte by byte) changes nothing, and that
// a token is never counted without a data line to carry it.
func FuzzReadStream(f *testing.F) {
	f.Add([]byte(chatStream))
	f.Add([]byte(strings.ReplaceAll(chatStream, "\n", "\r\n")))
	f.Add([]byte("data: [DONE]\r"))
	f.Add([]byte("data:{\"choices\":[{\"text\":\"a\"}]}\r\rdata: [DONE]"))
	f.Add([]byte(": c\n\ndata: {\"error\":1}\n\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		a, errA := readStream(bytes.NewReader(in), nil)
		b, errB := readStream(iotest.OneByteReader(bytes.NewReader(in)), nil)
		if (errA == nil) != (errB == nil) || a.tokens != b.tokens || a.done != b.done || a.finish != b.finish || (a.usage == nil) != (b.usage == nil) {
			t.Fatalf("whole: %+v, %v; byte by byte: %+v, %v", a, errA, b, errB)
		}
		if a.usage != nil && (a.usage.PromptTokens != b.usage.PromptTokens || a.usage.CompletionTokens != b.usage.CompletionTokens || a.usage.cached() != b.usage.cached()) {
			t.Fatalf("usage differs: %+v vs %+v", *a.usage, *b.usage)
		}
		if lines := bytes.Count(in, []byte("data")); a.tokens > lines {
			t.Fatalf("%d tokens from %d data fields", a.tokens, lines)
		}
		if errA == nil && !a.done {
			t.Fatal("no error, yet no [DONE]")
		}
	})
}
