package ssh

import (
	"context"
	"errors"
	"fmt"
	"github.com/pgwarm/pgwarm/host"
	"sync"
)

// Pool holds one connection per configured host: each host is dialed at
// most once (a failed dial is remembered, not retried), then shared.
type Pool struct {
	// Dial connects one host; NewPool sets it to Dial, tests may
	// replace it before first use.
	Dial func(ctx context.Context, cfg Config) (host.Host, error)

	cfgs  []Config
	mu    sync.Mutex
	slots map[string]*poolSlot
}

type poolSlot struct {
	once sync.Once
	h    host.Host
	err  error
}

// NewPool returns a pool for cfgs; names must be unique.
func NewPool(cfgs ...Config) (*Pool, error) {
	p := &Pool{Dial: Dial, cfgs: cfgs, slots: map[string]*poolSlot{}}
	for _, c := range cfgs {
		if _, dup := p.slots[c.Name]; dup {
			return nil, fmt.Errorf("host %q configured twice", c.Name)
		}
		p.slots[c.Name] = &poolSlot{}
	}
	return p, nil
}

// Names lists the configured hosts in configuration order.
func (p *Pool) Names() []string {
	n := make([]string, len(p.cfgs))
	for i, c := range p.cfgs {
		n[i] = c.Name
	}
	return n
}

// Get returns the connection to name, dialing it on first use. Concurrent
// callers for the same host wait for the one dial.
func (p *Pool) Get(ctx context.Context, name string) (host.Host, error) {
	p.mu.Lock()
	slot, ok := p.slots[name]
	p.mu.Unlock()
	if !ok {
		return nil, &host.Error{Host: name, Op: "connect", Err: errors.New("not in the inventory")}
	}
	slot.once.Do(func() {
		for _, c := range p.cfgs {
			if c.Name == name {
				slot.h, slot.err = p.Dial(ctx, c)
			}
		}
	})
	return slot.h, slot.err
}

// Each dials every host (limit at a time) and runs fn on those that
// connected; it returns the errors of both, joined, one per host.
func (p *Pool) Each(ctx context.Context, limit int, fn func(ctx context.Context, h host.Host) error) error {
	return host.ParallelNames(ctx, limit, p.Names(), func(ctx context.Context, name string) error {
		h, err := p.Get(ctx, name)
		if err != nil {
			return err
		}
		return fn(ctx, h)
	})
}

// Close closes every connection that was opened.
func (p *Pool) Close() error {
	var errs []error
	for _, c := range p.cfgs {
		p.mu.Lock()
		slot := p.slots[c.Name]
		p.mu.Unlock()
		slot.once.Do(func() { slot.err = errors.New("pool closed") }) // no dial after Close
		if slot.h != nil {
			errs = append(errs, slot.h.Close())
		}
	}
	return errors.Join(errs...)
}
