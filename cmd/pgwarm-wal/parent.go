package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/pgwarm/pgwarm/wal"
	"github.com/pgwarm/pgwarm/wal/archive"
)

// A restore must not outlive the server that started it: an orphan that
// later sees its segment or its trigger would write into a data directory
// that a new server may own by then. restore_command runs under
// /bin/sh -c, and dash forks the command instead of exec'ing it, so the
// server is our parent or, with the shell in between, our grandparent
// (a shell that keeps waiting for us when the server dies). Both are
// watched: the parent by PR_SET_PDEATHSIG (Linux: SIGTERM the moment it
// exits) and every parentPoll by getppid, which also covers a parent that
// died before the prctl; the grandparent by whether our parent's parent
// changed (it is re-parented when the grandparent dies).
const parentPoll = 100 * time.Millisecond

var errParentGone = errors.New("the process that started this restore is gone")

// parents is who started this process, as seen when it started.
type parents struct {
	ppid  int
	gppid int // our parent's parent, or -1 when unknown (not Linux)
}

func currentParents() parents {
	ppid := os.Getppid()
	return parents{ppid: ppid, gppid: parentOf(ppid)}
}

// gone reports whether the parent or the grandparent has exited since p
// was taken.
func (p parents) gone() bool {
	if os.Getppid() != p.ppid {
		return true
	}
	return p.gppid >= 0 && parentOf(p.ppid) != p.gppid
}

// dieWithParent returns ctx cancelled with errParentGone when the parent
// or grandparent exits, and how to tell afterwards whether it did.
func dieWithParent(ctx context.Context) (context.Context, func() bool, func()) {
	p := currentParents()
	setParentDeathSignal()
	ctx, cancel := wal.CancelWhen(ctx, parentPoll, p.gone, errParentGone)
	if p.gone() { // it died before the prctl could arm
		cancel(errParentGone)
	}
	// The death signal arrives as SIGTERM, which cancels ctx as a stop
	// would: whether the parent is gone is asked again, not taken from ctx.
	gone := func() bool { return errors.Is(context.Cause(ctx), errParentGone) || p.gone() }
	return ctx, gone, func() { cancel(nil) }
}

// parentGoneError is restore's exit when its server is gone: 1, what
// PostgreSQL reads as "not restored" and never as fatal, so that were the
// check ever wrong about a live server, it would only retry. A dead
// server reads no exit status anyway.
func parentGoneError(dest string) error {
	return &archive.Error{Kind: archive.KindNotFound, Err: errParentGone, Msg: fmt.Sprintf(
		"the server process that started this restore is gone: stopped without writing %s (an orphaned restore must not write into a data directory another server may own)", dest)}
}
