package ingest

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// TestReadLimited: bodies around the chunk sizes and the limit, with the
// size hint right, wrong or absent, through readers that return little at
// a time or their last bytes with EOF, come back whole, or over the limit,
// or with the reader's error.
func TestReadLimited(t *testing.T) {
	const limit = 300 << 10
	body := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i * 7)
		}
		return b
	}
	readers := map[string]func([]byte) io.Reader{
		"plain":    func(b []byte) io.Reader { return bytes.NewReader(b) },
		"one byte": func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
		"data+EOF": func(b []byte) io.Reader { return iotest.DataErrReader(bytes.NewReader(b)) },
	}
	for _, n := range []int{0, 1, 64<<10 - 1, 64 << 10, 64<<10 + 1, 192 << 10, limit - 1, limit, limit + 1, 2 * limit} {
		for _, hint := range []int64{0, int64(n), int64(n) / 2, int64(n) + 5} {
			for name, mk := range readers {
				if name == "one byte" && n > 70<<10 {
					continue // slow and says nothing new
				}
				want := body(n)
				got, over, err := readLimited(mk(want), limit, hint)
				if err != nil {
					t.Fatalf("%d bytes, hint %d, %s: %v", n, hint, name, err)
				}
				if over != (n > limit) {
					t.Fatalf("%d bytes, hint %d, %s: over = %v", n, hint, name, over)
				}
				if !over && !bytes.Equal(got, want) {
					t.Fatalf("%d bytes, hint %d, %s: read %d bytes, not the body", n, hint, name, len(got))
				}
			}
		}
	}
	boom := errors.New("connection reset")
	if _, _, err := readLimited(io.MultiReader(bytes.NewReader(body(100<<10)), iotest.ErrReader(boom)), limit, 0); !errors.Is(err, boom) {
		t.Errorf("a reader failing after 100 KiB: %v, want its error", err)
	}
	if _, _, err := readLimited(iotest.ErrReader(io.ErrUnexpectedEOF), limit, 10); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("a body cut short: %v, want io.ErrUnexpectedEOF", err)
	}
}

// BenchmarkReadBody reads a 5 MiB body the way a receiver meets it: with
// its length known, and without (chunked, or decompressed), against
// bytes.Buffer.ReadFrom, which readBody used before.
func BenchmarkReadBody(b *testing.B) {
	const size, limit = 5 << 20, 20 << 20
	data := bytes.Repeat([]byte("span "), size/5)
	b.Run("chunked", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(size)
		for b.Loop() {
			if _, _, err := readLimited(struct{ io.Reader }{bytes.NewReader(data)}, limit, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("chunked/bytes.Buffer", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(size)
		for b.Loop() {
			var buf bytes.Buffer
			if _, err := buf.ReadFrom(io.LimitReader(struct{ io.Reader }{bytes.NewReader(data)}, limit+1)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("length", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(size)
		for b.Loop() {
			if _, _, err := readLimited(bytes.NewReader(data), limit, size); err != nil {
				b.Fatal(err)
			}
		}
	})
}
