package migrate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks/vparquet4"
	"github.com/tracectl/tracectl/internal/storage"
)

// DefaultMaxBlockBytes is how much OTLP (protobuf size) is buffered before a
// block is cut. Pieces of one trace that fall into two blocks are combined
// by every reader, so the cut needs no care for trace boundaries.
const DefaultMaxBlockBytes = 128 << 20

// maxReportedBad bounds the bad inputs kept for the summary; all are counted.
const maxReportedBad = 100

// OTLPFileOptions configures MigrateOTLPFiles.
type OTLPFileOptions struct {
	Paths         []string
	Bucket        *storage.Bucket
	Tenant        string
	MaxBlockBytes int64 // default DefaultMaxBlockBytes
	// MaxErrors is how many bad lines/messages may be skipped before the
	// run stops; negative means no limit.
	MaxErrors int
	// OnFile, if set, is called after each file with the running summary.
	OnFile func(path string, s *Summary)
}

// Summary accounts for a migration: every span read is written or was in
// a skipped input.
type Summary struct {
	Files        int        `json:"files"`
	Messages     int64      `json:"messages"`
	SpansRead    int64      `json:"spansRead"`
	SpansWritten int64      `json:"spansWritten"`
	Traces       int64      `json:"traces"` // rows written (a trace cut across blocks counts per block)
	Blocks       []string   `json:"blocks"`
	Bytes        uint64     `json:"bytes"`
	Skipped      int        `json:"skipped"`
	SkippedFirst []BadInput `json:"skippedInputs"`
	Elapsed      Duration   `json:"elapsed"`
}

// Duration marshals as a Go duration string ("1.5s").
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Duration(d).String() + `"`), nil
}

// MigrateOTLPFiles loads OTLP files (see ReadOTLPFile) into vParquet4
// blocks of opts.Tenant. Each block's time range is its spans' own. On
// return every span read is either in a stored block or counted in a
// skipped input, unless the error says otherwise. When MaxErrors is
// exceeded, what was read so far is still written, then the error wraps
// ErrTooManyErrors.
func MigrateOTLPFiles(ctx context.Context, opts OTLPFileOptions) (*Summary, error) {
	start := time.Now()
	if opts.MaxBlockBytes <= 0 {
		opts.MaxBlockBytes = DefaultMaxBlockBytes
	}
	s := &Summary{Blocks: []string{}, SkippedFirst: []BadInput{}}
	var (
		buf      []ptrace.Traces
		bufBytes int64
		sizer    ptrace.ProtoMarshaler
	)
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		meta, err := vparquet4.WriteBlock(ctx, opts.Bucket, vparquet4.WriterConfig{TenantID: opts.Tenant}, buf...)
		if err != nil {
			return fmt.Errorf("writing a block to %s: %w", opts.Bucket, err)
		}
		for _, td := range buf {
			s.SpansWritten += int64(td.SpanCount())
		}
		buf, bufBytes = nil, 0
		if meta != nil {
			s.Blocks = append(s.Blocks, meta.BlockID.String())
			s.Traces += meta.TotalObjects
			s.Bytes += meta.Size
		}
		return nil
	}
	onBad := func(b BadInput) error {
		s.Skipped++
		if len(s.SkippedFirst) < maxReportedBad {
			s.SkippedFirst = append(s.SkippedFirst, b)
		}
		if opts.MaxErrors >= 0 && s.Skipped > opts.MaxErrors {
			return fmt.Errorf("%w: %d skipped, --max-errors is %d (last: %s)", ErrTooManyErrors, s.Skipped, opts.MaxErrors, b)
		}
		return nil
	}
	var runErr error
	for _, path := range opts.Paths {
		err := ReadOTLPFile(ctx, path, func(td ptrace.Traces) error {
			s.Messages++
			s.SpansRead += int64(td.SpanCount())
			buf = append(buf, td)
			bufBytes += int64(sizer.TracesSize(td))
			if bufBytes >= opts.MaxBlockBytes {
				return flush()
			}
			return nil
		}, onBad)
		s.Files++
		if err != nil {
			runErr = err
			break
		}
		if opts.OnFile != nil {
			opts.OnFile(path, s)
		}
	}
	// Write what was accepted, unless the run was interrupted.
	if ctx.Err() == nil {
		if err := flush(); err != nil {
			runErr = errors.Join(runErr, err)
		}
	}
	s.Elapsed = Duration(time.Since(start))
	return s, runErr
}

// String formats the duration for people.
func (d Duration) String() string { return time.Duration(d).Round(time.Millisecond).String() }
