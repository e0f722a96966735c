package cluster

import (
	"hash/fnv"
	"sort"
)

// Shards are spread over the live replicas by rendezvous hashing (highest
// random weight): each shard goes to the name whose weight for it is the
// highest. Every replica computes the same answer from the same set of
// names, with no coordination, and a name that joins or leaves moves only
// the shards it wins or held, about N/(names) of them. The key is the
// configured name, not the id, so a replica that restarts (a new id) is
// given back the shards it had.

// weight is name's weight for shard: FNV-1a of the name, mixed with the
// shard by SplitMix64's finalizer, whose avalanche keeps neighbouring
// shards (and similar names, baton-1 and baton-2) independent.
func weight(nameHash uint64, shard int) uint64 {
	return mix(nameHash ^ mix(uint64(shard)+0x9e3779b97f4a7c15))
}

func mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func hashName(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()
}

// assign is the name each of shards shards goes to among names (distinct;
// empty: no shard is assigned, every entry is ""). A tie, which needs a
// 64-bit collision, goes to the lesser name, so that every replica still
// agrees.
func assign(names []string, shards int) []string {
	out := make([]string, shards)
	if len(names) == 0 {
		return out
	}
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	hashes := make([]uint64, len(sorted))
	for i, n := range sorted {
		hashes[i] = hashName(n)
	}
	for s := range out {
		best, bw := -1, uint64(0)
		for i := range sorted {
			if w := weight(hashes[i], s); best < 0 || w > bw {
				best, bw = i, w
			}
		}
		out[s] = sorted[best]
	}
	return out
}
