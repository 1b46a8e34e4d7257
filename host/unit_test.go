package host

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParallel(t *testing.T) {
	hosts := []Host{NewFake("a"), NewFake("b"), NewFake("c"), NewFake("d")}
	var inFlight, peak atomic.Int32
	err := Parallel(context.Background(), 2, hosts, func(ctx context.Context, h Host) error {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
		inFlight.Add(-1)
		switch h.Name() {
		case "b":
			return errors.New("disk full")
		case "d":
			return &Error{Host: "d", Op: "run", Err: errors.New("exit 1")}
		}
		return nil
	})
	if peak.Load() != 2 {
		t.Errorf("peak concurrency %d, want 2", peak.Load())
	}
	if want := "b: disk full\nd: run: exit 1"; err == nil || err.Error() != want {
		t.Fatalf("err = %q, want %q", err, want)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = Parallel(ctx, 1, hosts[:1], func(context.Context, Host) error { t.Error("ran after cancel"); return nil })
	if !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "a: not started") {
		t.Fatalf("err = %v", err)
	}
}

func TestFakeRecordsAndScripts(t *testing.T) {
	f := NewFake("pg1")
	f.Handler = func(c Cmd) (Result, error) {
		if c.Command == "pg_lsclusters" {
			return Result{Stdout: []byte("15 main 5432 online\n")}, nil
		}
		return Result{ExitCode: 127, Stderr: []byte("not found")}, nil
	}
	res, err := f.Run(context.Background(), Cmd{Command: "pg_lsclusters"})
	if err != nil || string(res.Stdout) != "15 main 5432 online\n" {
		t.Fatalf("%+v %v", res, err)
	}
	f.Run(context.Background(), Cmd{Command: "other", Stdin: []byte("x")})
	if got := f.Commands(); len(got) != 2 || got[1].Command != "other" || string(got[1].Stdin) != "x" {
		t.Fatalf("recorded %+v", got)
	}
	f.SetFile("/etc/postgresql/15/main/postgresql.conf", []byte("port = 5432\n"), 0o644, "postgres:postgres")
	fi, err := f.Stat(context.Background(), "/etc/postgresql/15")
	if err != nil || !fi.IsDir {
		t.Fatalf("parent of SetFile: %+v %v", fi, err)
	}
	f.Handler = nil
	if _, err := f.Run(context.Background(), Cmd{Command: "x"}); err == nil || !strings.HasPrefix(err.Error(), "pg1: run: fake host has no handler") {
		t.Fatalf("no handler: %v", err)
	}
	f.Close()
	if _, err := f.ReadFile(context.Background(), "/etc/postgresql/15/main/postgresql.conf"); err == nil {
		t.Fatal("read after Close")
	}
}
