package demand

import (
	"encoding/json"
	"maps"
	"testing"
)

// FuzzDecodeSnapshot feeds lines of the watch stream, which come over the
// network from any address the scaler is told to watch, to its decoder:
// it never panics, and what it accepts has an id and only counts above
// zero, and decodes to the same state once encoded again.
func FuzzDecodeSnapshot(f *testing.F) {
	for _, seed := range []string{
		`{"activator":"nemesis-activator-7d9f-x2k","seq":42,"services":[{"namespace":"ml","service":"chat-llm","inFlight":3,"queued":1}]}`,
		`{"activator":"a","seq":1,"services":[]}`,
		`{"activator":"a","seq":2,"services":[{"namespace":"ml","service":"chat","inFlight":0,"queued":0}]}`,
		`{"activator":"a","seq":3,"services":[{"namespace":"ml","service":"chat","inFlight":-5,"queued":2},{"namespace":"ml","service":"chat","inFlight":1,"queued":0}]}`,
		`{"activator":"","seq":1,"services":null}`,
		`{"activator":"a","seq":18446744073709551615,"services":[{"inFlight":9223372036854775807}]}`,
		`{"activator":"a","seq":-1}`,
		`{"activator":"a","services":[{"namespace":"\u0000","service":"\ud800","queued":1e3}]}`,
		`{"activator":"a","services":{}}`,
		`[]`,
		`{`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		id, seq, services, err := decodeSnapshot(line)
		if err != nil {
			if id != "" || seq != 0 || services != nil {
				t.Fatalf("error %v with a result %q %d %v", err, id, seq, services)
			}
			return
		}
		if id == "" || services == nil {
			t.Fatalf("accepted %q with id %q, services %v", line, id, services)
		}
		s := Snapshot{Activator: id, Seq: seq}
		for k, c := range services {
			if c.inFlight < 0 || c.queued < 0 || c.zero() {
				t.Fatalf("%q: service %v has counts %+v: want both non-negative, one above zero", line, k, c)
			}
			s.Services = append(s.Services, ServiceDemand{Namespace: k.namespace, Service: k.service, InFlight: c.inFlight, Queued: c.queued})
		}
		sortServices(s.Services)
		again, err := json.Marshal(&s)
		if err != nil {
			t.Fatalf("encoding %+v: %v", s, err)
		}
		id2, seq2, services2, err := decodeSnapshot(again)
		if err != nil || id2 != id || seq2 != seq || !maps.Equal(services, services2) {
			t.Fatalf("%q decoded to %q %d %v, re-encoded as %s, which decodes to %q %d %v (%v)", line, id, seq, services, again, id2, seq2, services2, err)
		}
	})
}
