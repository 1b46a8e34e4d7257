package wal

import (
	"context"
	"time"
)

// CancelWhen returns ctx cancelled with cause as soon as cond, checked
// every period, holds: for conditions nothing signals, such as a file
// appearing or a parent process exiting. The checking stops with ctx.
func CancelWhen(ctx context.Context, every time.Duration, cond func() bool, cause error) (context.Context, context.CancelCauseFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if cond() {
					cancel(cause)
					return
				}
			}
		}
	}()
	return ctx, cancel
}
