package main

// blockSize is how many tokens one KV-cache block holds, vLLM's default.
const blockSize = 16

// noBlock ends the idle list.
const noBlock int32 = -1

// kvCache is the engine's pool of KV blocks with vLLM's automatic prefix
// caching: a block filled with prompt tokens is registered under the chained
// hash of the prompt up to its end, so a later prompt that starts with the
// same tokens reuses it instead of computing it again.
//
// A block is held (refs > 0) by the running requests that use it, idle and
// cached (refs 0, a hash, on the LRU list), or free (refs 0, no hash, on the
// free stack). Allocation takes free blocks first and then evicts idle
// cached ones, least recently released first; vLLM keeps both kinds on one
// queue, so it may evict a cached block while an uncached one is still
// free: this pool never does. Not safe for concurrent use.
type kvCache struct {
	refs   []int32
	hashes []uint64
	hashed []bool
	byHash map[uint64]int32
	// free holds the uncached unheld blocks, used as a stack.
	free []int32
	// prev and next link the idle cached blocks, least recently released at
	// head; lruHead and lruTail are noBlock when there is none.
	prev, next       []int32
	lruHead, lruTail int32
	idle, held       int
}

func newKVCache(blocks int) *kvCache {
	c := &kvCache{
		refs:    make([]int32, blocks),
		hashes:  make([]uint64, blocks),
		hashed:  make([]bool, blocks),
		byHash:  make(map[uint64]int32, blocks),
		free:    make([]int32, blocks),
		prev:    make([]int32, blocks),
		next:    make([]int32, blocks),
		lruHead: noBlock,
		lruTail: noBlock,
	}
	// Reversed, so that the stack hands out block 0 first: easier to read
	// in tests, and no different otherwise.
	for i := range c.free {
		c.free[i] = int32(blocks - 1 - i)
	}
	return c
}

// available is how many blocks an allocation may take: free ones and idle
// cached ones, which it would evict.
func (c *kvCache) available() int { return len(c.free) + c.idle }

// usage is the fraction of blocks held by live requests, what vLLM reports
// as kv_cache_usage_perc: idle cached blocks count as free.
func (c *kvCache) usage() float64 { return float64(c.held) / float64(len(c.refs)) }

// lookup returns the cached blocks of the longest prefix of hashes, at most
// limit of them, and how many of those are idle (they leave the pool of
// available blocks once taken).
func (c *kvCache) lookup(hashes []uint64, limit int) (blocks []int32, idle int) {
	for _, h := range hashes[:min(limit, len(hashes))] {
		b, ok := c.byHash[h]
		if !ok {
			break
		}
		blocks = append(blocks, b)
		if c.refs[b] == 0 {
			idle++
		}
	}
	return blocks, idle
}

// take holds blocks found by lookup.
func (c *kvCache) take(blocks []int32) {
	for _, b := range blocks {
		if c.refs[b] == 0 {
			c.unlink(b)
			c.held++
		}
		c.refs[b]++
	}
}

// allocate holds n blocks with no content, evicting idle cached blocks
// least recently released first when no free one is left. It returns nil
// and takes nothing if fewer than n are available.
func (c *kvCache) allocate(n int) []int32 {
	if n > c.available() {
		return nil
	}
	out := make([]int32, 0, n)
	for range n {
		var b int32
		if k := len(c.free); k > 0 {
			b = c.free[k-1]
			c.free = c.free[:k-1]
		} else {
			b = c.lruHead
			c.unlink(b)
			delete(c.byHash, c.hashes[b])
			c.hashed[b] = false
		}
		c.refs[b] = 1
		c.held++
		out = append(out, b)
	}
	return out
}

// register records that block b now holds the prompt prefix whose chained
// hash is h. If another block already holds it, b stays unregistered (a
// duplicate, freed without being cached).
func (c *kvCache) register(b int32, h uint64) {
	if _, ok := c.byHash[h]; ok || c.hashed[b] {
		return
	}
	c.byHash[h] = b
	c.hashes[b] = h
	c.hashed[b] = true
}

// release lets go of a request's blocks, last block first as vLLM does, so
// that the tail of a prompt is evicted before its shared head.
func (c *kvCache) release(blocks []int32) {
	for i := len(blocks) - 1; i >= 0; i-- {
		b := blocks[i]
		c.refs[b]--
		if c.refs[b] > 0 {
			continue
		}
		c.held--
		if c.hashed[b] {
			c.pushIdle(b)
		} else {
			c.free = append(c.free, b)
		}
	}
}

func (c *kvCache) pushIdle(b int32) {
	c.prev[b], c.next[b] = c.lruTail, noBlock
	if c.lruTail != noBlock {
		c.next[c.lruTail] = b
	} else {
		c.lruHead = b
	}
	c.lruTail = b
	c.idle++
}

func (c *kvCache) unlink(b int32) {
	p, n := c.prev[b], c.next[b]
	if p != noBlock {
		c.next[p] = n
	} else {
		c.lruHead = n
	}
	if n != noBlock {
		c.prev[n] = p
	} else {
		c.lruTail = p
	}
	c.idle--
}
