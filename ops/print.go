package ops

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pgwarm/pgwarm/apply"
)

// Printer writes lines about hosts, each starting with the host's name;
// colour only when asked (a terminal without NO_COLOR, decided by cmd).
type Printer struct {
	W     io.Writer
	Color bool
}

func (p *Printer) paint(code, s string) string {
	if !p.Color {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

// Hostf prints one line about a host.
func (p *Printer) Hostf(name, format string, args ...any) {
	fmt.Fprintf(p.W, "%s: %s\n", p.paint("1", name), fmt.Sprintf(format, args...))
}

// Step and StepDone announce a workflow's steps as apply does.
func (p *Printer) Step(n, total int, title string) {
	fmt.Fprintln(p.W, apply.StepLine(n, total, title))
}

func (p *Printer) StepDone(n, total int, d time.Duration) {
	fmt.Fprintln(p.W, apply.StepDoneLine(n, total, d))
}

func (p *Printer) health(h Health) string {
	switch h {
	case Healthy:
		return p.paint("32", h.String())
	case Degraded:
		return p.paint("33", h.String())
	}
	return p.paint("31", h.String())
}

// Table prints the report for humans: one row per host, then each problem
// on its own line starting with the host's name.
func (p *Printer) Table(r *Report) {
	tw := tabwriter.NewWriter(p.W, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tROLE\tSTATE\tTL\tLSN\tLAG\tARCHIVER\tARCHIVE\tHEALTH")
	for _, h := range r.Hosts {
		role := h.Role
		if role == "" {
			role = "-"
		}
		if h.Role != "" && h.Role != string(h.InventoryRole) {
			role += " (inventory: " + string(h.InventoryRole) + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Name, role, h.State, dash(h.Timeline),
			lsnCol(h), lagCol(h), archiverCol(h.Archiver), archiveCol(h.Archive), h.Health)
	}
	tw.Flush()
	for _, h := range r.Hosts {
		for _, pr := range h.Problems {
			p.Hostf(h.Name, "%s: %s", p.health(pr.Health), pr.Msg)
		}
	}
	fmt.Fprintf(p.W, "pair: %s", p.health(r.Health))
	if r.Primary != "" {
		fmt.Fprintf(p.W, " (primary %s)", r.Primary)
	} else {
		fmt.Fprint(p.W, " (no host accepts writes)")
	}
	fmt.Fprintln(p.W)
}

func dash(tl uint32) string {
	if tl == 0 {
		return "-"
	}
	return fmt.Sprint(tl)
}

func lsnCol(h HostStatus) string {
	switch {
	case h.CurrentLSN != 0:
		return "current " + h.CurrentLSN.String()
	case h.ReplayedLSN != 0 && h.ReceivedLSN != 0:
		return "received " + h.ReceivedLSN.String() + " replayed " + h.ReplayedLSN.String()
	case h.ReplayedLSN != 0:
		return "replayed " + h.ReplayedLSN.String()
	}
	return "-"
}

func lagCol(h HostStatus) string {
	if h.LagBytes == nil {
		return "-"
	}
	s := Bytes(*h.LagBytes)
	if h.LagSeconds != nil {
		s += fmt.Sprintf(", %.1f s", *h.LagSeconds)
	}
	return s
}

func archiverCol(a *Archiver) string {
	if a == nil {
		return "-"
	}
	var parts []string
	if a.LastArchived != "" {
		parts = append(parts, "last "+a.LastArchived+" "+ago(a.LastArchivedTime))
	}
	if a.LastFailed != "" {
		parts = append(parts, "FAILED "+a.LastFailed+" "+ago(a.LastFailedTime))
	}
	if len(parts) == 0 {
		return "nothing archived (archive_mode " + a.Mode + ")"
	}
	return strings.Join(parts, "; ")
}

func ago(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.Local().Format("15:04:05")
}

func archiveCol(a *Archive) string {
	if a == nil {
		return "-"
	}
	newest := a.Newest
	if newest == "" {
		newest = "no segments"
	}
	s := fmt.Sprintf("newest %s, %s used, %s free", newest, Bytes(a.SizeBytes), Bytes(a.FreeBytes))
	if a.Error != "" && a.Newest == "" && a.SizeBytes == 0 {
		s = a.Error
	}
	return s
}
