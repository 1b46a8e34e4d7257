package host

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

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
