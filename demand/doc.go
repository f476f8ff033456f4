// Package demand carries the demand signal from the activators to the
// scalers: how many requests of each service every activator replica is
// proxying (in flight) and holding (queued) right now, without waiting for a
// Prometheus scrape.
//
// The scalers pull; the activators need not know them. Each activator keeps
// a [Tracker], which its proxy updates twice per request with [Tracker.Add],
// and mounts [Tracker.Handler] on its admin address at [WatchPath]. Each
// scaler runs an [Aggregator] that opens one long-lived GET [WatchPath]
// stream to every activator replica its [Sources] name, and sums the counts
// per service over all of them. So any number of scaler replicas see the
// same sums, and any number of activator replicas are counted once each.
//
// # Protocol
//
// GET /demand/watch answers 200 with Content-Type application/x-ndjson and
// never ends on its own: one JSON [Snapshot] per line, each flushed at once.
//
//	{"activator":"activator-7d9f-x2k","seq":42,"services":[{"namespace":"ml","service":"chat-llm","inFlight":3,"queued":1}]}
//
// Every snapshot is the activator's whole state: the services with a
// non-zero count, plus, once, those that just dropped to zero. A reader can
// therefore drop any snapshot but the newest, and an activator can restart
// without the reader replaying anything. seq grows by one per snapshot of an
// activator process.
//
// The first line is sent at once. After it, a snapshot is sent:
//   - at once when a service's in-flight or queued count rises from zero
//     (as last sent): the wake-up edge of scale from zero;
//   - for other changes, one coalescing interval (50ms) after the first
//     change since the last snapshot, never at the instant of a change:
//     that instant is biased (under closed-loop load, a request has just
//     ended and its client's next one has not arrived yet);
//   - at least once per heartbeat interval (1s), changed or not.
//
// A reader that is slow gets the newest snapshot when it catches up; the
// ones in between are dropped, so it never blocks [Tracker.Add] and costs
// the activator one pending snapshot of memory. A reader that does not
// take a line for the write timeout is disconnected.
//
// The [Aggregator] reconnects with exponential backoff (100ms up to 5s) and
// treats an activator whose stream has carried nothing for the silence
// timeout (3s: three missed heartbeats) as gone: its counts drop out of the
// sums. A stream that breaks keeps its counts until then, so a reconnect
// within the timeout causes no flap.
//
// # Addresses
//
// Every address must reach one activator replica (a pod IP, or a
// StatefulSet pod's DNS name), never a load-balanced Service: through a
// Service, each scaler would see one random replica. Two addresses that
// reach the same activator (same id) are counted once. The list comes from a
// [Sources]; [StaticSources] is a fixed list, and a discovery of the
// activator Service's EndpointSlices can implement the same interface.
package demand
