package ssh_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarm/pgwarm/host"
	"github.com/pgwarm/pgwarm/host/hosttest"
	sshhost "github.com/pgwarm/pgwarm/host/ssh"
	"github.com/pgwarm/pgwarm/internal/labtest"
	"github.com/pgwarm/pgwarm/pg"
)

// labConfig is how the lab's hosts are reached: by address, with the
// lab's key and known_hosts, ignoring the operator's ~/.ssh/config.
func labConfig(lab labtest.Lab, name, user, become string) sshhost.Config {
	return sshhost.Config{
		Name: name, Address: lab.Hosts[name], Port: lab.SSHPort, User: user,
		IdentityFile: lab.KeyFile, KnownHostsFile: lab.KnownHosts, Become: become,
		SSHConfigFile: "none", ConnectTimeout: 10 * time.Second,
	}
}

func labDial(t *testing.T, cfg sshhost.Config) host.Host {
	t.Helper()
	t.Setenv("SSH_AUTH_SOCK", "") // only the lab key, whatever the operator's agent holds
	h, err := sshhost.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestLabSSHConformance(t *testing.T) {
	lab := labtest.Require(t)
	t.Run("sudo user with become sudo", func(t *testing.T) {
		hosttest.Run(t, func(t *testing.T) host.Host { return labDial(t, labConfig(lab, "pg1", lab.User, "sudo")) })
	})
	t.Run("root", func(t *testing.T) {
		hosttest.Run(t, func(t *testing.T) host.Host { return labDial(t, labConfig(lab, "arch", "root", "")) })
	})
}

func TestLabSudo(t *testing.T) {
	lab := labtest.Require(t)
	ctx := ctxFor(t)
	h := labDial(t, labConfig(lab, "pg1", lab.User, "sudo"))
	res, err := host.CheckRun(ctx, h, host.Cmd{Command: "id -un; echo \"$SUDO_USER\""})
	if err != nil || string(res.Stdout) != "root\n"+lab.User+"\n" {
		t.Fatalf("under become sudo: %q, %v; want root, sudo from %s", res.Stdout, err, lab.User)
	}
	p := "/var/lib/postgresql/pgwarm-hosttest-" + fmt.Sprint(time.Now().UnixNano())
	t.Cleanup(func() { h.Run(context.Background(), host.Cmd{Command: "rm -f " + host.Quote(p)}) })
	if err := h.WriteFile(ctx, p, []byte("x"), 0o600, "postgres:postgres"); err != nil {
		t.Fatal(err)
	}
	fi, err := h.Stat(ctx, p)
	if err != nil || fi.Owner != "postgres" || fi.Group != "postgres" || fi.Mode != 0o600 {
		t.Fatalf("Stat = %+v, %v; want 0600 postgres:postgres", fi, err)
	}
	// A file only root may read proves ReadFile goes through sudo too.
	if b, err := h.ReadFile(ctx, "/etc/shadow"); err != nil || !strings.Contains(string(b), "root:") {
		t.Fatalf("ReadFile(/etc/shadow) through sudo: %v", err)
	}

	t.Run("without become the user stays itself", func(t *testing.T) {
		plain := labDial(t, labConfig(lab, "pg1", lab.User, ""))
		res, err := host.CheckRun(ctx, plain, host.Cmd{Command: "id -un"})
		if err != nil || strings.TrimSpace(string(res.Stdout)) != lab.User {
			t.Fatalf("id -un = %q, %v", res.Stdout, err)
		}
		_, err = plain.ReadFile(ctx, "/etc/shadow")
		if !errors.Is(err, fs.ErrPermission) || !strings.HasPrefix(err.Error(), "pg1: read: /etc/shadow: ") {
			t.Fatalf("ReadFile(/etc/shadow) as %s: %v, want pg1: read: ... fs.ErrPermission", lab.User, err)
		}
	})
}

func TestLabBadSudo(t *testing.T) {
	lab := labtest.Require(t)
	t.Setenv("SSH_AUTH_SOCK", "")
	_, err := sshhost.Dial(context.Background(), labConfig(lab, "pg2", lab.NoSudoUser, "sudo"))
	want := fmt.Sprintf(`pg2: connect: sudo -n refused: user %q may not run sudo without a password (check /etc/sudoers on pg2)`, lab.NoSudoUser)
	if !errors.Is(err, host.ErrSudo) || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
}

// TestLabDialRun: the first command's own sudo is the sudo check. It runs
// as root, and a user sudo refuses gets Dial's error, word for word.
func TestLabDialRun(t *testing.T) {
	lab := labtest.Require(t)
	t.Setenv("SSH_AUTH_SOCK", "")
	ctx := ctxFor(t)
	h, res, err := sshhost.DialRun(ctx, labConfig(lab, "pg1", lab.User, "sudo"), host.Cmd{Command: "id -un; echo \"$SUDO_USER\"; echo oops >&2; exit 3"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if string(res.Stdout) != "root\n"+lab.User+"\n" || string(res.Stderr) != "oops\n" || res.ExitCode != 3 {
		t.Fatalf("DialRun = %q, %q, exit %d; want root, sudo from %s, oops, exit 3", res.Stdout, res.Stderr, res.ExitCode, lab.User)
	}
	if _, err := host.CheckRun(ctx, h, host.Cmd{Command: "true"}); err != nil {
		t.Fatalf("the connection after DialRun: %v", err)
	}

	for _, c := range []struct{ name, user, become string }{{"root", "root", ""}, {"no become", lab.User, ""}} {
		h, res, err := sshhost.DialRun(ctx, labConfig(lab, "arch", c.user, c.become), host.Cmd{Command: "id -un"})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		h.Close()
		if got := strings.TrimSpace(string(res.Stdout)); got != c.user {
			t.Errorf("%s: id -un = %q, want %s", c.name, got, c.user)
		}
	}

	bad := labConfig(lab, "pg2", lab.NoSudoUser, "sudo")
	_, dialErr := sshhost.Dial(ctx, bad)
	h, _, err = sshhost.DialRun(ctx, bad, host.Cmd{Command: "echo never"})
	if h != nil || !errors.Is(err, host.ErrSudo) || dialErr == nil || err.Error() != dialErr.Error() {
		t.Fatalf("DialRun as %s: %v\nwant Dial's error: %v", lab.NoSudoUser, err, dialErr)
	}
}

func TestLabHostKeys(t *testing.T) {
	lab := labtest.Require(t)
	t.Setenv("SSH_AUTH_SOCK", "")
	dir := t.TempDir()
	labKeys, err := os.ReadFile(lab.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	keyOf := func(name string) string { // "type base64" of a lab host
		for _, l := range strings.Split(string(labKeys), "\n") {
			if f := strings.Fields(l); len(f) >= 3 && f[0] == lab.Hosts[name] {
				return f[1] + " " + f[2]
			}
		}
		t.Fatalf("%s has no key for %s", lab.KnownHosts, name)
		return ""
	}
	dial := func(kh string, acceptNew bool) error {
		cfg := labConfig(lab, "pg1", "root", "")
		cfg.KnownHostsFile, cfg.AcceptNewHostKeys = kh, acceptNew
		h, err := sshhost.Dial(context.Background(), cfg)
		if err == nil {
			h.Close()
		}
		return err
	}

	t.Run("unknown", func(t *testing.T) {
		kh := filepath.Join(dir, "empty")
		os.WriteFile(kh, nil, 0o600)
		err := dial(kh, false)
		if !errors.Is(err, host.ErrHostKeyUnknown) || !strings.HasPrefix(err.Error(), "pg1: connect: host key not in known_hosts: "+lab.Hosts["pg1"]) ||
			!strings.Contains(err.Error(), kh) || !strings.Contains(err.Error(), "--accept-new-host-keys") || strings.Contains(err.Error(), "\n") {
			t.Fatalf("err = %v", err)
		}
		if err := dial(filepath.Join(dir, "missing"), false); !errors.Is(err, host.ErrHostKeyUnknown) {
			t.Fatalf("missing known_hosts: %v, want ErrHostKeyUnknown", err)
		}
	})
	t.Run("changed", func(t *testing.T) {
		kh := filepath.Join(dir, "wrong")
		os.WriteFile(kh, []byte("# pg1 was reinstalled?\n"+lab.Hosts["pg1"]+" "+keyOf("pg2")+"\n"), 0o600)
		for _, acceptNew := range []bool{false, true} {
			err := dial(kh, acceptNew)
			if !errors.Is(err, host.ErrHostKeyChanged) || !strings.HasPrefix(err.Error(), "pg1: connect: host key CHANGED") ||
				!strings.Contains(err.Error(), kh+" line 2") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("acceptNew=%v: err = %v", acceptNew, err)
			}
		}
		if b, _ := os.ReadFile(kh); strings.Count(string(b), "\n") != 2 {
			t.Fatalf("a changed key was recorded:\n%s", b)
		}
	})
	t.Run("accept new records it", func(t *testing.T) {
		kh := filepath.Join(dir, "sub", "known_hosts") // directory created as ssh does
		if err := dial(kh, true); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(kh)
		if string(b) != lab.Hosts["pg1"]+" "+keyOf("pg1")+"\n" {
			t.Fatalf("recorded %q, want the lab's key for pg1", b)
		}
		if err := dial(kh, false); err != nil {
			t.Fatalf("strict dial with the recorded key: %v", err)
		}
	})
	t.Run("accept new hashed like the file", func(t *testing.T) {
		kh := filepath.Join(dir, "hashed")
		// A hashed entry for another host makes the file "hashed".
		os.WriteFile(kh, []byte("|1|c2FsdHNhbHRzYWx0c2FsdHNhbHQ=|Zm9vZm9vZm9vZm9vZm9vZm9vZm8= "+keyOf("pg2")+"\n"), 0o600)
		if err := dial(kh, true); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(kh)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[1], "|1|") || strings.Contains(lines[1], lab.Hosts["pg1"]) {
			t.Fatalf("recorded %q, want a hashed entry", lines)
		}
		if err := dial(kh, false); err != nil {
			t.Fatalf("strict dial with the hashed entry: %v", err)
		}
	})
}

func TestLabUnreachable(t *testing.T) {
	lab := labtest.Require(t)
	t.Setenv("SSH_AUTH_SOCK", "")
	cfg := labConfig(lab, "pg2", "root", "")
	cfg.Port = 2 // nothing listens there
	_, err := sshhost.Dial(context.Background(), cfg)
	want := fmt.Sprintf("pg2: connect: dial tcp %s:2: connect: connection refused", lab.Hosts["pg2"])
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
}

func TestLabPgxThroughSSH(t *testing.T) {
	lab := labtest.Require(t)
	if lab.PGUser == "" {
		t.Fatal("lab.env has no LAB_PG_USER for the tunnel test")
	}
	ctx := ctxFor(t)
	h := labDial(t, labConfig(lab, "pg1", lab.User, "sudo"))
	t.Run("tcp 127.0.0.1", func(t *testing.T) {
		cfg, err := pg.PgxConfig(h, fmt.Sprintf("host=127.0.0.1 port=5432 dbname=postgres sslmode=disable user=%s password=%s", lab.PGUser, lab.PGPassword))
		if err != nil {
			t.Fatal(err)
		}
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var v string
		if err := conn.QueryRow(ctx, "SELECT version()").Scan(&v); err != nil || !strings.HasPrefix(v, fmt.Sprintf("PostgreSQL %d.", lab.PGVersion)) {
			t.Fatalf("version() = %q, %v", v, err)
		}
	})
	t.Run("unix socket", func(t *testing.T) {
		// The socket is reached as the SSH login user, so peer auth
		// refuses postgres: the server's own refusal proves the dial.
		cfg, err := pg.PgxConfig(h, "host=/var/run/postgresql port=5432 dbname=postgres user=postgres")
		if err != nil {
			t.Fatal(err)
		}
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			conn.Close(ctx)
			return
		}
		if !strings.Contains(err.Error(), "Peer authentication failed") {
			t.Fatalf("want a connection refused by peer auth, got %v", err)
		}
	})
	t.Run("nothing listening", func(t *testing.T) {
		_, err := h.DialContext(ctx, "tcp", "127.0.0.1:1")
		if err == nil || !strings.HasPrefix(err.Error(), "pg1: dial: tcp 127.0.0.1:1: ") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestLabSSHConfig(t *testing.T) {
	lab := labtest.Require(t)
	t.Setenv("SSH_AUTH_SOCK", "")
	ctx := ctxFor(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "config")
	os.WriteFile(conf, []byte(fmt.Sprintf(`Host labpg1
  HostName %s
  User %s
  Port %d
  IdentityFile %s
  UserKnownHostsFile %s

Host labpg2
  HostName %s
  User root
  IdentityFile %s
  UserKnownHostsFile %s
  ProxyJump root@labpg1
`, lab.Hosts["pg1"], lab.User, lab.SSHPort, lab.KeyFile, lab.KnownHosts,
		lab.Hosts["pg2"], lab.KeyFile, lab.KnownHosts)), 0o600)

	t.Run("alias gives HostName, User, Port, IdentityFile, known_hosts", func(t *testing.T) {
		h, err := sshhost.Dial(ctx, sshhost.Config{Name: "pg1", Address: "labpg1", SSHConfigFile: conf})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		res, err := host.CheckRun(ctx, h, host.Cmd{Command: "id -un; hostname -I"})
		if err != nil || !strings.HasPrefix(string(res.Stdout), lab.User+"\n") || !strings.Contains(string(res.Stdout), lab.Hosts["pg1"]) {
			t.Fatalf("got %q, %v; want %s on %s", res.Stdout, err, lab.User, lab.Hosts["pg1"])
		}
	})
	t.Run("explicit config wins over ssh_config", func(t *testing.T) {
		h, err := sshhost.Dial(ctx, sshhost.Config{Name: "pg1", Address: "labpg1", User: "root", SSHConfigFile: conf})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		if res, err := host.CheckRun(ctx, h, host.Cmd{Command: "id -un"}); err != nil || string(res.Stdout) != "root\n" {
			t.Fatalf("id -un = %q, %v", res.Stdout, err)
		}
	})
	t.Run("ProxyJump", func(t *testing.T) {
		h, err := sshhost.Dial(ctx, sshhost.Config{Name: "pg2", Address: "labpg2", SSHConfigFile: conf})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		// pg2's sshd sees the connection coming from pg1, the jump host.
		res, err := host.CheckRun(ctx, h, host.Cmd{Command: `echo "${SSH_CONNECTION%% *}"`})
		if err != nil || strings.TrimSpace(string(res.Stdout)) != lab.Hosts["pg1"] {
			t.Fatalf("SSH_CONNECTION from %q, %v; want from pg1 %s", res.Stdout, err, lab.Hosts["pg1"])
		}
	})
	t.Run("missing ssh_config file", func(t *testing.T) {
		_, err := sshhost.Dial(ctx, sshhost.Config{Name: "pg1", Address: "labpg1", SSHConfigFile: filepath.Join(dir, "nope")})
		if err == nil || !strings.HasPrefix(err.Error(), "pg1: connect: ssh_config: ") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestLabPool(t *testing.T) {
	lab := labtest.Require(t)
	t.Setenv("SSH_AUTH_SOCK", "")
	bad := labConfig(lab, "arch", "root", "")
	bad.Name, bad.Port = "ghost", 2
	pool, err := sshhost.NewPool(labConfig(lab, "pg1", lab.User, "sudo"), labConfig(lab, "pg2", lab.User, "sudo"), labConfig(lab, "arch", "root", ""), bad)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ctx := ctxFor(t)
	seen := make(chan string, 4)
	err = pool.Each(ctx, 2, func(ctx context.Context, h host.Host) error {
		res, err := host.CheckRun(ctx, h, host.Cmd{Command: "id -un"})
		if err == nil && string(res.Stdout) != "root\n" {
			err = fmt.Errorf("runs as %q", res.Stdout)
		}
		seen <- h.Name()
		return err
	})
	close(seen)
	if err == nil || !strings.HasPrefix(err.Error(), "ghost: connect: dial tcp") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Each: %v; want only ghost's dial error", err)
	}
	if len(seen) != 3 {
		t.Fatalf("fn ran on %d hosts, want 3", len(seen))
	}
	// The connection is reused: Get returns the very same Host.
	a, _ := pool.Get(ctx, "pg1")
	b, _ := pool.Get(ctx, "pg1")
	if a != b {
		t.Fatal("pool dialed pg1 twice")
	}
}
