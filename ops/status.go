// Package ops operates a running pair: status, verify, promote and rebuild.
// Decisions (health, lag, which host to fence, which method to rebuild with)
// are pure functions of observed values; the effects go through host.Host.
package ops

import (
	"fmt"
	"time"

	"github.com/pgwarm/pgwarm/inventory"
)

// State is what a host's PostgreSQL (or the host itself) is doing.
type State string

const (
	StateRunning     State = "running"
	StateStopped     State = "stopped"
	StateNoCluster   State = "no-cluster" // data directory empty: never seeded
	StateUnreachable State = "unreachable"
	StateUp          State = "up" // archive host reachable
)

// Health is the verdict for one host or the pair; worse values are larger.
type Health int

const (
	Healthy Health = iota
	Degraded
	Failed
)

func (h Health) String() string {
	switch h {
	case Healthy:
		return "ok"
	case Degraded:
		return "degraded"
	}
	return "error"
}

// MarshalText prints the verdict's name in JSON.
func (h Health) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// ExitCode is SPEC's status exit code: 0 healthy, 2 degraded, 1 error.
func (h Health) ExitCode() int {
	switch h {
	case Healthy:
		return 0
	case Degraded:
		return 2
	}
	return 1
}

// Problem is one finding about a host.
type Problem struct {
	Health Health `json:"severity"`
	Msg    string `json:"message"`
}

// Archiver is pg_stat_archiver plus archive_mode.
type Archiver struct {
	Mode             string     `json:"archive_mode"`
	ArchivedCount    int64      `json:"archived_count"`
	LastArchived     string     `json:"last_archived_wal,omitempty"`
	LastArchivedTime *time.Time `json:"last_archived_time,omitempty"`
	FailedCount      int64      `json:"failed_count"`
	LastFailed       string     `json:"last_failed_wal,omitempty"`
	LastFailedTime   *time.Time `json:"last_failed_time,omitempty"`
}

// Failing reports whether the archiver's last attempt failed: a failure
// newer than the last success (or a failure and no success at all).
func (a Archiver) Failing() bool {
	if a.LastFailedTime == nil {
		return false
	}
	return a.LastArchivedTime == nil || a.LastFailedTime.After(*a.LastArchivedTime)
}

// Sender is one row of the primary's pg_stat_replication.
type Sender struct {
	Addr      string   `json:"client_addr"`
	Name      string   `json:"application_name"`
	State     string   `json:"state"`
	ReplayLSN LSN      `json:"replay_lsn"`
	ReplayLag *float64 `json:"replay_lag_seconds"`
}

// Archive is what the archive host says about the WAL archive.
type Archive struct {
	Path       string `json:"path"`
	Newest     string `json:"newest_segment,omitempty"`
	Files      int    `json:"files"`
	SizeBytes  uint64 `json:"size_bytes"`
	FreeBytes  uint64 `json:"free_bytes"`
	TotalBytes uint64 `json:"filesystem_bytes"`
	Error      string `json:"error,omitempty"`
}

// HostStatus is one row of `pgwarm status`: what was observed on a host and,
// after Evaluate, what it means.
type HostStatus struct {
	Name          string         `json:"name"`
	Address       string         `json:"address"`
	InventoryRole inventory.Role `json:"inventory_role"`
	// Role is as observed: pg_is_in_recovery() on a running server, the
	// recovery signal file on a stopped one, archive for the archive host.
	Role       string    `json:"role"`
	State      State     `json:"state"`
	Error      string    `json:"error,omitempty"`
	Version    int       `json:"server_version_num,omitempty"`
	Timeline   uint32    `json:"timeline,omitempty"`
	ObservedAt time.Time `json:"observed_at,omitzero"` // the server's clock_timestamp()

	CurrentLSN     LSN        `json:"current_lsn,omitempty"`  // primary
	ReceivedLSN    LSN        `json:"received_lsn,omitempty"` // standby (streaming)
	ReplayedLSN    LSN        `json:"replayed_lsn,omitempty"` // standby
	LastReplayTime *time.Time `json:"last_replay_time,omitempty"`
	ReplayPaused   bool       `json:"replay_paused,omitempty"`
	Receiver       string     `json:"wal_receiver,omitempty"` // pg_stat_wal_receiver.status
	SegSize        uint64     `json:"wal_segment_size,omitempty"`
	Archiver       *Archiver  `json:"archiver,omitempty"`
	Senders        []Sender   `json:"senders,omitempty"`
	Archive        *Archive   `json:"archive,omitempty"`

	// Filled by Evaluate.
	LagBytes   *uint64   `json:"lag_bytes,omitempty"`
	LagSeconds *float64  `json:"lag_seconds,omitempty"`
	Problems   []Problem `json:"problems,omitempty"`
	Health     Health    `json:"health"`
}

// IsPostgres reports whether the row is a PostgreSQL host.
func (h HostStatus) IsPostgres() bool {
	return h.InventoryRole == inventory.RolePrimary || h.InventoryRole == inventory.RoleStandby
}

func (h *HostStatus) add(sev Health, format string, args ...any) {
	h.Problems = append(h.Problems, Problem{Health: sev, Msg: fmt.Sprintf(format, args...)})
	if sev > h.Health {
		h.Health = sev
	}
}

// Report is the whole `pgwarm status` value; the table and --json are two
// views of it.
type Report struct {
	Cluster string       `json:"cluster"`
	Mode    string       `json:"mode"`
	Primary string       `json:"primary,omitempty"` // observed
	Hosts   []HostStatus `json:"hosts"`
	Health  Health       `json:"health"`
}

// Row returns the row of host name.
func (r *Report) Row(name string) *HostStatus {
	for i := range r.Hosts {
		if r.Hosts[i].Name == name {
			return &r.Hosts[i]
		}
	}
	return nil
}
