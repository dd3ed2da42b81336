package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/prometheus/client_golang/prometheus"
)

// Set is the receivers a ReceiversConfig enables, started and stopped
// together.
type Set struct {
	names     []string
	receivers []Receiver
}

// NewSet builds every receiver rc enables (none is listening yet); the
// receivers share c, log and the metrics registered on reg.
func NewSet(rc ReceiversConfig, c Consumer, log *slog.Logger, reg prometheus.Registerer) (*Set, error) {
	s := &Set{}
	tcp := func(cfg *Config) Config {
		out := *cfg
		out.MultiTenancy = out.MultiTenancy || rc.MultiTenancy
		return out
	}
	add := func(name string, r Receiver, err error) error {
		if err != nil {
			return err
		}
		s.names = append(s.names, name)
		s.receivers = append(s.receivers, r)
		return nil
	}
	var errs []error
	if rc.OTLPGRPC != nil {
		r, err := NewOTLPGRPC(tcp(rc.OTLPGRPC), c, log, reg)
		errs = append(errs, add(ProtocolOTLPGRPC, r, err))
	}
	if rc.OTLPHTTP != nil {
		r, err := NewOTLPHTTP(tcp(rc.OTLPHTTP), c, log, reg)
		errs = append(errs, add(ProtocolOTLPHTTP, r, err))
	}
	if rc.JaegerGRPC != nil {
		r, err := NewJaegerGRPC(tcp(rc.JaegerGRPC), c, log, reg)
		errs = append(errs, add(ProtocolJaegerGRPC, r, err))
	}
	if rc.JaegerThriftHTTP != nil {
		r, err := NewJaegerThriftHTTP(tcp(rc.JaegerThriftHTTP), c, log, reg)
		errs = append(errs, add(ProtocolJaegerThriftHTTP, r, err))
	}
	if rc.JaegerThriftCompact != nil {
		r, err := NewJaegerThriftCompact(*rc.JaegerThriftCompact, c, log, reg)
		errs = append(errs, add(ProtocolJaegerThriftCompact, r, err))
	}
	if rc.JaegerThriftBinary != nil {
		r, err := NewJaegerThriftBinary(*rc.JaegerThriftBinary, c, log, reg)
		errs = append(errs, add(ProtocolJaegerThriftBinary, r, err))
	}
	if rc.Zipkin != nil {
		zc := *rc.Zipkin
		zc.Config = tcp(&zc.Config)
		r, err := NewZipkin(zc, c, log, reg)
		errs = append(errs, add(ProtocolZipkin, r, err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// Start starts every receiver in turn; if one fails, it shuts down those
// already started and returns the error.
func (s *Set) Start(ctx context.Context) error {
	for i, r := range s.receivers {
		if err := r.Start(ctx); err != nil {
			_ = s.Shutdown(ctx)
			return fmt.Errorf("starting %s: %w", s.names[i], err)
		}
	}
	return nil
}

// Shutdown shuts every receiver down concurrently, sharing ctx's deadline.
func (s *Set) Shutdown(ctx context.Context) error {
	errs := make([]error, len(s.receivers))
	done := make(chan struct{})
	for i, r := range s.receivers {
		go func() {
			defer func() { done <- struct{}{} }()
			if err := r.Shutdown(ctx); err != nil {
				errs[i] = fmt.Errorf("shutting down %s: %w", s.names[i], err)
			}
		}()
	}
	for range s.receivers {
		<-done
	}
	return errors.Join(errs...)
}

// Addrs maps each receiver's protocol name (Protocol* constants) to its
// bound address; empty before Start.
func (s *Set) Addrs() map[string]net.Addr {
	out := make(map[string]net.Addr, len(s.receivers))
	for i, r := range s.receivers {
		if a := r.Addr(); a != nil {
			out[s.names[i]] = a
		}
	}
	return out
}
