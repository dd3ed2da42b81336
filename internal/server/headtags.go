package server

import (
	"github.com/tracectl/tracectl/internal/headtags"
)

// pieceTags is a head piece's state in the tag index.
type pieceTags struct {
	h headtags.Handle
	// taken: a catch-up has summarized the piece (or is doing so).
	// Guarded by Server.tagsMu.
	taken bool
}

// HeadTags brings the index of tag names and values of tenantID's
// unflushed spans (the head and the snapshots being flushed) up to date
// and returns it: only the pieces that arrived since the last call are
// decoded. The index may also hold pieces that arrived after the call
// started; it never misses one acknowledged before.
func (s *Server) HeadTags(tenantID string) *headtags.Index {
	s.tagsMu.Lock()
	defer s.tagsMu.Unlock()
	var todo []rawPiece
	s.eachUnstored(tenantID, func(th *tenantHead) {
		for _, ht := range th.traces {
			for _, p := range ht.pieces {
				if p.tags != nil && !p.tags.taken {
					p.tags.taken = true
					todo = append(todo, p)
				}
			}
		}
	})
	var scratch []byte
	for i := range todo {
		td, sc, err := decodePieces(todo[i:i+1], scratch)
		scratch = sc
		if err != nil {
			continue // as decodeEach: cannot happen short of corruption
		}
		s.tags.Apply(tenantID, &todo[i].tags.h, headtags.Summarize(td))
	}
	return s.tags
}

// untag removes the pieces of a tenant's stored block from the tag
// index.
func (s *Server) untag(th *tenantHead) {
	var hs []*headtags.Handle
	for _, ht := range th.traces {
		for _, p := range ht.pieces {
			if p.tags != nil {
				hs = append(hs, &p.tags.h)
			}
		}
	}
	s.tags.Remove(hs...)
}
