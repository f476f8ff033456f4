package demand

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// WatchPath is the path of the watch stream on an activator's admin address.
const WatchPath = "/demand/watch"

// contentType is the media type of the watch stream: one JSON value a line.
const contentType = "application/x-ndjson"

// Snapshot is one line of the watch stream: the whole state of one
// activator.
type Snapshot struct {
	// Activator identifies the activator replica (its pod name).
	Activator string `json:"activator"`
	// Seq grows by one with every snapshot of one activator process.
	Seq uint64 `json:"seq"`
	// Services holds every service with a non-zero count, and once more
	// each service that just dropped to zero.
	Services []ServiceDemand `json:"services"`
}

// ServiceDemand is what one activator holds for one Kubernetes Service.
type ServiceDemand struct {
	Namespace string `json:"namespace"`
	Service   string `json:"service"`
	// InFlight counts requests proxied to a pod and not finished.
	InFlight int64 `json:"inFlight"`
	// Queued counts requests held while the service has no ready pod.
	Queued int64 `json:"queued"`
}

// key names a service.
type key struct {
	namespace, service string
}

// counts is the demand of one service.
type counts struct {
	inFlight, queued int64
}

func (c counts) zero() bool { return c.inFlight == 0 && c.queued == 0 }

// rose reports whether a count went from zero to above zero from c to n.
func (c counts) rose(n counts) bool {
	return (c.inFlight <= 0 && n.inFlight > 0) || (c.queued <= 0 && n.queued > 0)
}

// sortServices orders a snapshot's services, so that equal states encode
// equally.
func sortServices(s []ServiceDemand) {
	slices.SortFunc(s, func(a, b ServiceDemand) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Service, b.Service))
	})
}

// decodeSnapshot decodes one line of the watch stream into the activator's
// id, its seq, and the services with a count above zero: the line comes
// over the network, so negative counts read as zero and a line without an
// id is an error.
func decodeSnapshot(line []byte) (id string, seq uint64, services map[key]counts, err error) {
	var s Snapshot
	if err := json.Unmarshal(line, &s); err != nil {
		return "", 0, nil, fmt.Errorf("decoding a snapshot: %w", err)
	}
	if s.Activator == "" {
		return "", 0, nil, errors.New("decoding a snapshot: no activator id")
	}
	services = make(map[key]counts, len(s.Services))
	for _, d := range s.Services {
		c := counts{inFlight: max(d.InFlight, 0), queued: max(d.Queued, 0)}
		if !c.zero() {
			services[key{d.Namespace, d.Service}] = c
		}
	}
	return s.Activator, s.Seq, services, nil
}
