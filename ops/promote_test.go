package ops

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgwarm/pgwarm/host"
	"github.com/pgwarm/pgwarm/inventory"
	"github.com/pgwarm/pgwarm/templates"
	"github.com/pgwarm/pgwarm/wal/serve"
)

// row builds one observed host: inventory role, observed role, state, timeline.
func row(name string, inv inventory.Role, role string, st State, tl uint32) HostStatus {
	return HostStatus{Name: name, InventoryRole: inv, Role: role, State: st, Timeline: tl}
}

func report(rows ...HostStatus) *Report {
	return &Report{Hosts: append(rows, row("arch", inventory.RoleArchive, "archive", StateUp, 0))}
}

func TestPlanPromote(t *testing.T) {
	P, S := inventory.RolePrimary, inventory.RoleStandby
	three := report(row("pg1", P, "primary", StateRunning, 1), row("pg2", S, "standby", StateRunning, 1), row("pg3", S, "standby", StateRunning, 1))
	unreach := row("pg1", P, "", StateUnreachable, 0)
	unreach.Error = "dial tcp: no route to host"
	for _, tc := range []struct {
		name, target string
		r            *Report
		want         PromotePlan
		err          string
	}{
		{"only standby, primary running", "", report(row("pg1", P, "primary", StateRunning, 1), row("pg2", S, "standby", StateRunning, 1)),
			PromotePlan{Target: "pg2", Fence: []string{"pg1"}}, ""},
		{"primary unreachable", "", report(unreach, row("pg2", S, "standby", StateRunning, 1)),
			PromotePlan{Target: "pg2", Unfenceable: []string{"pg1"}}, ""},
		{"primary stopped is still fenced (autostart)", "pg2", report(row("pg1", P, "primary", StateStopped, 0), row("pg2", S, "standby", StateRunning, 1)),
			PromotePlan{Target: "pg2", Fence: []string{"pg1"}}, ""},
		{"several standbys need a name", "", three, PromotePlan{}, "several running standbys (pg2, pg3)"},
		{"named among several; other standby keeps following", "pg3", three, PromotePlan{Target: "pg3", Fence: []string{"pg1"}}, ""},
		{"target already primary", "pg1", three, PromotePlan{}, "pg1: already accepts writes"},
		{"target stopped", "pg2", report(row("pg1", P, "primary", StateRunning, 1), row("pg2", S, "standby", StateStopped, 0)), PromotePlan{}, "pg2: PostgreSQL is not running (stopped)"},
		{"no standby", "", report(row("pg1", P, "primary", StateRunning, 1), row("pg2", S, "standby", StateStopped, 0)), PromotePlan{}, "no running standby"},
		{"archive host named", "arch", three, PromotePlan{}, "arch: not a PostgreSQL host"},
		{"unknown host", "pg9", three, PromotePlan{}, "pg9: not a PostgreSQL host"},
		{"a standby promoted by hand is fenced too", "pg3", report(row("pg1", P, "standby", StateStopped, 0), row("pg2", S, "primary", StateRunning, 2), row("pg3", S, "standby", StateRunning, 1)),
			PromotePlan{Target: "pg3", Fence: []string{"pg1", "pg2"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PlanPromote(tc.r, tc.target)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got.Fence, ",") != strings.Join(tc.want.Fence, ",") || got.Target != tc.want.Target ||
				strings.Join(got.Unfenceable, ",") != strings.Join(tc.want.Unfenceable, ",") {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestPromotionRights(t *testing.T) {
	inv, err := inventory.Parse("pgwarm.yaml", []byte(commented), inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	during, err := PromotionRights(inv, "pg2", promotingRights(2))
	if err != nil {
		t.Fatal(err)
	}
	// While it is promoted the target reads too, and may push only the
	// timeline its promotion creates; the old primary may only read from
	// the moment the file is written.
	if !strings.HasSuffix(during, "\npg1 get,cleanup,list,verify\npg2 push@2,get\n") || !strings.HasPrefix(during, "# pgwarm-wal serve rights of cluster main") {
		t.Errorf("during the promotion:\n%s", during)
	}
	after, err := PromotionRights(inv, "pg2", templates.ArchiveRightsPrimary("2"))
	if err != nil || !strings.HasSuffix(after, "\npg1 get,cleanup,list,verify\npg2 push@2\n") {
		t.Errorf("after the promotion: %v\n%s", err, after)
	}
	// Every line parses as pgwarm-wal serve reads it, with the timeline.
	rights, err := serve.ParseRightsFile(during)
	if err != nil || rights["pg2"].Timeline != 2 || !rights["pg2"].Allows("get") || rights["pg1"].Allows("push") {
		t.Errorf("serve reads %v, %v", rights, err)
	}
	// Once the inventory names pg2 primary, apply renders the same file
	// with pg2's timeline from its facts.
	swapped, err := inventory.Parse("pgwarm.yaml", []byte(strings.NewReplacer("role: primary}", "role: standby}", `role: "standby"`, "role: primary").Replace(commented)), inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := templates.RenderWith(swapped, templates.Options{LookupEnv: func(string) (string, bool) { return "x", true }})
	if err != nil {
		t.Fatal(err)
	}
	var rendered string
	for _, f := range r.Hosts["arch"] {
		if f.Kind == templates.KindArchiveRights {
			rendered = string(f.Content)
			for ph, v := range templates.TimelineValues("pg2", 2) {
				rendered = strings.ReplaceAll(rendered, ph, v)
			}
			if len(f.NeedsTimelines) != 1 || f.NeedsTimelines[0] != "pg2" {
				t.Errorf("the rights file needs the timeline of %v, want pg2", f.NeedsTimelines)
			}
		}
	}
	if rendered != after {
		t.Errorf("apply would render\n%s\npromote writes\n%s", rendered, after)
	}
	if _, err := PromotionRights(inv, "pg3", templates.ArchiveRightsPrimary("2")); err == nil {
		t.Error("no error for a host without a key")
	}
}

// PostgreSQL's choice of the new timeline (findNewestTimeLine + 1):
// promote grants exactly that timeline to the promoted host's key.
func TestNextTimeline(t *testing.T) {
	for _, c := range []struct {
		current  uint32
		archived []uint32
		want     uint32
	}{
		{1, nil, 2},
		{0, nil, 2},         // not observed: a cluster starts on 1
		{1, []uint32{2}, 3}, // an abandoned promotion took 2
		{1, []uint32{2, 3, 5}, 4},
		{2, []uint32{2}, 3},
		{3, []uint32{2}, 4},
		{1, []uint32{3}, 2}, // not consecutive: PostgreSQL stops probing at 2
	} {
		if got := NextTimeline(c.current, c.archived); got != c.want {
			t.Errorf("NextTimeline(%d, %v) = %d, want %d", c.current, c.archived, got, c.want)
		}
	}
}

const commented = `# Production pair — roles swap at failover.
cluster: main   # do not rename
postgres: {version: 15, layout: debian}
replication:
  mode: hot
  user: replicator
  password_env: PGWARM_REPLICATION_PASSWORD
archive: {host: arch, transport: ssh, path: /srv/pgwarm/main}
hosts:
  # the old primary
  - {name: pg1, address: 10.0.0.1, role: primary}   # rack A
  - name: pg2
    address: 10.0.0.2
    role: "standby"  # rack B
  - {name: arch, address: 10.0.0.3, role: archive}
`

func TestSetRolesKeepsEverythingElse(t *testing.T) {
	inv, err := inventory.Parse("pgwarm.yaml", []byte(commented), inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ch := RoleChanges(inv, "pg2")
	if len(ch) != 2 || ch["pg1"] != inventory.RoleStandby || ch["pg2"] != inventory.RolePrimary {
		t.Fatalf("RoleChanges = %v", ch)
	}
	got, err := SetRoles([]byte(commented), ch)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(strings.Replace(commented, "role: primary}", "role: standby}", 1), `role: "standby"`, `role: "primary"`, 1)
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	back, err := inventory.Parse("pgwarm.yaml", got, inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if back.Primary().Name != "pg2" || len(RoleChanges(back, "pg2")) != 0 {
		t.Errorf("after the edit the primary is %s", back.Primary().Name)
	}
	if _, err := SetRoles([]byte(commented), map[string]inventory.Role{"pg9": inventory.RolePrimary}); err == nil {
		t.Error("no error for an unknown host")
	}
}

func TestLateFence(t *testing.T) {
	inv, err := inventory.Parse("pgwarm.yaml", []byte(commented), inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pg1 := host.NewFake("pg1")
	pg1.Handler = func(c host.Cmd) (host.Result, error) {
		return host.Result{Stdout: []byte("switched 000000010000000000000009\nstopped pg_ctlcluster 15 main\n")}, nil
	}
	calls := 0
	var out bytes.Buffer
	opts := PromoteOptions{LateFence: 30 * time.Second, Redial: func(ctx context.Context, name string) (host.Host, error) {
		if calls++; calls == 1 {
			return nil, errors.New("dial tcp 10.0.0.1:22: connect: no route to host")
		}
		return pg1, nil
	}}
	if err := lateFence(context.Background(), inv, "pg1", opts, &Printer{W: &out}); err != nil {
		t.Fatal(err)
	}
	if calls != 2 || len(pg1.Commands()) != 1 || !strings.Contains(out.String(), "pg1: answers again after the promotion: fencing it now") ||
		!strings.Contains(out.String(), "pg1: fenced: stopped fast") {
		t.Errorf("calls %d, commands %d, output:\n%s", calls, len(pg1.Commands()), out.String())
	}
	// Gone for good: reported, not an error.
	out.Reset()
	opts = PromoteOptions{LateFence: 300 * time.Millisecond, Redial: func(ctx context.Context, name string) (host.Host, error) {
		return nil, errors.New("i/o timeout")
	}}
	if err := lateFence(context.Background(), inv, "pg1", opts, &Printer{W: &out}); err != nil || !strings.Contains(out.String(), "pg1: still unreachable 300ms after the promotion") {
		t.Errorf("err %v, output:\n%s", err, out.String())
	}
}

// promote writes push@T only where the archive host's pgwarm-wal reads
// it: an older serve would take the whole file for broken and allow no key
// anything, standbys' reads included.
func TestRightsScriptNeedsTimelineAwareHelper(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pgwarm-main.rights")
	if err := os.WriteFile(file, []byte("pg1 push\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		t.Fatal(err)
	}
	run := func(help string) int {
		helper := filepath.Join(dir, "pgwarm-wal")
		if err := os.WriteFile(helper, []byte("#!/bin/sh\necho '"+help+"'\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("/bin/sh", "-c", rightsScript(file, u.Username+":"+g.Name, helper))
		cmd.Stdin = strings.NewReader("pg1 get\npg2 push@2\n")
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	}
	if code := run("--allow value  comma-separated operations this key may run: push,get,cleanup,list,verify"); code != 4 {
		t.Fatalf("old helper: exit %d, want 4", code)
	}
	if b, _ := os.ReadFile(file); string(b) != "pg1 push\n" {
		t.Fatalf("rights file changed for an old helper: %q", b)
	}
	if code := run("--allow value  comma-separated operations this key may run: push@TIMELINE,get,cleanup,list,verify"); code != 0 {
		t.Fatalf("new helper: exit %d", code)
	}
	if b, _ := os.ReadFile(file); string(b) != "pg1 get\npg2 push@2\n" {
		t.Fatalf("rights file not rewritten: %q", b)
	}
}

// A paused standby is resumed before pg_ctl promote (PostgreSQL promoted
// while paused can end recovery without asking the archive again), with
// the functions of the server's version, and promote reports it.
func TestPromoteResumesPausedReplay(t *testing.T) {
	inv, err := inventory.Parse("pgwarm.yaml", []byte(commented), inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := promoteScript(inv, "pg2", time.Minute)
	resume, promote := strings.Index(s, "pg_wal_replay_resume()"), strings.Index(s, " promote -W")
	if resume < 0 || promote < 0 || resume > promote || !strings.Contains(s, "pg_is_wal_replay_paused()") {
		t.Fatalf("the script does not resume paused replay before it promotes:\n%s", s)
	}
	inv.Postgres.Version = 90600
	if s := promoteScript(inv, "pg2", time.Minute); strings.Contains(s, "pg_wal_replay") || !strings.Contains(s, "pg_xlog_replay_resume()") {
		t.Errorf("9.6 has the xlog names:\n%s", s)
	}
	from, to, ok := parseResumed("resumed 0/4022300 0/8000000\nphases 3 20\nf|00000002")
	if !ok || from != "0/4022300" || to != "0/8000000" {
		t.Errorf("parseResumed: %q %q %v", from, to, ok)
	}
	if _, _, ok := parseResumed("phases 3 20\nf|00000002"); ok {
		t.Error("parseResumed found a resume in a promotion that did none")
	}
}
