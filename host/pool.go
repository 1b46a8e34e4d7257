package host

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Pool holds one connection per configured host: each host is dialed at
// most once (a failed dial is remembered, not retried), then shared.
type Pool struct {
	// Dial connects one host; NewPool sets it to host.Dial, tests may
	// replace it before first use.
	Dial func(ctx context.Context, cfg Config) (Host, error)

	cfgs  []Config
	mu    sync.Mutex
	slots map[string]*poolSlot
}

type poolSlot struct {
	once sync.Once
	h    Host
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
func (p *Pool) Get(ctx context.Context, name string) (Host, error) {
	p.mu.Lock()
	slot, ok := p.slots[name]
	p.mu.Unlock()
	if !ok {
		return nil, &Error{Host: name, Op: "connect", Err: errors.New("not in the inventory")}
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
func (p *Pool) Each(ctx context.Context, limit int, fn func(ctx context.Context, h Host) error) error {
	return ParallelNames(ctx, limit, p.Names(), func(ctx context.Context, name string) error {
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

// Parallel runs fn for every host with at most limit (<= 0: all) in
// flight, and returns errors.Join of the failures in the order of hosts,
// each starting with its host's name. Hosts not started because ctx
// ended report ctx's error.
func Parallel(ctx context.Context, limit int, hosts []Host, fn func(ctx context.Context, h Host) error) error {
	names := make([]string, len(hosts))
	for i, h := range hosts {
		names[i] = h.Name()
	}
	return parallel(ctx, limit, names, func(ctx context.Context, i int) error { return fn(ctx, hosts[i]) })
}

// ParallelNames is Parallel over host names, for work that starts before
// a connection exists (dialing, say).
func ParallelNames(ctx context.Context, limit int, names []string, fn func(ctx context.Context, name string) error) error {
	return parallel(ctx, limit, names, func(ctx context.Context, i int) error { return fn(ctx, names[i]) })
}

func parallel(ctx context.Context, limit int, names []string, fn func(ctx context.Context, i int) error) error {
	if limit <= 0 || limit > len(names) {
		limit = len(names)
	}
	errs := make([]error, len(names))
	sem := make(chan struct{}, max(limit, 1))
	var wg sync.WaitGroup
	for i := range names {
		if err := ctx.Err(); err != nil { // select below picks at random when both are ready
			errs[i] = prefixHost(names[i], fmt.Errorf("not started: %w", err))
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			errs[i] = prefixHost(names[i], fmt.Errorf("not started: %w", ctx.Err()))
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				errs[i] = prefixHost(names[i], err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// prefixHost makes err start with name, unless it already is that host's
// *Error (wrapping it twice would print the name twice).
func prefixHost(name string, err error) error {
	var he *Error
	if errors.As(err, &he) && he.Host == name {
		return err
	}
	return &Error{Host: name, Err: err}
}
