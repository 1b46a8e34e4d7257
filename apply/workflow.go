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

// StepOf is one phase of a workflow over state S: apply's (Step, on
// *State), and rebuild's and promote's in ops, run by the same executor
// (ExecuteOf) with the same output and the same StepError.
type StepOf[S any] interface {
	Title() string
	Run(ctx context.Context, s S) error
}

// Step is one phase of apply's workflow.
type Step = StepOf[*State]

// shouldRunner is implemented by steps that may have nothing to do.
type shouldRunner[S any] interface {
	ShouldRun(s S) bool
}

// cleanUpper is implemented by steps that must undo something at the end of
// the run whether it succeeded or not (releasing the lock).
type cleanUpper[S any] interface {
	CleanUp(ctx context.Context, s S)
}

// StepOutput is where the executor announces steps (Printer, ops.Printer).
type StepOutput interface {
	Step(n, total int, title string)
	StepDone(n, total int, d time.Duration)
}

// StepError says which step failed and what was done before it.
type StepError struct {
	Step string
	Done []string
	Err  error
	// Again is the command that continues from here ("pgwarm apply").
	Again string
}

func (e *StepError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "step %q failed: %v", e.Step, e.Err)
	if len(e.Done) > 0 {
		fmt.Fprintf(&b, "\ncompleted before it: %s", strings.Join(e.Done, "; "))
	} else {
		b.WriteString("\nno step had completed")
	}
	again := e.Again
	if again == "" {
		again = "pgwarm apply"
	}
	fmt.Fprintf(&b, "\nevery step is idempotent: run `%s` again to continue from here", again)
	return b.String()
}

func (e *StepError) Unwrap() error { return e.Err }

// Execute runs apply's steps (see ExecuteOf).
func Execute(ctx context.Context, s *State, steps []Step) error {
	return ExecuteOf(ctx, s, s.Out, "pgwarm apply", steps)
}

// ExecuteOf runs steps in order, announcing each on out, stopping at the
// first failure with a *StepError that names again as the way to go on.
// Clean-ups of the steps that ran are done in reverse order at the end
// either way.
func ExecuteOf[S any](ctx context.Context, s S, out StepOutput, again string, steps []StepOf[S]) error {
	var done []string
	var cleanups []cleanUpper[S]
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			// A cancelled ctx must not prevent releasing the lock.
			cleanups[i].CleanUp(context.WithoutCancel(ctx), s)
		}
	}()
	for i, st := range steps {
		if sr, ok := st.(shouldRunner[S]); ok && !sr.ShouldRun(s) {
			continue
		}
		out.Step(i+1, len(steps), st.Title())
		if c, ok := st.(cleanUpper[S]); ok {
			cleanups = append(cleanups, c)
		}
		t0 := time.Now()
		if err := st.Run(ctx, s); err != nil {
			if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
				err = fmt.Errorf("%w (%v)", err, ctx.Err())
			}
			return &StepError{Step: st.Title(), Done: done, Err: err, Again: again}
		}
		done = append(done, st.Title())
		out.StepDone(i+1, len(steps), time.Since(t0))
	}
	return nil
}
