// Package apply turns an inventory into a working standby pair on real
// hosts: archive host, then primary, then standbys, each step idempotent
// so that a run interrupted anywhere (even by SIGKILL) is finished by
// running apply again.
//
// The workflow is a visible ordered slice of steps (see Steps). A step
// needs only Title and Run; a step that may be skipped also implements
// ShouldRun. Pure decisions (what a file should contain, whether a standby
// needs a seed, whether a lock is stale, how PostgreSQL is controlled) are
// plain functions tested without hosts; the steps are the effects.
package apply

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Step is one phase of the workflow.
type Step interface {
	Title() string
	Run(ctx context.Context, s *State) error
}

// shouldRunner is implemented by steps that may have nothing to do.
type shouldRunner interface {
	ShouldRun(s *State) bool
}

// cleanUpper is implemented by steps that must undo something at the end of
// the run whether it succeeded or not (releasing the lock).
type cleanUpper interface {
	CleanUp(ctx context.Context, s *State)
}

// StepError says which step failed and what was done before it.
type StepError struct {
	Step string
	Done []string
	Err  error
}

func (e *StepError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "step %q failed: %v", e.Step, e.Err)
	if len(e.Done) > 0 {
		fmt.Fprintf(&b, "\ncompleted before it: %s", strings.Join(e.Done, "; "))
	} else {
		b.WriteString("\nno step had completed")
	}
	b.WriteString("\nevery step is idempotent: run `pgwarm apply` again to continue from here")
	return b.String()
}

func (e *StepError) Unwrap() error { return e.Err }

// Execute runs steps in order, stopping at the first failure. Clean-ups of
// the steps that ran are done in reverse order at the end either way.
func Execute(ctx context.Context, s *State, steps []Step) error {
	var done []string
	var cleanups []cleanUpper
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			// A cancelled ctx must not prevent releasing the lock.
			cleanups[i].CleanUp(context.WithoutCancel(ctx), s)
		}
	}()
	for i, st := range steps {
		if sr, ok := st.(shouldRunner); ok && !sr.ShouldRun(s) {
			continue
		}
		s.Out.Step(i+1, len(steps), st.Title())
		if c, ok := st.(cleanUpper); ok {
			cleanups = append(cleanups, c)
		}
		t0 := time.Now()
		if err := st.Run(ctx, s); err != nil {
			if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
				err = fmt.Errorf("%w (%v)", err, ctx.Err())
			}
			return &StepError{Step: st.Title(), Done: done, Err: err}
		}
		done = append(done, st.Title())
		s.Out.StepDone(i+1, len(steps), time.Since(t0))
	}
	return nil
}
