package block

import "math"

// FillRatio is the share of the shard's bits that are set.
func (s *BloomShard) FillRatio() float64 {
	return float64(s.f.BitSet().Count()) / float64(s.f.Cap())
}

// FalsePositiveRate estimates the chance that an ID never added tests
// positive: (share of set bits)^k.
func (s *BloomShard) FalsePositiveRate() float64 {
	return math.Pow(s.FillRatio(), float64(s.f.K()))
}
