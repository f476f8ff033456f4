package nodeagent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
)

// errNoAddress is returned when every pod address of the prefix is taken.
var errNoAddress = errors.New("no free pod address")

// ipam hands out pod addresses of a prefix from <network>.1.1 upward (the
// first /24 is left to the harness, which puts the gateway and its own
// namespaces there), never the gateway, never the broadcast address. Like
// CNI's host-local IPAM it goes on from the last address it gave rather
// than reusing the lowest freed one, wrapping around at the end: a freed
// address that came back at once would meet neighbour (ARP) entries that
// the host and other pods still hold for the deleted pod's interface, and
// be unreachable until they expire (seen as pods turning Ready 8–48 s
// late).
type ipam struct {
	prefix  netip.Prefix
	gateway netip.Addr
	first   uint32 // first candidate
	last    uint32 // last candidate (the one before broadcast)

	mu   sync.Mutex
	next uint32                // where the search for a free address starts
	used map[netip.Addr]string // address -> owner, for messages
}

func newIPAM(prefix netip.Prefix, gateway netip.Addr) (*ipam, error) {
	if !prefix.IsValid() || !prefix.Addr().Is4() {
		return nil, fmt.Errorf("pod CIDR %q: only IPv4 prefixes are supported", prefix)
	}
	prefix = prefix.Masked()
	if prefix.Bits() > 30 {
		return nil, fmt.Errorf("pod CIDR %q is too small", prefix)
	}
	network := u32(prefix.Addr())
	size := uint32(1) << (32 - prefix.Bits())
	first := network + 1
	if prefix.Bits() <= 23 {
		first = network + 256 + 1
	}
	return &ipam{
		prefix:  prefix,
		gateway: gateway,
		first:   first,
		last:    network + size - 2,
		next:    first,
		used:    map[netip.Addr]string{},
	}, nil
}

// allocate reserves an address for owner: want if it is a free pod address
// of the prefix (a pod that already has one keeps it across agent
// restarts), otherwise the next free one after the last given.
func (p *ipam) allocate(owner string, want netip.Addr) (netip.Addr, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if want.IsValid() && p.candidate(want) {
		if _, taken := p.used[want]; !taken {
			p.used[want] = owner
			return want, nil
		}
	}
	n := p.next
	for range p.last - p.first + 1 {
		a := addr(n)
		if n == p.last {
			n = p.first
		} else {
			n++
		}
		if a == p.gateway {
			continue
		}
		if _, taken := p.used[a]; !taken {
			p.used[a] = owner
			p.next = n
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("allocating an address of %s for %s: %w", p.prefix, owner, errNoAddress)
}

// candidate reports whether a is an address allocate may hand out.
func (p *ipam) candidate(a netip.Addr) bool {
	if !a.Is4() || a == p.gateway || !p.prefix.Contains(a) {
		return false
	}
	n := u32(a)
	return n >= p.first && n <= p.last
}

// release frees a; releasing a free or invalid address does nothing.
func (p *ipam) release(a netip.Addr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.used, a)
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func addr(n uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], n)
	return netip.AddrFrom4(b)
}
