package compact

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/tracectl/tracectl/internal/storage"
)

// A lease makes one compactor per tenant the only one working: it is an
// object created with a conditional write (storage.CreateIfNotExists),
// so of two compactors racing for it exactly one wins. Leases are
// numbered: <tenant>/compactor.lease.<generation>. The holder of the
// highest generation holds the lease while it has not expired; taking
// over an expired or released lease creates the next generation, which
// again only one contender can do. The highest generation is never
// deleted (only older ones), so generations only grow and a holder that
// stalled past its expiry sees that it was superseded when it renews.

// leasePrefix starts the key of every lease object of a tenant.
const leasePrefix = "compactor.lease."

// DefaultLeaseTTL is how long a lease lasts without renewal.
const DefaultLeaseTTL = 5 * time.Minute

// ErrLeaseHeld means another compactor holds the tenant's lease.
var ErrLeaseHeld = errors.New("another compactor holds the lease")

// ErrLeaseLost means the lease expired and was taken over, or released
// by someone else: the holder must stop writing.
var ErrLeaseLost = errors.New("compaction lease lost")

// leaseDoc is the content of a lease object.
type leaseDoc struct {
	Owner    string    `json:"owner"`
	Acquired time.Time `json:"acquired"`
	Expires  time.Time `json:"expires"`
	Released bool      `json:"released,omitempty"`
}

// Lease is a held compaction lease.
type Lease struct {
	mu     sync.Mutex // serialises Check, Renew and Release
	b      *storage.Bucket
	tenant string
	gen    uint64
	doc    leaseDoc
	ttl    time.Duration
	now    func() time.Time
}

// DefaultOwner names this process in a lease: host, pid and a random part.
func DefaultOwner() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), uuid.NewString()[:8])
}

func leaseKey(tenant string, gen uint64) string {
	return fmt.Sprintf("%s/%s%020d", tenant, leasePrefix, gen)
}

// leaseGens lists the generations present, ascending.
func leaseGens(ctx context.Context, b *storage.Bucket, tenant string) ([]uint64, error) {
	objs, err := b.ListAll(ctx, tenant+"/"+leasePrefix, "")
	if err != nil {
		return nil, fmt.Errorf("listing compaction leases of tenant %s: %w", tenant, err)
	}
	var gens []uint64
	for _, o := range objs {
		s := strings.TrimPrefix(o.Key, tenant+"/"+leasePrefix)
		if g, err := strconv.ParseUint(s, 10, 64); err == nil {
			gens = append(gens, g) // listing is in key order: ascending
		}
	}
	return gens, nil
}

func readLease(ctx context.Context, b *storage.Bucket, tenant string, gen uint64) (leaseDoc, error) {
	var d leaseDoc
	data, err := b.Read(ctx, leaseKey(tenant, gen))
	if err != nil {
		return d, err
	}
	if err := json.Unmarshal(data, &d); err != nil {
		// A damaged lease is treated as expired: it cannot hold anyone off.
		return leaseDoc{}, nil
	}
	return d, nil
}

// AcquireLease takes the compaction lease of tenant for owner, or returns
// an error wrapping ErrLeaseHeld naming the holder and its expiry.
func AcquireLease(ctx context.Context, b *storage.Bucket, tenant, owner string, ttl time.Duration, now func() time.Time) (*Lease, error) {
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	if now == nil {
		now = time.Now
	}
	gens, err := leaseGens(ctx, b, tenant)
	if err != nil {
		return nil, err
	}
	var next uint64 = 1
	if len(gens) > 0 {
		top := gens[len(gens)-1]
		d, err := readLease(ctx, b, tenant, top)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			// Deleted between list and read: take the next generation.
		case err != nil:
			return nil, fmt.Errorf("reading the compaction lease of tenant %s: %w", tenant, err)
		case !d.Released && now().Before(d.Expires):
			return nil, fmt.Errorf("tenant %s: %w: %s until %s", tenant, ErrLeaseHeld, d.Owner, d.Expires.UTC().Format(time.RFC3339))
		}
		next = top + 1
	}
	t := now()
	l := &Lease{b: b, tenant: tenant, gen: next, ttl: ttl, now: now,
		doc: leaseDoc{Owner: owner, Acquired: t.UTC(), Expires: t.Add(ttl).UTC()}}
	data, _ := json.Marshal(l.doc)
	if err := b.CreateIfNotExists(ctx, leaseKey(tenant, next), data); err != nil {
		if errors.Is(err, storage.ErrExists) {
			return nil, fmt.Errorf("tenant %s: %w: another compactor took it just now", tenant, ErrLeaseHeld)
		}
		return nil, fmt.Errorf("taking the compaction lease of tenant %s: %w", tenant, err)
	}
	// Older generations are history; the newest stays (see above).
	for _, g := range gens {
		_ = b.Delete(ctx, leaseKey(tenant, g))
	}
	return l, nil
}

// Check returns an error wrapping ErrLeaseLost unless l is still the
// newest generation, held by its owner and not expired.
func (l *Lease) Check(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.check(ctx)
}

func (l *Lease) check(ctx context.Context) error {
	if !l.now().Before(l.doc.Expires) {
		return fmt.Errorf("tenant %s: %w: it expired at %s", l.tenant, ErrLeaseLost, l.doc.Expires.Format(time.RFC3339))
	}
	gens, err := leaseGens(ctx, l.b, l.tenant)
	if err != nil {
		return err
	}
	if len(gens) == 0 || gens[len(gens)-1] != l.gen {
		return fmt.Errorf("tenant %s: %w: another compactor took over", l.tenant, ErrLeaseLost)
	}
	d, err := readLease(ctx, l.b, l.tenant, l.gen)
	if err != nil {
		return fmt.Errorf("reading the compaction lease of tenant %s: %w", l.tenant, err)
	}
	if d.Owner != l.doc.Owner || d.Released {
		return fmt.Errorf("tenant %s: %w: released or rewritten by %s", l.tenant, ErrLeaseLost, d.Owner)
	}
	return nil
}

// Renew checks the lease and extends it by its TTL.
func (l *Lease) Renew(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.check(ctx); err != nil {
		return err
	}
	d := l.doc
	d.Expires = l.now().Add(l.ttl).UTC()
	data, _ := json.Marshal(d)
	if err := l.b.Write(ctx, leaseKey(l.tenant, l.gen), data); err != nil {
		return fmt.Errorf("renewing the compaction lease of tenant %s: %w", l.tenant, err)
	}
	l.doc = d
	return nil
}

// Release gives the lease up (it stays as the newest generation, marked
// released, so the next compactor takes the one after).
func (l *Lease) Release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.check(ctx); err != nil {
		return err
	}
	d := l.doc
	d.Released = true
	d.Expires = l.now().UTC()
	data, _ := json.Marshal(d)
	return l.b.Write(ctx, leaseKey(l.tenant, l.gen), data)
}

// Owner is who holds l.
func (l *Lease) Owner() string { return l.doc.Owner }

// Expires is when l expires unless renewed.
func (l *Lease) Expires() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.doc.Expires
}

// keepRenewed renews l every third of its TTL until ctx ends; when the
// lease is lost it calls lost (once) and stops.
func (l *Lease) keepRenewed(ctx context.Context, lost func(error)) {
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := l.Renew(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				if errors.Is(err, ErrLeaseLost) {
					lost(err)
					return
				}
				// Storage trouble: try again at the next tick; the
				// expiry check in Renew stops us in time.
			}
		}
	}
}
