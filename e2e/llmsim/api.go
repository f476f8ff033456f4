package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// defaultMaxTokens is vLLM's max_tokens for /v1/completions when a request
// names none.
const defaultMaxTokens = 16

// apiRequest is what llmsim reads of an OpenAI completion or chat request;
// other fields are ignored.
type apiRequest struct {
	Model               string          `json:"model"`
	Prompt              json.RawMessage `json:"prompt"`
	Messages            []message       `json:"messages"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Stream              bool            `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

type message struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// parsed is a request ready for the engine.
type parsed struct {
	model        string
	words        []string // the prompt's tokens
	maxTokens    int
	stream       bool
	includeUsage bool
}

// parseRequest reads the JSON body of a completion (chat false) or chat
// completion request and tokenizes its prompt: one token per
// whitespace-separated word. A completion's prompt is a string, an array
// of one string, or an array of token ids (one token each). A chat
// request's tokens are the words of its messages' contents in order, with
// no tokens for roles or templates; a content is a string or an array of
// parts whose "text" fields count.
func parseRequest(body []byte, chat bool) (parsed, error) {
	var req apiRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		return parsed{}, fmt.Errorf("decoding the request body: %w", err)
	}
	if dec.More() {
		return parsed{}, errors.New("decoding the request body: more than one JSON value")
	}
	p := parsed{model: req.Model, stream: req.Stream, maxTokens: defaultMaxTokens}
	if req.StreamOptions != nil {
		if !req.Stream {
			return parsed{}, errors.New("stream_options is only allowed with stream: true")
		}
		p.includeUsage = req.StreamOptions.IncludeUsage
	}
	var err error
	if chat {
		p.words, err = chatWords(req.Messages)
	} else {
		p.words, err = promptWords(req.Prompt)
	}
	if err != nil {
		return parsed{}, err
	}
	if len(p.words) == 0 {
		return parsed{}, errors.New("the prompt is empty: it needs at least one word")
	}
	switch {
	case chat && req.MaxCompletionTokens != nil:
		p.maxTokens = *req.MaxCompletionTokens
	case req.MaxTokens != nil:
		p.maxTokens = *req.MaxTokens
	}
	if p.maxTokens < 1 {
		return parsed{}, fmt.Errorf("max_tokens %d must be at least 1", p.maxTokens)
	}
	return p, nil
}

func promptWords(raw json.RawMessage) ([]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, errors.New("prompt is missing")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return strings.Fields(s), nil
	}
	var ss []string
	if err := json.Unmarshal(raw, &ss); err == nil {
		if len(ss) != 1 {
			return nil, fmt.Errorf("prompt is an array of %d strings: llmsim takes one prompt per request", len(ss))
		}
		return strings.Fields(ss[0]), nil
	}
	var ids []int64
	if err := json.Unmarshal(raw, &ids); err == nil {
		words := make([]string, len(ids))
		for i, id := range ids {
			words[i] = strconv.FormatInt(id, 10)
		}
		return words, nil
	}
	return nil, errors.New("prompt must be a string, an array of one string, or an array of token ids")
}

func chatWords(msgs []message) ([]string, error) {
	if len(msgs) == 0 {
		return nil, errors.New("messages is missing or empty")
	}
	var words []string
	for i, m := range msgs {
		c := bytes.TrimSpace(m.Content)
		if len(c) == 0 || bytes.Equal(c, []byte("null")) {
			continue
		}
		var s string
		if err := json.Unmarshal(c, &s); err == nil {
			words = append(words, strings.Fields(s)...)
			continue
		}
		var parts []struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(c, &parts); err != nil {
			return nil, fmt.Errorf("messages[%d].content must be a string or an array of parts", i)
		}
		for _, p := range parts {
			words = append(words, strings.Fields(p.Text)...)
		}
	}
	return words, nil
}

// blockHashes returns the chained hashes of the full 16-word blocks of
// words: each block's hash covers its words and the hash of the block
// before, so equal hashes mean equal prefixes, as in vLLM.
func blockHashes(words []string) []uint64 {
	out := make([]uint64, 0, len(words)/blockSize)
	var parent [8]byte
	for b := 0; b+blockSize <= len(words); b += blockSize {
		h := fnv.New64a()
		h.Write(parent[:])
		for _, w := range words[b : b+blockSize] {
			h.Write([]byte(w))
			h.Write([]byte{0})
		}
		sum := h.Sum64()
		out = append(out, sum)
		for i := range parent {
			parent[i] = byte(sum >> (8 * i))
		}
	}
	return out
}

// outputWord is the text of the i-th generated token: words from a fixed
// list, each with its leading space, so that the joined output is readable
// and the same for every request.
func outputWord(i int) string {
	words := [...]string{" lorem", " ipsum", " dolor", " sit", " amet", " consectetur", " adipiscing", " elit"}
	return words[i%len(words)]
}
