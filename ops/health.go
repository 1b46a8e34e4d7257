package ops

import (
	"fmt"
	"time"

	"github.com/pgwarm/pgwarm/inventory"
)

// Thresholds say when a standby counts as lagging.
type Thresholds struct {
	MaxLagBytes uint64        // replay behind what it could have by more than this: degraded
	MaxLagTime  time.Duration // ... or for longer than this
	MinFreePct  float64       // archive file system free below this percentage: degraded
}

// DefaultThresholds are the defaults of `pgwarm status`.
func DefaultThresholds() Thresholds {
	return Thresholds{MaxLagBytes: 64 << 20, MaxLagTime: 5 * time.Minute, MinFreePct: 10}
}

// Evaluate decides the health of every row and of the pair from the
// observed values alone, and fills in the lag figures. It is pure.
func Evaluate(r *Report, mode inventory.Mode, th Thresholds) {
	primaries := 0
	var primary *HostStatus
	for i := range r.Hosts {
		h := &r.Hosts[i]
		h.Problems, h.Health, h.LagBytes, h.LagSeconds = nil, Healthy, nil, nil
		if h.IsPostgres() && h.State == StateRunning && h.Role == string(inventory.RolePrimary) {
			primaries++
			// With two primaries the newer timeline is the one standbys follow.
			if primary == nil || h.Timeline > primary.Timeline {
				primary = h
			}
		}
	}
	r.Primary = ""
	if primary != nil {
		r.Primary = primary.Name
	}
	for i := range r.Hosts {
		h := &r.Hosts[i]
		switch {
		case h.InventoryRole == inventory.RoleArchive:
			evalArchive(h, th)
		case h.IsPostgres():
			evalPostgres(h, primary, primaries, mode, th)
		}
		if h.Archive != nil && h.InventoryRole != inventory.RoleArchive {
			evalArchive(h, th) // the seed's layout: the archive lives on a standby
		}
	}
	r.Health = Healthy
	if primary == nil {
		r.Health = Failed
	}
	for _, h := range r.Hosts {
		r.Health = max(r.Health, h.Health)
	}
}

func evalPostgres(h, primary *HostStatus, primaries int, mode inventory.Mode, th Thresholds) {
	// A host the inventory calls primary that is down is an error only when
	// nothing else took over; after a failover it is the expected state.
	downSev := Degraded
	if h.InventoryRole == inventory.RolePrimary && primary == nil {
		downSev = Failed
	}
	switch h.State {
	case StateUnreachable:
		h.add(downSev, "unreachable: %s", h.Error)
		return
	case StateStopped, StateNoCluster:
		h.add(downSev, "PostgreSQL is not running (%s)", h.State)
		return
	}
	if h.Error != "" {
		h.add(Failed, "cannot query PostgreSQL: %s", h.Error)
		return
	}
	if h.Role == string(inventory.RolePrimary) {
		if primaries > 1 {
			h.add(Degraded, "one of %d hosts accepting writes (split brain: fence all but one)", primaries)
		}
		if h.InventoryRole != inventory.RolePrimary && primaries == 1 {
			h.add(Degraded, "is the primary but the inventory says %s (update the inventory)", h.InventoryRole)
		}
		evalArchiver(h)
		return
	}
	// A standby.
	if h.ReplayPaused {
		h.add(Degraded, "replay is paused (pg_wal_replay_resume())")
	}
	if mode == inventory.ModeStreaming && h.Receiver != "streaming" {
		state := h.Receiver
		if state == "" {
			state = "no WAL receiver"
		}
		h.add(Degraded, "not streaming from the primary (%s)", state)
	}
	if primary == nil || primary.CurrentLSN == 0 {
		return
	}
	if primary.Timeline != 0 && h.Timeline != 0 && h.Timeline > primary.Timeline {
		h.add(Degraded, "on timeline %d, ahead of the primary's %d: cannot follow it (rebuild it)", h.Timeline, primary.Timeline)
	}
	lag := Lag(*primary, *h, mode)
	h.LagBytes, h.LagSeconds = &lag.Bytes, lag.Seconds
	if lag.Behind > th.MaxLagBytes {
		h.add(Degraded, "replay %s behind what it could have replayed (limit %s)", Bytes(lag.Behind), Bytes(th.MaxLagBytes))
	}
	if lag.Seconds != nil && time.Duration(*lag.Seconds*float64(time.Second)) > th.MaxLagTime {
		h.add(Degraded, "replay %.0f s behind (limit %s)", *lag.Seconds, th.MaxLagTime)
	}
}

