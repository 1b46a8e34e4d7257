package apply

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pgwarm/pgwarm/host"
	"github.com/pgwarm/pgwarm/plan"
	"github.com/pgwarm/pgwarm/templates"
)

// apply carries out the plan it was given: on the plan's hosts only, and
// a file is written only while it is still what the plan observed.
func TestApplyHoldsToThePlan(t *testing.T) {
	s, _, _ := bindingState(t)
	pg2 := host.NewFake("pg2")
	pg2.Handler = func(host.Cmd) (host.Result, error) { return host.Result{}, nil }
	s.Hosts["pg2"] = pg2
	old := []byte("work_mem = '4MB'\n")
	pg2.SetFile("/etc/x.conf", old, 0o644, "postgres:postgres")
	p := &plan.Plan{Hosts: []plan.HostPlan{{Name: "pg2", Observed: map[string]string{
		"/etc/x.conf":   "sha256:" + plan.Hash(old) + " 0644 postgres:postgres",
		"/etc/new.conf": "absent",
	}}}}
	s = NewState(s.Inv, s.Rendered, s.Hosts, s.Facts, Options{Password: "pw", Plan: p}, NewPrinter(&bytes.Buffer{}, false))

	for _, st := range []Step{archiveStep{}, primaryFilesStep{}, primaryRoleStep{}, primaryReloadStep{}, archivingProofStep{}} {
		if st.(shouldRunner[*State]).ShouldRun(s) {
			t.Errorf("%q runs for a plan of pg2 alone", st.Title())
		}
	}
	if got := s.planned(s.Inv.Standbys()); len(got) != 1 || got[0].Name != "pg2" {
		t.Errorf("planned standbys %v", got)
	}
	if s.inPlan("pg1") || s.inPlan("arch") || !s.inPlan("pg2") {
		t.Error("inPlan does not follow the plan's hosts")
	}

	ctx := context.Background()
	f := templates.File{Path: "/etc/x.conf", Mode: 0o644, Owner: "postgres:postgres", Content: []byte("work_mem = '8MB'\n")}
	// Changed on the host after the plan: refused, nothing written.
	pg2.SetFile("/etc/x.conf", []byte("work_mem = '1GB'\n"), 0o644, "postgres:postgres")
	if _, err := ensureFile(ctx, s, pg2, f); err == nil || !strings.Contains(err.Error(), "pg2: /etc/x.conf changed since the plan observed it") {
		t.Fatalf("a file changed since the plan: %v", err)
	}
	if b, _ := pg2.ReadFile(ctx, "/etc/x.conf"); string(b) != "work_mem = '1GB'\n" {
		t.Fatalf("written anyway: %q", b)
	}
	// As the plan saw it: written, and a second write in the same run
	// compares with what apply wrote.
	pg2.SetFile("/etc/x.conf", old, 0o644, "postgres:postgres")
	if wrote, err := ensureFile(ctx, s, pg2, f); err != nil || !wrote {
		t.Fatalf("the planned write: %v %v", wrote, err)
	}
	f.Content = []byte("work_mem = '16MB'\n")
	if _, err := ensureFile(ctx, s, pg2, f); err != nil {
		t.Fatalf("a second write of the run: %v", err)
	}
	// Absent when planned, there now: refused.
	pg2.SetFile("/etc/new.conf", []byte("planted\n"), 0o644, "root:root")
	if _, err := ensureFile(ctx, s, pg2, templates.File{Path: "/etc/new.conf", Mode: 0o644, Content: []byte("x\n")}); err == nil || !strings.Contains(err.Error(), "absent then") {
		t.Fatalf("a file that appeared since the plan: %v", err)
	}
}

