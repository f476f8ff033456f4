// Command llmsim stands in for a vLLM model server: it speaks the OpenAI API,
// exports vLLM's metrics under vLLM's names, and behaves like vLLM's engine
// under load (continuous batching, chunked prefill, prefix caching, KV-cache
// preemption) on a simulated GPU, so that a router's choices show in
// latency and throughput as they would on real pods, without a GPU.
//
//	go run ./e2e/llmsim --time-scale 0.25 --name pod-a
//
// # Endpoints
//
//   - POST /v1/completions and POST /v1/chat/completions: with "stream":
//     true, server-sent events "data: <json>": for chat a first chunk with
//     delta.role; one chunk per token, the last with finish_reason
//     "length"; a chunk with usage and no choices when
//     stream_options.include_usage is true; then "data: [DONE]". The status
//     line and first event go out with the first token, as vLLM's do, so
//     errors found before it are plain statuses: 400 on a bad body or when
//     prompt + max_tokens exceed --max-model-len, 404 when "model" names
//     another model, 429 (Retry-After: 1) when --max-waiting requests
//     already wait. Answers carry usage: prompt_tokens, completion_tokens,
//     total_tokens and prompt_tokens_details.cached_tokens.
//   - GET /v1/models: the one model, --model.
//   - GET /metrics: Prometheus text format (see Metrics), unless a fault is
//     set.
//   - GET /health: an empty 200, or 503 after PUT /sim/health "fail".
//   - PUT /sim/metrics-fault with a mode as the body (GET reads it back):
//     none; slow (wait --metrics-fault-delay, wall time, then answer); hang
//     (never answer, until the client goes away or the server shuts
//     down); huge (a valid exposition of about 3 MiB, a padding family
//     llmsim_padding of 20,000 series added, uncompressed); malformed (200
//     with a body that is not the text format); missing (the family
//     vllm:num_requests_waiting left out); error (500).
//   - PUT /sim/health with "ok" or "fail" (GET reads it back).
//
// Every answer has the header x-inference-pod: --name, else $POD_NAME,
// else the host name, so that tests see which pod served.
//
// # Tokens
//
// One token per whitespace-separated word (Go's strings.Fields). A
// completion's prompt is a string, an array of one string, or an array of
// token ids (one token each). A chat request's prompt is the words of its
// messages' contents, in order, with nothing added for roles or a
// template; a content is a string or an array of parts whose "text" counts.
// So a prompt of n words is n tokens, and prompts that start with the same
// words share a prefix in the cache. The output is exactly max_tokens
// tokens (default 16; max_completion_tokens in chat takes precedence), as
// with inference-perf's ignore_eos, each a word from a fixed list.
//
// # Engine
//
// A simulated vLLM V1 engine runs in discrete steps. Each step, running
// requests come first, oldest first: each decodes one token, or prefills
// within what is left of the step's --max-prefill-tokens-per-step (512)
// prompt tokens, the rest of its prompt waiting for later steps (chunked
// prefill). Then waiting requests join in FIFO order while fewer than
// --max-num-seqs run, prefill budget is left, and their KV blocks can be
// allocated; the first that cannot stops the others. The step in which a
// request's prefill completes yields its first token; every later step one
// more, until max_tokens.
//
// A step lasts, times --slowdown, the fitted model of GIE's simulator
// (A100-40GB, Llama-3 architecture): 14 ms + 0.1026 ms × decoding sequences
// + 0.000535 ms × KV tokens they attend to, if any sequence decodes; plus
// max(40 ms, 19.69 ms + 0.0677 ms × tokens prefilled), if any are. A mixed
// step pays both parts, base costs twice: chunked prefill does slow down
// the decodes that share its step.
//
// The KV cache has --kv-blocks blocks of 16 tokens. Prefix caching is
// vLLM's: a block full of prompt tokens is registered under a chained hash
// of the prompt up to its end; a new request takes the cached blocks of
// its longest cached prefix (at most (prompt-1)/16 blocks: the last token
// is always computed) and counts them in cached_tokens. Released blocks
// that hold a registered prefix stay cached, idle, and count as free in
// vllm:kv_cache_usage_perc; they are evicted least recently released
// first (the tail of a prompt before its head) when uncached free blocks
// run out. Blocks of generated tokens are never cached. When a running
// request needs a block and none can be had, the newest running request is
// preempted, as in vLLM V1: its blocks are released (their prefixes stay
// cached), its progress is reset, and it goes to the front of the waiting
// queue, to recompute its prompt and the output it already produced
// (already streamed, not sent again).
//
// A client that goes away aborts its request: it leaves the queue or the
// batch, and its blocks are released.
//
// # Time
//
// Every simulated duration lasts --time-scale times as long on the wall
// clock (0.5 runs twice as fast); TTFT, latency histograms and all other
// reported times are simulated seconds (wall time / --time-scale). The
// engine sleeps on one timer per step and not at all when idle. Each
// step's end is set from the previous step's end when the loop is late by
// less than half a step, so that timer delays on a loaded machine do not
// slow the simulated GPU down; longer stalls are not made up.
//
// # Metrics
//
// With label model_name (--model), read from the engine at scrape time:
// gauges vllm:num_requests_waiting, vllm:num_requests_running,
// vllm:kv_cache_usage_perc, vllm:cache_config_info (1, labels block_size
// and num_gpu_blocks); counters vllm:prompt_tokens_total (counted when a
// request's prefill completes), vllm:generation_tokens_total,
// vllm:request_success_total{finish_reason="stop"|"length"|"abort"},
// vllm:prefix_cache_queries_total and vllm:prefix_cache_hits_total (in
// tokens, on a request's first admission), vllm:num_preemptions_total;
// histograms vllm:time_to_first_token_seconds (from arrival, queue time
// included; vLLM's buckets) and vllm:e2e_request_latency_seconds. Also the
// Go and process collectors (process_cpu_seconds_total).
//
// # Flags
//
//	--address                      listen address (":8000")
//	--model                        model name ("llmsim")
//	--name                         x-inference-pod value (default $POD_NAME, else host name)
//	--max-num-seqs                 running batch size at most (16)
//	--max-waiting                  waiting requests at most, then 429 (1000)
//	--max-model-len                prompt + max_tokens at most, then 400 (8192); must fit in the KV cache
//	--kv-blocks                    KV-cache blocks of 16 tokens, num_gpu_blocks (2048: 32,768 tokens)
//	--max-prefill-tokens-per-step  prefill tokens per step at most (512)
//	--time-scale                   wall seconds per simulated second (1)
//	--slowdown                     multiplies step times, a slower GPU (1)
//	--metrics-fault                initial /metrics fault mode ("none")
//	--metrics-fault-delay          wait of the slow fault, wall time (1s)
//	--idle-timeout                 close keep-alive connections idle this long, as uvicorn does (5s; 0: never)
//	--shutdown-grace               on SIGTERM, time for requests in flight to finish (30s)
//
// The defaults are an 8B model on one GPU, scaled down: a small batch and a
// KV cache of 32k tokens, so that a few long shared prefixes fill it.
//
// On SIGTERM or SIGINT llmsim stops accepting connections and lets the
// requests in flight finish within --shutdown-grace. It exits 0 after a
// graceful shutdown, 1 if the grace ran out or serving failed, and 2 on bad
// flags.
package main
