package apply

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/pgwarm/pgwarm/host"
)

// Lock is the content of the apply lock on the primary. It is created with
// O_EXCL (the shell's noclobber), so of two runs exactly one gets it.
type Lock struct {
	Holder  string    // user@host of the operator's machine
	PID     int       // pgwarm's process id there
	Started time.Time // when the run took the lock
	Run     string    // random id: only the run that wrote it removes it
}

// String is the file format: one key=value per line.
func (l Lock) String() string {
	return fmt.Sprintf("holder=%s\npid=%d\nstarted=%s\nrun=%s\n", l.Holder, l.PID, l.Started.UTC().Format(time.RFC3339), l.Run)
}

// ParseLock reads a lock file; unknown lines are ignored.
func ParseLock(b []byte) Lock {
	var l Lock
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
		switch k {
		case "holder":
			l.Holder = v
		case "pid":
			l.PID, _ = strconv.Atoi(v)
		case "started":
			l.Started, _ = time.Parse(time.RFC3339, v)
		case "run":
			l.Run = v
		}
	}
	return l
}

// Describe names the holder for messages.
func (l Lock) Describe(now time.Time) string {
	s := fmt.Sprintf("%s (pid %d", l.Holder, l.PID)
	if !l.Started.IsZero() {
		s += fmt.Sprintf(", since %s, %s ago", l.Started.UTC().Format(time.RFC3339), now.Sub(l.Started).Round(time.Second))
	}
	return s + ")"
}

// LockVerdict is what to do with a lock somebody else holds.
type LockVerdict int

const (
	LockRefuse   LockVerdict = iota // another run is (or may be) alive
	LockTakeOver                    // provably dead, or the operator said --force-unlock
)

// DecideLock is the pure decision about an existing lock. A lock is taken
// over only when its holder is this very machine and user (so pid means
// something here) and that pid is no longer alive — the case of a run
// killed with SIGKILL — or when the operator forces it. A lock from
// another machine is never guessed stale: that run may still be working.
func DecideLock(existing Lock, me string, pidAlive func(int) bool, force bool) LockVerdict {
	if force {
		return LockTakeOver
	}
	if existing.Holder == me && existing.PID > 0 && pidAlive != nil && !pidAlive(existing.PID) {
		return LockTakeOver
	}
	return LockRefuse
}

// LockError is a refusal because another run holds the lock.
type LockError struct {
	Host, Path string
	Holder     Lock
	Now        time.Time
}

func (e *LockError) Error() string {
	return fmt.Sprintf("%s: another pgwarm apply holds the lock %s: %s; if that run is dead (its machine crashed), remove the lock with `pgwarm apply --force-unlock`",
		e.Host, e.Path, e.Holder.Describe(e.Now))
}

// lockStep takes the lock on the primary and releases it at the end.
type lockStep struct{}

func (lockStep) Title() string { return "lock: take the apply lock on the primary" }

func lockPath(s *State) string { return path.Join(s.Paths.StateDir, "apply.lock") }

func (lockStep) Run(ctx context.Context, s *State) error {
	prim := s.Inv.Primary().Name
	h := s.host(prim)
	p := lockPath(s)
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	mine := Lock{Holder: s.Opts.Holder, PID: os.Getpid(), Started: time.Now(), Run: hex.EncodeToString(rnd[:])}
	create := script("lock-take.sh", p) // atomic: exit 3 and the lock when it exists
	for attempt := 0; attempt < 2; attempt++ {
		res, err := h.Run(ctx, host.Cmd{Command: create, Stdin: []byte(mine.String())})
		if err != nil {
			return err
		}
		if res.OK() {
			s.lockHeld = mine.String()
			s.Out.Hostf(prim, "lock %s taken", p)
			return nil
		}
		if res.ExitCode != 3 {
			return fmt.Errorf("%s: creating %s: %s", prim, p, strings.TrimSpace(string(res.Stderr)))
		}
		held := ParseLock(res.Stdout)
		if DecideLock(held, s.Opts.Holder, s.Opts.PidAlive, s.Opts.ForceUnlock) == LockRefuse || attempt > 0 {
			return &LockError{Host: prim, Path: p, Holder: held, Now: time.Now()}
		}
		why := "its process is gone"
		if s.Opts.ForceUnlock {
			why = "--force-unlock"
		}
		s.Out.Hostf(prim, "removing the lock of %s: %s", held.Describe(time.Now()), why)
		// Remove it only if it is still the lock we judged, then retry once.
		// (Not removed: another run took it meanwhile; the retry says so.)
		if _, err := h.Run(ctx, host.Cmd{Command: script("lock-release.sh", p, strings.TrimRight(string(res.Stdout), "\n"))}); err != nil {
			return err
		}
	}
	return nil
}

// CleanUp releases the lock, but only the one this run wrote.
func (lockStep) CleanUp(ctx context.Context, s *State) {
	if s.lockHeld == "" {
		return
	}
	prim := s.Inv.Primary().Name
	p := lockPath(s)
	rm := script("lock-release.sh", p, strings.TrimRight(s.lockHeld, "\n"))
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if res, err := s.host(prim).Run(ctx, host.Cmd{Command: rm}); err != nil || !res.OK() {
		s.Out.Hostf(prim, "warning: could not release the lock %s; remove it by hand or use --force-unlock next time", p)
		return
	}
	s.lockHeld = ""
	s.Out.Hostf(prim, "lock %s released", p)
}