// After the reload, a restart PostgreSQL asks for that the plan did not
// show is not made: the operator approved a reload.
func TestRestartOnlyAsPlanned(t *testing.T) {
	s, _, _ := bindingState(t)
	pg1 := host.NewFake("pg1")
	var restarted bool
	pg1.Handler = func(c host.Cmd) (host.Result, error) {
		switch {
		case strings.Contains(string(c.Stdin), "pending_restart"):
			return host.Result{Stdout: []byte("shared_buffers\n")}, nil
		case strings.Contains(c.Command, "restart"):
			restarted = true
		}
		return host.Result{}, nil
	}
	s.Hosts["pg1"] = pg1
	for _, tc := range []struct {
		what    string
		subject string
		ok      bool
	}{
		{"plan shows a reload", "reload postgresql: archive_timeout changed", false},
		{"plan shows the restart", "restart postgresql: shared_buffers pending", true},
	} {
		t.Run(tc.what, func(t *testing.T) {
			restarted = false
			p := &plan.Plan{Hosts: []plan.HostPlan{{Name: "pg1", Changes: []plan.Change{{Action: plan.Run, Subject: tc.subject}}}}}
			st := NewState(s.Inv, s.Rendered, s.Hosts, s.Facts, Options{Password: "pw", Plan: p}, NewPrinter(&bytes.Buffer{}, false))
			err := reloadOrRestart(context.Background(), st, "pg1")
			if tc.ok != (err == nil) || restarted != tc.ok {
				t.Fatalf("err %v, restarted %v", err, restarted)
			}
			if err != nil && !strings.Contains(err.Error(), "pending_restart for shared_buffers, but the plan showed no restart of pg1") {
				t.Errorf("message: %v", err)
			}
		})
	}
}

// apply writes the files the plan changes and no other, even one that
// differs from what the inventory renders.
func TestApplyWritesOnlyPlannedFiles(t *testing.T) {
	s, _, _ := bindingState(t)
	pg2 := host.NewFake("pg2")
	pg2.Handler = func(host.Cmd) (host.Result, error) { return host.Result{}, nil }
	s.Hosts["pg2"] = pg2
	p := &plan.Plan{Hosts: []plan.HostPlan{{Name: "pg2", Observed: map[string]string{"/etc/a": "absent", "/etc/b": "absent"},
		Changes: []plan.Change{{Action: plan.Create, Path: "/etc/a"}}}}}
	s = NewState(s.Inv, s.Rendered, s.Hosts, s.Facts, Options{Password: "pw", Plan: p}, NewPrinter(&bytes.Buffer{}, false))
	files := []templates.File{{Path: "/etc/a", Mode: 0o644, Content: []byte("a\n")}, {Path: "/etc/b", Mode: 0o644, Content: []byte("b\n")}}
	if _, err := ensureAll(context.Background(), s, pg2, files); err != nil {
		t.Fatal(err)
	}
	if _, err := pg2.ReadFile(context.Background(), "/etc/a"); err != nil {
		t.Error("the planned file was not written")
	}
	if _, err := pg2.ReadFile(context.Background(), "/etc/b"); err == nil {
		t.Error("a file the plan shows no change of was written")
	}
}

// The lock is shared by apply and rebuild: a lock another live run holds
// refuses either, naming the holder's command and the way out for this one.
func TestLockSharedByCommands(t *testing.T) {
	held := Lock{Holder: "op@laptop", PID: 4242, Started: time.Now().Add(-time.Minute), Run: "abc", Cmd: "apply"}
	h := host.NewFake("pg1")
	h.Handler = func(host.Cmd) (host.Result, error) {
		return host.Result{ExitCode: 3, Stdout: []byte(held.String())}, nil
	}
	_, err := TakeLock(context.Background(), h, "/var/lib/pgwarm/main/apply.lock",
		LockOptions{Cmd: "rebuild", Holder: "me@desk", PidAlive: func(int) bool { return true }}, NewPrinter(&bytes.Buffer{}, false))
	var le *LockError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "another pgwarm apply holds the lock") || !strings.Contains(err.Error(), "`pgwarm rebuild --force-unlock`") {
		t.Fatalf("err = %v", err)
	}
}
