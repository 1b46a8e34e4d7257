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
	"github.com/pgwarm/pgwarm/inventory"
)

// Lock is the content of the apply lock on the primary. It is created with
// O_EXCL (the shell's noclobber), so of two runs exactly one gets it.
type Lock struct {
	Holder  string    // user@host of the operator's machine
	PID     int       // pgwarm's process id there
	Started time.Time // when the run took the lock
	Run     string    // random id: only the run that wrote it removes it
	Cmd     string    // the pgwarm command that holds it (apply, rebuild); "" in older locks: apply
}

// String is the file format: one key=value per line.
func (l Lock) String() string {
	out := fmt.Sprintf("holder=%s\npid=%d\nstarted=%s\nrun=%s\n", l.Holder, l.PID, l.Started.UTC().Format(time.RFC3339), l.Run)
	if l.Cmd != "" {
		out += "cmd=" + l.Cmd + "\n"
	}
	return out
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
		case "cmd":
			l.Cmd = v
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
	By         string // the command refused ("apply", "rebuild"); "" means apply
}

func (e *LockError) Error() string {
	by := e.By
	if by == "" {
		by = "apply"
	}
	return fmt.Sprintf("%s: another pgwarm %s holds the lock %s: %s; if that run is dead (its machine crashed), remove the lock with `pgwarm %s --force-unlock`",
		e.Host, e.Holder.command(), e.Path, e.Holder.Describe(e.Now), by)
}

// command is the pgwarm command holding l.
func (l Lock) command() string {
	if l.Cmd == "" {
		return "apply"
	}
	return l.Cmd
}

// lockStep takes the lock on the primary and releases it at the end.
type lockStep struct{}

func (lockStep) Title() string { return "lock: take the apply lock on the primary" }

func lockPath(s *State) string { return LockPath(s.Inv) }

// LockPath is the lock every run that changes a cluster's hosts takes
// (apply, rebuild) in the state directory of the host it locks on.
func LockPath(inv *inventory.Inventory) string { return path.Join(inv.Paths().StateDir, "apply.lock") }

func (lockStep) Run(ctx context.Context, s *State) error {
	held, err := TakeLock(ctx, s.host(s.Inv.Primary().Name), lockPath(s), LockOptions{Holder: s.Opts.Holder, PidAlive: s.Opts.PidAlive, ForceUnlock: s.Opts.ForceUnlock}, s.Out)
	s.lockHeld = held
	return err
}

// CleanUp releases the lock, but only the one this run wrote.
func (lockStep) CleanUp(ctx context.Context, s *State) {
	if s.lockHeld != "" && ReleaseLock(ctx, s.host(s.Inv.Primary().Name), lockPath(s), s.lockHeld, s.Out) {
		s.lockHeld = ""
	}
}

// LockOptions say who takes a lock and how a held one is judged.
type LockOptions struct {
	Cmd         string // the pgwarm command taking it ("" means apply)
	Holder      string // user@host of this run
	PidAlive    func(pid int) bool
	ForceUnlock bool
}

// hostPrinter is what the lock says its doing through (Printer, ops.Printer).
type hostPrinter interface {
	Hostf(host, format string, args ...any)
}

// TakeLock creates the lock p on h for this run and returns what it wrote
// (for ReleaseLock). A lock of another run is refused with a *LockError,
// unless that run is provably dead (this operator's, its process gone) or
// o.ForceUnlock: then it is removed, if still the one judged, and taken.
func TakeLock(ctx context.Context, h host.Host, p string, o LockOptions, out hostPrinter) (string, error) {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	mine := Lock{Holder: o.Holder, PID: os.Getpid(), Started: time.Now(), Run: hex.EncodeToString(rnd[:]), Cmd: o.Cmd}
	create := script("lock-take.sh", p) // atomic: exit 3 and the lock when it exists
	for attempt := 0; attempt < 2; attempt++ {
		res, err := h.Run(ctx, host.Cmd{Command: create, Stdin: []byte(mine.String())})
		if err != nil {
			return "", err
		}
		if res.OK() {
			out.Hostf(h.Name(), "lock %s taken", p)
			return mine.String(), nil
		}
		if res.ExitCode != 3 {
			return "", fmt.Errorf("%s: creating %s: %s", h.Name(), p, strings.TrimSpace(string(res.Stderr)))
		}
		held := ParseLock(res.Stdout)
		if DecideLock(held, o.Holder, o.PidAlive, o.ForceUnlock) == LockRefuse || attempt > 0 {
			return "", &LockError{Host: h.Name(), Path: p, Holder: held, Now: time.Now(), By: o.Cmd}
		}
		why := "its process is gone"
		if o.ForceUnlock {
			why = "--force-unlock"
		}
		out.Hostf(h.Name(), "removing the lock of %s: %s", held.Describe(time.Now()), why)
		// Remove it only if it is still the lock we judged, then retry once.
		// (Not removed: another run took it meanwhile; the retry says so.)
		if _, err := h.Run(ctx, host.Cmd{Command: script("lock-release.sh", p, strings.TrimRight(string(res.Stdout), "\n"))}); err != nil {
			return "", err
		}
	}
	return "", nil
}

// ReleaseLock removes the lock p on h if it still holds what this run
// wrote (held); it reports whether it did, and says so when it could not.
func ReleaseLock(ctx context.Context, h host.Host, p, held string, out hostPrinter) bool {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if res, err := h.Run(ctx, host.Cmd{Command: script("lock-release.sh", p, strings.TrimRight(held, "\n"))}); err != nil || !res.OK() {
		out.Hostf(h.Name(), "warning: could not release the lock %s; remove it by hand or use --force-unlock next time", p)
		return false
	}
	out.Hostf(h.Name(), "lock %s released", p)
	return true
}
