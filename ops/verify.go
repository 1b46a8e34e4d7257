package ops

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pgwarm/pgwarm/host"
	"github.com/pgwarm/pgwarm/inventory"
)

// canarySQL writes one row and returns the LSN right after its commit;
// pg_switch_wal then closes the segment so that log shipping carries it.
func canarySQL(v inventory.Version, token string) []string {
	return []string{
		"CREATE SCHEMA IF NOT EXISTS pgwarm",
		"CREATE TABLE IF NOT EXISTS pgwarm.canary (id text PRIMARY KEY, written_at timestamptz NOT NULL DEFAULT clock_timestamp())",
		"INSERT INTO pgwarm.canary (id) VALUES ('" + token + "')",
		walNames(v, "SELECT pg_current_wal_lsn(), pg_walfile_name(pg_current_wal_lsn()), extract(epoch from clock_timestamp())"),
		walNames(v, "SELECT pg_switch_wal()"),
	}
}

// psqlMulti runs each statement as its own -c (own transaction), in order.
func psqlMulti(inv *inventory.Inventory, stmts ...string) string {
	args := []string{inv.Paths().BinDir + "/psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-p", fmt.Sprint(inv.Postgres.Port), "-d", "postgres"}
	for _, s := range stmts {
		args = append(args, "-c", s)
	}
	return asPostgres(args...)
}

// replaySQL reads the standby's replay position (9.6's names via walNames) and whether it sees the
// canary (hot and streaming standbys answer queries; the table may not
// exist there yet).
func replaySQL(v inventory.Version, token string) string {
	return walNames(v, "SELECT pg_last_wal_replay_lsn(), CASE WHEN to_regclass('pgwarm.canary') IS NULL THEN false "+
		"ELSE EXISTS (SELECT 1 FROM pgwarm.canary WHERE id = '"+token+"') END")
}

// CanaryReplayed decides from one observation of a standby whether the
// canary has arrived: the replay position is past the canary's LSN and,
// when the standby answers queries, the row is visible. Pure.
func CanaryReplayed(canary, replayed LSN, queryable, rowSeen bool) bool {
	return replayed >= canary && (!queryable || rowSeen)
}

// VerifyResult is what verify measured on one standby.
type VerifyResult struct {
	Standby  string
	Replayed LSN
	RowSeen  bool
	Seen     float64   // the standby's clock (Unix seconds) when it saw the canary
	done     time.Time // when its answer arrived here
	// HostDelay is from the commit on the primary to the standby seeing
	// it, by the two hosts' clocks: no SSH round trips in it, but any
	// clock skew between the hosts.
	HostDelay time.Duration
}

// Delay is the wall-clock time here from start until the standby answered.
func (v VerifyResult) Delay(start time.Time) time.Duration { return v.done.Sub(start) }

// Verify writes a canary on the observed primary, forces a WAL switch and
// waits until every running standby has replayed it, printing the
// measured delay. On timeout it says what it last saw.
func Verify(ctx context.Context, inv *inventory.Inventory, hosts Hosts, timeout time.Duration, pr *Printer) error {
	r := Observe(ctx, inv, hosts)
	Evaluate(r, inv.Replication.Mode, DefaultThresholds())
	if r.Primary == "" {
		return errors.New("no host accepts writes: nothing to verify (see pgwarm status)")
	}
	var standbys []string
	var errs []error
	for _, h := range r.Hosts {
		if !h.IsPostgres() || h.Name == r.Primary {
			continue
		}
		if h.State != StateRunning || h.Role != string(inventory.RoleStandby) {
			errs = append(errs, &host.Error{Host: h.Name, Err: fmt.Errorf("not a running standby (%s, role %s)%s", h.State, orNone(h.Role), suffix(h.Error))})
			continue
		}
		standbys = append(standbys, h.Name)
	}
	if len(standbys) == 0 {
		if len(errs) == 0 {
			errs = append(errs, errors.New("no standby in the inventory to verify"))
		}
		return errors.Join(errs...)
	}
	if err := verifyOn(ctx, inv, hosts, r.Primary, standbys, timeout, pr); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// verifyOn writes a canary on primary and waits until each of standbys has
// replayed it; rebuild uses it for the one host it rebuilt.
func verifyOn(ctx context.Context, inv *inventory.Inventory, hosts Hosts, primary string, standbys []string, timeout time.Duration, pr *Printer) error {
	var errs []error
	ph, err := hosts.Get(ctx, primary)
	if err != nil {
		return err
	}
	token := newToken()
	queryable := inv.Replication.Mode != inventory.ModeWarm
	// Hot and streaming standbys wait for the row itself, so their waiters
	// start before the write: the measured delay then holds no SSH set-up.
	// Warm ones need the canary's segment, known only after the write.
	type canaryInfo struct {
		lsn       LSN
		seg       string
		committed float64
	}
	written := make(chan canaryInfo, len(standbys)) // buffered: a waiter that failed never reads
	writeFailed := make(chan struct{})
	// The timeout counts from the write: observing the hosts first is not
	// replication delay.
	start := time.Now()
	deadline := start.Add(timeout)
	waiters := make(chan error, 1)
	go func() {
		waiters <- host.ParallelNames(ctx, 0, standbys, func(ctx context.Context, name string) error {
			h, err := hosts.Get(ctx, name)
			if err != nil {
				return err
			}
			var c canaryInfo
			if !queryable {
				select {
				case c = <-written:
				case <-writeFailed:
					return nil
				}
			}
			res, err := waitReplay(ctx, inv, h, token, c.seg, queryable, deadline)
			if err != nil {
				return err
			}
			if queryable {
				select {
				case c = <-written:
				case <-writeFailed:
					return nil
				}
			}
			if res.Seen > 0 {
				res.HostDelay = time.Duration((res.Seen - c.committed) * float64(time.Second))
			}
			seen := "replay LSN " + res.Replayed.String()
			if res.RowSeen {
				seen += ", row visible"
			}
			pr.Hostf(name, "replayed the canary %s after its commit on %s (host clocks; %s wall clock here including SSH round trips; %s)",
				res.HostDelay.Round(time.Millisecond), primary, res.Delay(start).Round(time.Millisecond), seen)
			return nil
		})
	}()
	res, err := host.CheckRun(ctx, ph, host.Cmd{Command: psqlMulti(inv, canarySQL(inv.Postgres.Version, token)...), Timeout: 30 * time.Second})
	var c canaryInfo
	if err == nil {
		if f := strings.Fields(strings.ReplaceAll(string(res.Stdout), "|", " ")); len(f) >= 3 {
			c.seg = f[1]
			c.committed, _ = strconv.ParseFloat(f[2], 64)
			c.lsn, err = ParseLSN(f[0])
		} else {
			err = &host.Error{Host: primary, Err: fmt.Errorf("canary: unexpected psql output %q", res.Stdout)}
		}
	}
	if err != nil {
		close(writeFailed)
		<-waiters
		return fmt.Errorf("writing the canary: %w", err)
	}
	pr.Hostf(primary, "canary %s written at LSN %s, WAL switched", token, c.lsn)
	defer func() {
		// Clean up even when a standby failed; the DELETE replicates too.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := host.CheckRun(cctx, ph, host.Cmd{Command: Psql(inv, "DELETE FROM pgwarm.canary WHERE id = '"+token+"'")}); err != nil {
			pr.Hostf(primary, "could not remove canary %s: %v", token, err)
		}
	}()
	for range standbys {
		written <- c
	}
	err = <-waiters
	if err != nil {
		errs = append(errs, err)
		// Say what the archive holds, the other way WAL reaches a standby.
		for _, h := range Observe(ctx, inv, hosts).Hosts {
			if h.Archive != nil {
				errs = append(errs, &host.Error{Host: h.Name, Err: fmt.Errorf("archive newest segment %s%s", orNone(h.Archive.Newest), suffix(h.Archive.Error))})
			}
		}
	}
	return errors.Join(errs...)
}