func evalArchiver(h *HostStatus) {
	a := h.Archiver
	if a == nil {
		return
	}
	if a.Mode == "off" {
		h.add(Degraded, "archive_mode is off: nothing reaches the archive")
	}
	if a.Failing() {
		h.add(Degraded, "archiving failing: %s failed at %s, last success %s", a.LastFailed, stamp(a.LastFailedTime), orNone(a.LastArchived))
	}
}

func evalArchive(h *HostStatus, th Thresholds) {
	if h.State == StateUnreachable {
		h.add(Degraded, "unreachable: %s", h.Error)
		return
	}
	a := h.Archive
	if a == nil {
		return
	}
	if a.Error != "" {
		h.add(Degraded, "archive %s: %s", a.Path, a.Error)
	}
	if a.TotalBytes > 0 && float64(a.FreeBytes)*100/float64(a.TotalBytes) < th.MinFreePct {
		h.add(Degraded, "archive file system %s free of %s (below %.0f%%)", Bytes(a.FreeBytes), Bytes(a.TotalBytes), th.MinFreePct)
	}
}

// LagFigures is how far a standby is behind its primary.
type LagFigures struct {
	Bytes   uint64   // primary's current LSN minus the standby's replay LSN
	Behind  uint64   // bytes the standby could have replayed and has not
	Seconds *float64 // nil when unknown
}

// Lag computes the standby's lag. Bytes is against the primary's current
// LSN. What the standby could have replayed depends on the mode: in
// streaming mode everything the primary wrote; in warm and hot mode only
// what was archived, so a standby that has reached the last archived
// segment is not behind, however much the primary wrote since.
//
// Seconds is careful with an idle primary: now - last replayed commit
// grows forever when nothing is written, so it counts only while the
// standby is behind. The primary's pg_stat_replication replay_lag (which
// PostgreSQL clears when idle) wins when the standby streams.
func Lag(primary, standby HostStatus, mode inventory.Mode) LagFigures {
	f := LagFigures{Bytes: primary.CurrentLSN.Sub(standby.ReplayedLSN)}
	f.Behind = f.Bytes
	if mode != inventory.ModeStreaming {
		f.Behind = 0
		if a := primary.Archiver; a != nil {
			if end, ok := SegmentEnd(a.LastArchived, primary.SegSize); ok {
				// Replay stops at the switch record, inside the segment: reaching
				// the segment's start is being caught up.
				f.Behind = (end - LSN(primary.SegSize)).Sub(standby.ReplayedLSN)
			}
		}
	}
	zero := 0.0
	if f.Behind == 0 {
		f.Seconds = &zero
		return f
	}
	for _, s := range primary.Senders {
		if s.Addr == standby.Address && s.ReplayLag != nil {
			v := *s.ReplayLag
			f.Seconds = &v
			return f
		}
	}
	if standby.LastReplayTime != nil && !standby.ObservedAt.IsZero() {
		v := max(standby.ObservedAt.Sub(*standby.LastReplayTime).Seconds(), 0)
		f.Seconds = &v
	}
	return f
}

// Bytes prints a byte count the way PostgreSQL's pg_size_pretty does.
func Bytes(n uint64) string {
	units := []string{"bytes", "kB", "MB", "GB", "TB"}
	v, i := float64(n), 0
	for v >= 10*1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d bytes", n)
	}
	return fmt.Sprintf("%.0f %s", v, units[i])
}

func stamp(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
