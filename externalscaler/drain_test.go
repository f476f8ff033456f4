package externalscaler

import (
	"context"
	"testing"
	"time"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// openPushStream opens StreamIsActive over e's real listener and returns
// what it receives: each pushed state, then the error that ended it.
func openPushStream(t *testing.T, e *scalerEnv, r *pb.ScaledObjectRef) (<-chan bool, chan error) {
	t.Helper()
	conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := pb.NewExternalScalerClient(conn).StreamIsActive(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	pushed, ended, done := make(chan bool, 16), make(chan error, 1), make(chan struct{})
	go func() {
		defer close(done)
		for {
			resp, err := stream.Recv()
			if err != nil {
				ended <- err
				return
			}
			pushed <- resp.Result
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		conn.Close()
	})
	return pushed, ended
}

// expectPushed waits for the next push to be want.
func expectPushed(t *testing.T, pushed <-chan bool, ended chan error, want bool, what string) {
	t.Helper()
	select {
	case v := <-pushed:
		if v != want {
			t.Fatalf("%s: pushed %v, want %v", what, v, want)
		}
	case err := <-ended:
		// The reader hands over each push before the end, but a select
		// that finds both ready picks either: a push waiting is first.
		select {
		case v := <-pushed:
			ended <- err // for expectDrained; the buffer of 1 is empty again
			if v != want {
				t.Fatalf("%s: pushed %v, want %v", what, v, want)
			}
			return
		default:
		}
		t.Fatalf("%s: the stream ended (%v) before %v was pushed", what, err, want)
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: nothing pushed within 5s", what)
	}
}

// expectDrained waits, well under any shutdown timeout, for the stream to
// end with Unavailable, and checks nothing more was pushed.
func expectDrained(t *testing.T, pushed <-chan bool, ended <-chan error) {
	t.Helper()
	select {
	case v := <-pushed:
		t.Fatalf("pushed %v after the drain, want the stream to end", v)
	case err := <-ended:
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("the stream ended with %v, want Unavailable", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the stream was still open 2s after Drain")
	}
}

// TestDrainEndsPushStreams: Drain ends the StreamIsActive streams at once,
// so that KEDA reconnects to a serving replica instead of waiting blind for
// the shutdown timeout; a rise of demand the scaler has seen is pushed
// first, whether its wake-up came before the drain or with it; and new
// streams are refused.
func TestDrainEndsPushStreams(t *testing.T) {
	r := ref("ml", "so", map[string]string{"ruleSet": "demand", "service": "chat"})
	cases := map[string]struct {
		rise func(d *fakeDemand) // before Drain; nil: nothing changes
		want bool                // true pushed before the end
	}{
		"nothing changed": {},
		"queued seen, wake-up not yet taken": {rise: func(d *fakeDemand) {
			d.mu.Lock()
			d.counts[[2]string{"ml", "chat"}] = [2]int64{0, 1}
			d.mu.Unlock()
		}, want: true},
		"inflight rose with the drain": {rise: func(d *fakeDemand) { d.set("ml", "chat", 1, 0) }, want: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			// The rise and the drain race inside the stream: several rounds.
			for range 10 {
				q := &fakeQuerier{}
				q.value(0)
				d := newFakeDemand()
				// A long push interval: only the wake-up or the drain can
				// make the stream look again.
				e := startScaler(t, envConfig{rules: demandRules, querier: q, demand: d, push: time.Hour})
				pushed, ended := openPushStream(t, e, r)
				expectPushed(t, pushed, ended, false, "the first state")
				if tc.rise != nil {
					tc.rise(d)
				}
				start := time.Now()
				e.server.Drain()
				if tc.want {
					expectPushed(t, pushed, ended, true, "the rise seen before the drain")
				}
				expectDrained(t, pushed, ended)
				if d := time.Since(start); d > time.Second {
					t.Errorf("the stream ended %v after Drain", d)
				}
				_, again := openPushStream(t, e, r)
				select {
				case err := <-again:
					if status.Code(err) != codes.Unavailable {
						t.Errorf("a new stream after Drain: %v, want Unavailable", err)
					}
				case <-time.After(2 * time.Second):
					t.Error("a new stream after Drain was served")
				}
			}
		})
	}
}
