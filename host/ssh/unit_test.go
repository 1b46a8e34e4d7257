package ssh

import (
	"context"
	"errors"
	"fmt"
	"github.com/pgwarm/pgwarm/host"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func TestPoolDialsOnce(t *testing.T) {
	p, err := NewPool(Config{Name: "a"}, Config{Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	var dials atomic.Int32
	p.Dial = func(ctx context.Context, c Config) (host.Host, error) {
		dials.Add(1)
		if c.Name == "b" {
			return nil, &host.Error{Host: "b", Op: "connect", Err: errors.New("dial tcp: connection refused")}
		}
		return host.NewFake(c.Name), nil
	}
	for range 3 {
		err = p.Each(context.Background(), 0, func(context.Context, host.Host) error { return nil })
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
		want host.FileInfo
	}{
		{"12 81a4 root root\n", host.FileInfo{Size: 12, Mode: 0o644, Owner: "root", Group: "root"}},
		{"4096 41ed postgres postgres\n", host.FileInfo{Size: 4096, Mode: fs.ModeDir | 0o755, Owner: "postgres", Group: "postgres", IsDir: true}},
		{"4096 43ff root root\n", host.FileInfo{Size: 4096, Mode: fs.ModeDir | fs.ModeSticky | 0o777, Owner: "root", Group: "root", IsDir: true}},
		{"7 a1ff root root\n", host.FileInfo{Size: 7, Mode: fs.ModeSymlink | 0o777, Owner: "root", Group: "root"}},
		{"0 8ded root daemon\n", host.FileInfo{Size: 0, Mode: fs.ModeSetuid | fs.ModeSetgid | 0o755, Owner: "root", Group: "daemon"}},
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
