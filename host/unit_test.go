package host

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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

func TestPoolDialsOnce(t *testing.T) {
	p, err := NewPool(Config{Name: "a"}, Config{Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	var dials atomic.Int32
	p.Dial = func(ctx context.Context, c Config) (Host, error) {
		dials.Add(1)
		if c.Name == "b" {
			return nil, &Error{Host: "b", Op: "connect", Err: errors.New("dial tcp: connection refused")}
		}
		return NewFake(c.Name), nil
	}
	for range 3 {
		err = p.Each(context.Background(), 0, func(context.Context, Host) error { return nil })
	}
	if dials.Load() != 2 || err == nil || err.Error() != "b: connect: dial tcp: connection refused" {
		t.Fatalf("dials %d, err %v", dials.Load(), err)
	}
	if _, err := p.Get(context.Background(), "zz"); err == nil || err.Error() != "zz: connect: not in the inventory" {
		t.Fatalf("unknown host: %v", err)
	}
	if _, err := NewPool(Config{Name: "a"}, Config{Name: "a"}); err == nil {
		t.Fatal("duplicate names accepted")
	}
}

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		out  string
		want FileInfo
	}{
		{"12 81a4 root root\n", FileInfo{Size: 12, Mode: 0o644, Owner: "root", Group: "root"}},
		{"4096 41ed postgres postgres\n", FileInfo{Size: 4096, Mode: fs.ModeDir | 0o755, Owner: "postgres", Group: "postgres", IsDir: true}},
		{"4096 43ff root root\n", FileInfo{Size: 4096, Mode: fs.ModeDir | fs.ModeSticky | 0o777, Owner: "root", Group: "root", IsDir: true}},
		{"7 a1ff root root\n", FileInfo{Size: 7, Mode: fs.ModeSymlink | 0o777, Owner: "root", Group: "root"}},
		{"0 8ded root daemon\n", FileInfo{Size: 0, Mode: fs.ModeSetuid | fs.ModeSetgid | 0o755, Owner: "root", Group: "daemon"}},
	} {
		got, err := parseStat("/p", tc.out)
		tc.want.Path = "/p"
		if err != nil || got != tc.want {
			t.Errorf("parseStat(%q) = %+v, %v; want %+v", tc.out, got, err, tc.want)
		}
	}
	if _, err := parseStat("/p", "stat: garbage"); err == nil {
		t.Error("garbage accepted")
	}
	if got := octalMode(0o755 | fs.ModeSetuid | fs.ModeSticky); got != "5755" {
		t.Errorf("octalMode = %s", got)
	}
}

func TestPidStripper(t *testing.T) {
	s := newPidStripper()
	for _, chunk := range []string{"sudo: unable to resolve host pg1\npgwarm-", "pid:42\nreal ", "error\n"} {
		s.Write([]byte(chunk))
	}
	if got := string(s.Bytes()); got != "sudo: unable to resolve host pg1\nreal error\n" {
		t.Fatalf("stderr = %q", got)
	}
	if pid := <-s.pidc; pid != 42 {
		t.Fatalf("pid = %d", pid)
	}
	// Without a marker (setsid missing, say) everything is kept.
	s = newPidStripper()
	s.Write([]byte("sh: 1: setsid: not found\n"))
	if got := string(s.Bytes()); got != "sh: 1: setsid: not found\n" {
		t.Fatalf("stderr = %q", got)
	}
}

func TestWrapQuotesOnce(t *testing.T) {
	h := &sshHost{sudo: true}
	got := h.wrap("echo 'a b' $(x)")
	want := `sudo -n -- setsid -w sh -c 'echo pgwarm-pid:$$ >&2; exec sh -c "$1"' pgwarm 'echo '\''a b'\'' $(x)'`
	if got != want {
		t.Fatalf("wrap =\n%s\nwant\n%s", got, want)
	}
}

func TestResolveSSHConfig(t *testing.T) {
	dir := t.TempDir()
	home, _ := os.UserHomeDir()
	conf := filepath.Join(dir, "config")
	os.WriteFile(conf, []byte(`Host db1
  HostName 10.1.2.3
  User alice
  Port 2222
  IdentityFile ~/.ssh/db_%r
  IdentityFile /keys/second
  UserKnownHostsFile /kh/%h
  ProxyJump bob@bastion:2200,carol@inner

Host bastion
  HostName 192.0.2.1
  User nobody
  HostKeyAlias bastion-key
  HashKnownHosts yes

Host legacy
  ProxyCommand nc %h %p
`), 0o600)
	sc, err := loadSSHConfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	e, err := sc.resolve("db1", "", 0, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if e.hostName != "10.1.2.3" || e.port != 2222 || e.user != "alice" || e.knownHosts != "/kh/10.1.2.3" ||
		fmt.Sprint(e.identityFiles) != fmt.Sprintf("[%s/.ssh/db_alice /keys/second]", home) ||
		fmt.Sprint(e.jumps) != "[bob@bastion:2200 carol@inner]" || e.knownHostsAddr() != "10.1.2.3:2222" {
		t.Fatalf("resolved %+v", e)
	}
	// Explicit values win, the explicit key first.
	e, _ = sc.resolve("db1", "root", 22, "/k", "/kh")
	if e.user != "root" || e.port != 22 || e.identityFiles[0] != "/k" || !e.explicitKey || e.knownHosts != "/kh" {
		t.Fatalf("explicit values lost: %+v", e)
	}
	j, err := sc.resolveJump("bob@bastion:2200", "/kh")
	if err != nil || j.user != "bob" || j.port != 2200 || j.hostName != "192.0.2.1" || j.hostKeyAlias != "bastion-key" || !j.hashKnown {
		t.Fatalf("jump %+v, %v", j, err)
	}
	if _, err := sc.resolve("legacy", "", 0, "", ""); err == nil || !strings.Contains(err.Error(), "ProxyCommand is not supported") {
		t.Fatalf("ProxyCommand: %v", err)
	}
	none, _ := loadSSHConfig("none")
	e, _ = none.resolve("db1", "", 0, "", "")
	if e.hostName != "db1" || e.port != 22 {
		t.Fatalf("with no ssh_config: %+v", e)
	}
	if _, err := loadSSHConfig(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("a missing explicit ssh_config was ignored")
	}
}

func TestDialConfigErrors(t *testing.T) {
	_, err := Dial(context.Background(), Config{Name: "pg1", Become: "doas", SSHConfigFile: "none"})
	if err == nil || err.Error() != `pg1: connect: become "doas" is not supported (only "sudo")` {
		t.Fatalf("err = %v", err)
	}
	_, err = Dial(context.Background(), Config{Name: "pg1", Address: "127.0.0.1", IdentityFile: "/nonexistent/key", SSHConfigFile: "none"})
	if err == nil || !strings.HasPrefix(err.Error(), "pg1: connect: identity file: open /nonexistent/key") {
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
