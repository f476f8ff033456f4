package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// usage is the token accounting of a response's usage frame.
type usage struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
}

// cached returns the prompt tokens served from the prefix cache.
func (u *usage) cached() int {
	if u == nil || u.PromptTokensDetails == nil {
		return 0
	}
	return u.PromptTokensDetails.CachedTokens
}

// chunk is the part of an OpenAI streaming chunk (chat or completions)
// the benchmark reads.
type chunk struct {
	Choices []struct {
		Text  string `json:"text"`
		Delta struct {
			Content string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *usage          `json:"usage"`
	Error json.RawMessage `json:"error"`
}

// stream is what a streamed response held.
type stream struct {
	// tokens counts frames carrying generated text.
	tokens int
	// usage is the last usage frame's, nil without one.
	usage *usage
	// done reports the closing "data: [DONE]".
	done bool
	// finish is the last finish_reason seen.
	finish string
}

// maxFrame bounds one SSE line; a longer one is an error rather than
// unbounded memory.
const maxFrame = 1 << 20

// readStream reads a server-sent event stream of OpenAI chunks from r
// until "data: [DONE]" or the end of r, calling onToken (if not nil) at
// each frame that carries generated text, at once, so that the caller
// can time the first token. It follows the SSE format: lines ending in
// LF, CRLF or CR; "data:" fields (one optional space after the colon)
// of one event joined by newlines; events ended by a blank line;
// comments and other fields ignored. It fails on an event that is not
// a JSON chunk, an error object in a chunk, data after [DONE], or a
// stream that ends without [DONE].
func readStream(r io.Reader, onToken func()) (stream, error) {
	var s stream
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxFrame)
	sc.Split(scanLines)
	var data []byte
	pending := false // data seen in the current event
	dispatch := func() error {
		if !pending {
			return nil
		}
		pending = false
		if s.done {
			return errors.New("data after [DONE]")
		}
		if bytes.Equal(data, []byte("[DONE]")) {
			s.done = true
			return nil
		}
		var c chunk
		if err := json.Unmarshal(data, &c); err != nil {
			return fmt.Errorf("frame %q: %w", truncate(data, 80), err)
		}
		if len(c.Error) > 0 && !bytes.Equal(c.Error, []byte("null")) {
			return fmt.Errorf("error frame: %s", truncate(c.Error, 200))
		}
		text := false
		for _, ch := range c.Choices {
			if ch.Delta.Content != "" || ch.Text != "" {
				text = true
			}
			if ch.FinishReason != nil {
				s.finish = *ch.FinishReason
			}
		}
		if text {
			s.tokens++
			if onToken != nil {
				onToken()
			}
		}
		if c.Usage != nil {
			s.usage = c.Usage
		}
		return nil
	}
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			if err := dispatch(); err != nil {
				return s, err
			}
			data = data[:0]
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		if len(field) == 0 || !bytes.Equal(field, []byte("data")) {
			continue // a comment (": …") or a field we do not use
		}
		value = bytes.TrimPrefix(value, []byte(" "))
		if pending {
			data = append(data, '\n')
		}
		data = append(data, value...)
		pending = true
	}
	if err := sc.Err(); err != nil {
		return s, fmt.Errorf("reading stream: %w", err)
	}
	// The SSE specification discards an event cut off by the end of the
	// stream; a [DONE] without its blank line is still taken as the end,
	// since nothing can follow it.
	if pending && !s.done && bytes.Equal(data, []byte("[DONE]")) {
		s.done = true
	}
	if !s.done {
		return s, errors.New("stream ended without data: [DONE]")
	}
	return s, nil
}

// scanLines splits at LF, CRLF or a lone CR, as SSE allows, keeping empty
// lines (they end events).
func scanLines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	// The scanner calls this again with more data until a line ends:
	// IndexAny keeps each call fast on a long frame arriving in pieces.
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		if data[i] == '\n' {
			return i + 1, data[:i], nil
		}
		if i+1 < len(data) {
			if data[i+1] == '\n' {
				return i + 2, data[:i], nil
			}
			return i + 1, data[:i], nil
		}
		if atEOF {
			return i + 1, data[:i], nil
		}
		return 0, nil, nil // need the next byte to know if it is CRLF
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "…"
}
