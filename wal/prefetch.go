package wal

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/pgwarm/pgwarm/wal/archive"
	"github.com/pgwarm/pgwarm/wal/segname"
)

// Prefetch lets restore fetch ahead while a standby catches up. PostgreSQL
// asks for one segment at a time, each a round trip to the archive (over
// ssh about 0.1 s): a standby far behind, or a rewound one replaying from
// the last common checkpoint, spends most of its time waiting on them.
// When a segment came back at once (it was archived already, so the
// standby is behind), restore also fetches the next Ahead segments, all at
// once, into Spool, and later restores take them from there without a
// round trip. A standby that is caught up gets each segment while it
// lingers and prefetches nothing: no extra requests when idle.
type Prefetch struct {
	Spool   string // directory, created on first use; one subdirectory per archive
	Ahead   int
	Archive string // the archive URL, which names the subdirectory
}

// prefetchWhenWithin: a fetch answered this fast probably found its
// segment archived already. One such answer can also be a linger that a
// segment ended at once, so restore fetches ahead only after two in a row
// for consecutive segments (see behind): PostgreSQL reading one archived
// segment after another. pg_rewind, which reads backwards first, and a
// caught-up standby, which lingers, do not.
const prefetchWhenWithin = 250 * time.Millisecond

// behind records that n was fetched (quick: answered at once) and reports
// whether the segment before it was fetched at once too. The record is a
// small file in the spool.
func (p Prefetch) behind(n segname.Name, segSize uint32, quick bool) bool {
	dir, ok := p.makeSpool()
	if !ok {
		return false
	}
	prev, _ := archive.ReadRegular(filepath.Join(dir, "last"))
	mark := "slow"
	if quick {
		mark = "quick"
	}
	_ = writeNew(dir, "last", []byte(n.String()+" "+mark+"\n"))
	segno := n.SegNo(segSize)
	if !quick || segno == 0 {
		return false
	}
	want := segname.FromSegNo(n.TLI, segno-1, segSize).String() + " quick\n"
	return string(prev) == want
}

// spoolDir is the spool of one archive: a different archive URL (apply
// moved the archive) never serves another's files.
func (p Prefetch) spoolDir() string {
	sum := sha256.Sum256([]byte(p.Archive))
	return filepath.Join(p.Spool, hex.EncodeToString(sum[:6]))
}

// makeSpool creates the spool of this archive and returns it, unless it
// is not a real directory: the spool's own directory is pgwarm-wal's (the
// operator's --spool above it may be a link), and fromSpool removes what
// it finds there, so a link would aim those removals elsewhere.
func (p Prefetch) makeSpool() (string, bool) {
	dir := p.spoolDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false
	}
	return dir, realDir(dir)
}

func realDir(dir string) bool {
	st, err := os.Lstat(dir)
	return err == nil && st.IsDir()
}

// fromSpool returns n's content from the spool when it is there and
// intact, and drops every spooled file that is not ahead of n.
func (p Prefetch) fromSpool(n segname.Name, c archive.Cluster) ([]byte, bool) {
	dir := p.spoolDir()
	if !realDir(dir) {
		return nil, false
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, false
	}
	var hit []byte
	for _, de := range des {
		path := filepath.Join(dir, de.Name())
		m, err := segname.Parse(de.Name())
		switch {
		case de.Name() == "last":
		case err != nil || m.Kind != segname.Segment || m.TLI != n.TLI || !segname.Less(n, m) && m != n:
			// Not ahead of n on its timeline (or a temp file): never asked
			// for again in this order. A spool is a cache: dropping is safe.
			os.Remove(path)
		case m == n:
			if b, err := archive.ReadRegular(path); err == nil {
				hit = b
			}
			os.Remove(path)
		}
	}
	if hit == nil {
		return nil, false
	}
	content, err := decodeChecked(n, hit, c)
	if err != nil {
		return nil, false // damaged in the spool: fetch it from the archive
	}
	return content, true
}

// prefetchBudget bounds what the fetches ahead hold at once: each holds
// one archived file until it is in the spool, up to one segment (stored
// uncompressed, or sent so by a hostile archive host). 48 MiB is three
// 16 MiB segments in flight; one at a time from 32 MiB segments up.
const prefetchBudget = 48 << 20

// prefetchDeadline bounds all the fetches ahead of one restore; what is
// not in the spool by then is fetched when PostgreSQL asks for it.
var prefetchDeadline = 20 * time.Second

// prefetchParallel is how many fetches ahead run at once for segSize.
func prefetchParallel(segSize uint32) int {
	return max(1, prefetchBudget/int(segSize))
}

// fill fetches the Ahead segments after n (segSize bytes each),
// prefetchParallel at a time, and keeps those archived in the spool.
// Failures only cost the prefetch.
func (p Prefetch) fill(ctx context.Context, a archive.Archive, n segname.Name, segSize uint32) {
	if p.Ahead <= 0 || !segname.ValidSegSize(segSize) {
		return
	}
	dir, ok := p.makeSpool()
	if !ok {
		return
	}
	// restore exits only after the fetches ahead: a slow or stalled
	// archive must not hold PostgreSQL's restore_command for long.
	ctx, cancel := context.WithTimeout(ctx, prefetchDeadline)
	defer cancel()
	var wg sync.WaitGroup
	slots := make(chan struct{}, prefetchParallel(segSize))
	for i := 1; i <= p.Ahead; i++ {
		next := segname.FromSegNo(n.TLI, n.SegNo(segSize)+uint64(i), segSize)
		slots <- struct{}{}
		if ctx.Err() != nil {
			break // past the deadline: PostgreSQL asks for the rest itself
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			// Spooled as fetched: fromSpool checks each file when it is
			// asked for (it must, the spool is a plain directory), and a
			// damaged one is fetched again and reported by that restore.
			file, err := a.Get(ctx, next, 0)
			if err != nil {
				return
			}
			_ = writeNew(dir, next.String(), file)
		}()
	}
	wg.Wait()
}