func suffix(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

// waitScript waits on the standby itself until the canary is there, so
// that the measured delay carries no SSH session set-up per poll. It prints
// the last observation and exits 0 once replayed, 3 on timeout.
//   - hot/streaming: the canary row is visible (its commit is replayed);
//   - warm (no queries): the startup process recovers a segment after the
//     canary's, so the canary's segment is replayed completely.
func waitScript(inv *inventory.Inventory, token, canarySeg string, queryable bool, timeout time.Duration) string {
	probe := Psql(inv, replaySQL(inv.Postgres.Version, token))
	done := `case $r in *"|t") echo "$r"; date +%s.%N; exit 0;; esac`
	if !queryable {
		probe = "ps -e -o args= | grep -oE 'startup.* (recovering|waiting for) [0-9A-F]{24}' | grep -oE '[0-9A-F]{24}$'"
		done = `if [ -n "$r" ] && [ "$r" \> ` + host.Quote(canarySeg) + ` ]; then echo "$r"; exit 0; fi`
	}
	return fmt.Sprintf("end=$(( $(date +%%s) + %d )); while :; do r=$(%s 2>&1 | tail -1); %s; "+
		"if [ $(date +%%s) -ge $end ]; then echo \"$r\"; exit 3; fi; sleep 0.02; done",
		int(timeout.Seconds())+1, probe, done)
}

// waitReplay runs waitScript on the standby and reports what it saw.
func waitReplay(ctx context.Context, inv *inventory.Inventory, h host.Host, token, canarySeg string, queryable bool, deadline time.Time) (VerifyResult, error) {
	res := VerifyResult{Standby: h.Name()}
	left := time.Until(deadline)
	out, err := h.Run(ctx, host.Cmd{Command: waitScript(inv, token, canarySeg, queryable, left), Timeout: left + 10*time.Second})
	res.done = time.Now()
	if err != nil {
		return res, err
	}
	outLines := strings.Split(strings.TrimSpace(string(out.Stdout)), "\n")
	last := outLines[0]
	if len(outLines) == 2 && out.OK() {
		res.Seen, _ = strconv.ParseFloat(outLines[1], 64)
	}
	if queryable {
		if f := strings.Split(last, "|"); len(f) == 2 {
			res.Replayed, _ = ParseLSN(f[0])
			res.RowSeen = f[1] == "t"
		}
	} else {
		res.Replayed = StartupReplayed(last, 16<<20)
	}
	if out.OK() {
		return res, nil
	}
	msg := fmt.Sprintf("canary not replayed in time: last saw %q (replayed LSN %s, row visible %v)", last, res.Replayed, res.RowSeen)
	return res, &host.Error{Host: h.Name(), Err: errors.New(msg)}
}

// StartupReplayed is the replay position a startup process title implies:
// the start of the segment it recovers (everything before it is replayed).
// Pure; 0 when the title names no segment.
func StartupReplayed(title string, segSize uint64) LSN {
	for _, f := range strings.Fields(title) {
		if end, ok := SegmentEnd(f, segSize); ok {
			return end - LSN(segSize)
		}
	}
	return 0
}

func newToken() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "verify-" + hex.EncodeToString(b)
}
