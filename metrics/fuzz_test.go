package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace/noop"
)

// FuzzQueryResponse feeds Prometheus' answer, status and body, to the
// client's decoding: whatever comes over the network, Query returns a
// Result whose slices agree, or an error that says it was querying
// Prometheus, and never panics.
func FuzzQueryResponse(f *testing.F) {
	seeds := []struct {
		status int
		body   string
	}{
		{200, vectorBody(`{"metric":{"pod":"a"},"value":[1700000000,"3.5"]}`, `{"metric":{},"value":[1700000000,"NaN"]}`)},
		{200, vectorBody()},
		{200, `{"status":"success","data":{"resultType":"scalar","result":[1700000000,"+Inf"]}}`},
		{200, `{"status":"success","data":{"resultType":"string","result":[1700000000,"x"]}}`},
		{200, `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"]]}]}}`},
		{200, vectorBody(`{"metric":{},"histogram":[1,{"count":"2","sum":"3","buckets":[[0,"0","1","2"]]}]}`)},
		{200, `{"status":"success","data":{"resultType":"vector","result":null},"warnings":["w"]}`},
		{400, `{"status":"error","errorType":"bad_data","error":"parse error"}`},
		{503, `{"status":"error","errorType":"timeout","error":"query timed out"}`},
		{502, "<html>bad gateway</html>"},
		{200, `{"status":"success"`},
		{200, ""},
	}
	for _, s := range seeds {
		f.Add(uint16(s.status), []byte(s.body))
	}
	var answer atomic.Pointer[[]byte]
	var status atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(int(status.Load()))
		_, _ = w.Write(*answer.Load())
	}))
	defer srv.Close()
	c, err := NewClient(ClientConfig{URL: srv.URL, CacheTTL: -1, Timeout: 5 * time.Second}, slog.New(slog.DiscardHandler), nil, noop.NewTracerProvider())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, code uint16, body []byte) {
		// net/http refuses to write codes outside 100-999, and 1xx are
		// interim answers; neither is what a server can send as the answer.
		if code < 200 || code > 599 {
			return
		}
		status.Store(int32(code))
		answer.Store(&body)
		res, err := c.Query(context.Background(), "up")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "querying prometheus: ") {
				t.Fatalf("error %q does not start with %q", err, "querying prometheus: ")
			}
			if res.Values != nil || res.Labels != nil || res.Scalar {
				t.Fatalf("error %v with a result %+v", err, res)
			}
			return
		}
		switch {
		case res.Scalar:
			if len(res.Values) != 1 || res.Labels != nil {
				t.Fatalf("scalar result %+v: want one value and no labels", res)
			}
		case res.Values == nil || len(res.Labels) != len(res.Values):
			t.Fatalf("vector result %+v: want non-nil values and one label set each", res)
		}
	})
}
