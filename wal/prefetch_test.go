package wal

import (
	"context"
	"testing"
	"time"

	"github.com/pgwarm/pgwarm/wal/archive"
	"github.com/pgwarm/pgwarm/wal/segname"
)

// stalling answers nothing until its caller gives up.
type stalling struct {
	archive.Archive
	asked chan struct{}
}

func (s stalling) Get(ctx context.Context, _ segname.Name, _ time.Duration) ([]byte, error) {
	s.asked <- struct{}{}
	<-ctx.Done()
	return nil, ctx.Err()
}

// The fetches ahead of a restore end by prefetchDeadline however the
// archive stalls (restore exits only after them), and run at most
// prefetchParallel at a time.
func TestPrefetchBounded(t *testing.T) {
	old := prefetchDeadline
	prefetchDeadline = 300 * time.Millisecond
	t.Cleanup(func() { prefetchDeadline = old })
	if got := prefetchParallel(16 << 20); got != 3 {
		t.Errorf("16 MiB segments: %d at a time, want 3", got)
	}
	if got := prefetchParallel(1 << 30); got != 1 {
		t.Errorf("1 GiB segments: %d at a time, want 1", got)
	}
	p := Prefetch{Spool: t.TempDir(), Ahead: 8, Archive: "ssh://a@b/srv/x"}
	n, _ := segname.Parse("000000010000000000000005")
	a := stalling{asked: make(chan struct{}, 8)}
	start := time.Now()
	p.fill(context.Background(), a, n, 16<<20)
	took := time.Since(start)
	if took > 2*time.Second {
		t.Fatalf("fill took %v against a stalled archive", took)
	}
	if len(a.asked) != 3 {
		t.Errorf("%d fetches were started before the deadline, want 3 (the rest wait for a slot)", len(a.asked))
	}
}
