package storagetest

import (
	"crypto/sha256"
	"io"
)

// Fill writes bytes off..off+len(p) of the deterministic stream seed into
// p. Any range of a stream can be made on its own, so a large object is
// checked piecewise without being held in memory.
func Fill(seed uint64, off int64, p []byte) {
	var cur uint64
	curW := int64(-1)
	for i := range p {
		pos := off + int64(i)
		if w := pos >> 3; w != curW {
			cur, curW = mix(seed^uint64(w)*0x9e3779b97f4a7c15), w
		}
		p[i] = byte(cur >> (8 * (pos & 7)))
	}
}

// Data returns n bytes of stream seed from off.
func Data(seed uint64, off, n int64) []byte {
	p := make([]byte, n)
	Fill(seed, off, p)
	return p
}

// splitmix64's finaliser.
func mix(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Reader returns size bytes of stream seed as an io.Reader.
func Reader(seed uint64, size int64) io.Reader { return &streamReader{seed: seed, size: size} }

type streamReader struct {
	seed      uint64
	off, size int64
}

func (r *streamReader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	if rest := r.size - r.off; int64(len(p)) > rest {
		p = p[:rest]
	}
	Fill(r.seed, r.off, p)
	r.off += int64(len(p))
	return len(p), nil
}

// Hash is the SHA-256 of size bytes of stream seed.
func Hash(seed uint64, size int64) [32]byte {
	h := sha256.New()
	buf := make([]byte, 1<<20)
	_, _ = io.CopyBuffer(h, Reader(seed, size), buf)
	var out [32]byte
	h.Sum(out[:0])
	return out
}
