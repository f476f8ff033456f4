package main

import (
	"slices"
	"testing"
)

func TestKVCacheLRUEviction(t *testing.T) {
	t.Parallel()
	c := newKVCache(6)
	// Two requests of three prompt blocks each, hashes 1-3 and 11-13.
	a := c.allocate(3)
	b := c.allocate(3)
	for i := range 3 {
		c.register(a[i], uint64(1+i))
		c.register(b[i], uint64(11+i))
	}
	if c.available() != 0 || c.usage() != 1 {
		t.Fatalf("available %d, usage %v with every block held", c.available(), c.usage())
	}
	if c.allocate(1) != nil {
		t.Fatal("allocated a block with none available")
	}
	c.release(a) // released first: evicted first, its tail before its head
	c.release(b)
	if c.usage() != 0 || c.available() != 6 {
		t.Fatalf("usage %v, available %d after releasing all: idle cached blocks are free", c.usage(), c.available())
	}

	// A hit on b's head makes it recently used: it is held now.
	hits, idle := c.lookup([]uint64{11, 12, 99}, 3)
	if !slices.Equal(hits, b[:2]) || idle != 2 {
		t.Fatalf("lookup = %v (%d idle), want %v (2 idle)", hits, idle, b[:2])
	}
	c.take(hits)

	// Eviction order: a's tail, middle, head, then b's tail.
	got := c.allocate(4)
	want := []int32{a[2], a[1], a[0], b[2]}
	if !slices.Equal(got, want) {
		t.Fatalf("allocate(4) took %v, want %v (least recently released, each prompt's tail first)", got, want)
	}
	for _, h := range []uint64{1, 2, 3, 13} {
		if _, ok := c.byHash[h]; ok {
			t.Errorf("hash %d still cached after its block was evicted", h)
		}
	}
	if hits, _ := c.lookup([]uint64{11, 12}, 2); len(hits) != 2 {
		t.Errorf("b's held head lost from the cache: %d hits", len(hits))
	}
}

func TestKVCacheFreeBeforeEvicting(t *testing.T) {
	t.Parallel()
	c := newKVCache(4)
	cached := c.allocate(2)
	c.register(cached[0], 7)
	c.register(cached[1], 8)
	c.release(cached)
	got := c.allocate(2)
	if slices.Contains(got, cached[0]) || slices.Contains(got, cached[1]) {
		t.Fatalf("allocate(2) took %v, evicting cached blocks %v while uncached ones were free", got, cached)
	}
	if hits, _ := c.lookup([]uint64{7, 8}, 2); len(hits) != 2 {
		t.Errorf("the cached prefix was lost: %d hits", len(hits))
	}
}

func TestKVCacheDuplicateRegistration(t *testing.T) {
	t.Parallel()
	c := newKVCache(2)
	bs := c.allocate(2)
	c.register(bs[0], 5)
	c.register(bs[1], 5) // the same prefix computed twice, by two requests
	c.release(bs)
	if c.idle != 1 || len(c.free) != 1 {
		t.Errorf("%d idle cached, %d free; want the duplicate freed uncached", c.idle, len(c.free))
	}
}
