package nodeagent

import (
	"errors"
	"net/netip"
	"testing"
)

func TestIPAM(t *testing.T) {
	type step struct {
		allocate string // owner to allocate for; "" releases release
		want     string // preferred address
		release  string
		expect   string // address expected, or "full"
	}
	tests := map[string]struct {
		prefix, gateway string
		steps           []step
	}{
		"starts at .1.1 and counts up": {
			prefix: "10.244.0.0/16", gateway: "10.244.0.1",
			steps: []step{
				{allocate: "a", expect: "10.244.1.1"},
				{allocate: "b", expect: "10.244.1.2"},
				{allocate: "c", expect: "10.244.1.3"},
			},
		},
		"goes on past freed addresses, as host-local IPAM does": {
			prefix: "10.244.0.0/16", gateway: "10.244.0.1",
			steps: []step{
				{allocate: "a", expect: "10.244.1.1"},
				{allocate: "b", expect: "10.244.1.2"},
				{allocate: "c", expect: "10.244.1.3"},
				{release: "10.244.1.2"},
				{release: "10.244.1.1"},
				{allocate: "d", expect: "10.244.1.4"},
				{allocate: "e", expect: "10.244.1.5"},
			},
		},
		"skips the gateway": {
			prefix: "10.244.0.0/16", gateway: "10.244.1.2",
			steps: []step{
				{allocate: "a", expect: "10.244.1.1"},
				{allocate: "b", expect: "10.244.1.3"},
			},
		},
		"keeps a wanted free address": {
			prefix: "10.244.0.0/16", gateway: "10.244.0.1",
			steps: []step{
				{allocate: "a", want: "10.244.7.9", expect: "10.244.7.9"},
				{allocate: "b", want: "10.244.7.9", expect: "10.244.1.1"},
			},
		},
		"ignores a wanted address out of range": {
			prefix: "10.244.0.0/16", gateway: "10.244.0.1",
			steps: []step{
				{allocate: "a", want: "10.244.0.1", expect: "10.244.1.1"},
				{allocate: "b", want: "10.244.0.7", expect: "10.244.1.2"},
				{allocate: "c", want: "10.99.1.1", expect: "10.244.1.3"},
				{allocate: "d", want: "10.244.255.255", expect: "10.244.1.4"},
			},
		},
		"small prefix: from .1, no broadcast, then full": {
			prefix: "192.168.5.0/29", gateway: "192.168.5.1",
			steps: []step{
				{allocate: "a", expect: "192.168.5.2"},
				{allocate: "b", expect: "192.168.5.3"},
				{allocate: "c", expect: "192.168.5.4"},
				{allocate: "d", expect: "192.168.5.5"},
				{allocate: "e", expect: "192.168.5.6"},
				{allocate: "f", expect: "full"},
				{release: "192.168.5.4"},
				{allocate: "g", expect: "192.168.5.4"},
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := newIPAM(netip.MustParsePrefix(tc.prefix), netip.MustParseAddr(tc.gateway))
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tc.steps {
				if s.release != "" {
					p.release(netip.MustParseAddr(s.release))
					continue
				}
				var want netip.Addr
				if s.want != "" {
					want = netip.MustParseAddr(s.want)
				}
				got, err := p.allocate(s.allocate, want)
				if s.expect == "full" {
					if !errors.Is(err, errNoAddress) {
						t.Fatalf("step %d: got %v, %v; want errNoAddress", i, got, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if got.String() != s.expect {
					t.Fatalf("step %d: allocated %v, want %s", i, got, s.expect)
				}
			}
		})
	}
}

func TestNewIPAMRejects(t *testing.T) {
	for name, prefix := range map[string]string{
		"ipv6":      "fd00::/64",
		"too small": "10.0.0.0/31",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := newIPAM(netip.MustParsePrefix(prefix), netip.Addr{}); err == nil {
				t.Fatalf("newIPAM(%s) succeeded", prefix)
			}
		})
	}
}

func TestNetworkNames(t *testing.T) {
	for _, prefix := range []string{"nm", "nme2e", "abcdefgh"} {
		netns, veth := networkNames(prefix, "0b5e1c9a-8d0a-4c4e-9f5e-2c3a4b5d6e7f")
		if len(veth) != maxLinkName {
			t.Errorf("prefix %q: veth %q is %d characters, want %d", prefix, veth, len(veth), maxLinkName)
		}
		if netns[:len(prefix)] != prefix || veth[:len(prefix)] != prefix {
			t.Errorf("prefix %q: names %q, %q do not start with it", prefix, netns, veth)
		}
		n2, v2 := networkNames(prefix, "0b5e1c9a-8d0a-4c4e-9f5e-2c3a4b5d6e7e")
		if n2 == netns || v2 == veth {
			t.Errorf("prefix %q: two UIDs share names", prefix)
		}
	}
}
