package ssh_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pgwarm/pgwarm/host"
	"github.com/pgwarm/pgwarm/host/hosttest"
	sshhost "github.com/pgwarm/pgwarm/host/ssh"
)

// localSSHD is an sshd started by the test on 127.0.0.1, logging in root
// with a fresh key. Only where /usr/sbin/sshd exists and
// PGWARM_LOCAL_SSHD=1 (it needs root and writes /run/sshd).
type localSSHD struct {
	port       int
	key        string // client private key
	knownHosts string // the server's ed25519 key only
	rsaOnly    string // the server's RSA key only
	log        string
}

func startLocalSSHD(t *testing.T) *localSSHD {
	t.Helper()
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil || os.Getenv("PGWARM_LOCAL_SSHD") != "1" {
		t.Skip("local sshd tests need /usr/sbin/sshd and PGWARM_LOCAL_SSHD=1")
	}
	if os.Geteuid() != 0 {
		t.Skip("local sshd tests run as root")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o700)
	writeKey := func(name string, priv any) ssh.PublicKey {
		block, err := ssh.MarshalPrivateKey(priv, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		signer, _ := ssh.NewSignerFromKey(priv)
		return signer.PublicKey()
	}
	_, hostEd, _ := ed25519.GenerateKey(rand.Reader)
	hostRSA, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, client, _ := ed25519.GenerateKey(rand.Reader)
	edPub := writeKey("host_ed25519", hostEd)
	rsaPub := writeKey("host_rsa", hostRSA)
	clientPub := writeKey("id_ed25519", client)
	os.WriteFile(filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(clientPub), 0o600)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	conf := filepath.Join(dir, "sshd_config")
	os.WriteFile(conf, []byte(fmt.Sprintf(`ListenAddress 127.0.0.1:%d
HostKey %s/host_ed25519
HostKey %s/host_rsa
AuthorizedKeysFile %s/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile none
LogLevel DEBUG1
AllowTcpForwarding yes
AllowStreamLocalForwarding yes
`, port, dir, dir, dir)), 0o600)
	os.MkdirAll("/run/sshd", 0o755)
	s := &localSSHD{port: port, key: filepath.Join(dir, "id_ed25519"), log: filepath.Join(dir, "sshd.log"),
		knownHosts: filepath.Join(dir, "known_hosts"), rsaOnly: filepath.Join(dir, "known_hosts_rsa")}
	hp := fmt.Sprintf("[127.0.0.1]:%d ", port)
	os.WriteFile(s.knownHosts, []byte(hp+string(ssh.MarshalAuthorizedKey(edPub))), 0o600)
	os.WriteFile(s.rsaOnly, []byte(hp+string(ssh.MarshalAuthorizedKey(rsaPub))), 0o600)

	cmd := exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", conf, "-E", s.log)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM); cmd.Wait() })
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(s.log)
			t.Fatalf("sshd did not start:\n%s", b)
		}
	}
	t.Setenv("SSH_AUTH_SOCK", "")
	return s
}

func (s *localSSHD) config(name string) sshhost.Config {
	return sshhost.Config{Name: name, Address: "127.0.0.1", Port: s.port, User: "root",
		IdentityFile: s.key, KnownHostsFile: s.knownHosts, SSHConfigFile: "none"}
}

func TestLocalSSHDConformance(t *testing.T) {
	s := startLocalSSHD(t)
	hosttest.Run(t, func(t *testing.T) host.Host {
		h, err := sshhost.Dial(context.Background(), s.config("local"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return h
	})
}

func TestLocalSSHDHostKeyAlgorithm(t *testing.T) {
	s := startLocalSSHD(t)
	// known_hosts has only the RSA key: the server must be asked for that
	// type, not refused as "changed" for offering ed25519.
	cfg := s.config("local")
	cfg.KnownHostsFile = s.rsaOnly
	h, err := sshhost.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
}

func TestLocalSSHDProxyJump(t *testing.T) {
	s := startLocalSSHD(t)
	conf := filepath.Join(t.TempDir(), "config")
	os.WriteFile(conf, []byte(fmt.Sprintf("Host behind\n  HostName 127.0.0.1\n  Port %d\n  User root\n  IdentityFile %s\n  UserKnownHostsFile %s\n  ProxyJump root@127.0.0.1:%d\n",
		s.port, s.key, s.knownHosts, s.port)), 0o600)
	h, err := sshhost.Dial(context.Background(), sshhost.Config{Name: "behind", Address: "behind", SSHConfigFile: conf})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if res, err := host.CheckRun(context.Background(), h, host.Cmd{Command: "echo ok"}); err != nil || string(res.Stdout) != "ok\n" {
		t.Fatalf("%q %v", res.Stdout, err)
	}
	b, _ := os.ReadFile(s.log)
	if !strings.Contains(string(b), fmt.Sprintf("target 127.0.0.1 port %d", s.port)) {
		t.Fatalf("sshd log shows no direct-tcpip to itself, so the jump was not used:\n%s", b)
	}
}

func TestLocalSSHDDialContext(t *testing.T) {
	s := startLocalSSHD(t)
	h, err := sshhost.Dial(context.Background(), s.config("local"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	echo := func(l net.Listener) {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}
	tcp, _ := net.Listen("tcp", "127.0.0.1:0")
	defer tcp.Close()
	go echo(tcp)
	sock := filepath.Join(t.TempDir(), "echo.sock")
	unix, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close()
	go echo(unix)
	for network, addr := range map[string]string{"tcp": tcp.Addr().String(), "unix": sock} {
		c, err := h.DialContext(context.Background(), network, addr)
		if err != nil {
			t.Fatalf("%s: %v", network, err)
		}
		fmt.Fprint(c, "ping")
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("%s echo: %q %v", network, buf, err)
		}
		c.Close()
	}
	_, err = h.DialContext(context.Background(), "unix", "/nonexistent.sock")
	if err == nil || !strings.HasPrefix(err.Error(), "local: dial: unix /nonexistent.sock: ") {
		t.Fatalf("err = %v", err)
	}
}

func TestLocalSSHDConnectErrors(t *testing.T) {
	s := startLocalSSHD(t)
	cfg := s.config("pg9")
	cfg.User = "nosuchuser"
	_, err := sshhost.Dial(context.Background(), cfg)
	if err == nil || !strings.HasPrefix(err.Error(), fmt.Sprintf(`pg9: connect: ssh: 127.0.0.1:%d refused authentication as "nosuchuser" (tried %s)`, s.port, s.key)) {
		t.Fatalf("err = %v", err)
	}
	// A server that accepts TCP but never speaks SSH: the timeout ends it.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	cfg = s.config("mute")
	cfg.Port = l.Addr().(*net.TCPAddr).Port
	cfg.ConnectTimeout = 500 * time.Millisecond
	start := time.Now()
	_, err = sshhost.Dial(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "timed out after 500ms") || time.Since(start) > 3*time.Second {
		t.Fatalf("err = %v after %s", err, time.Since(start))
	}
	var he *host.Error
	if !errors.As(err, &he) || he.Host != "mute" || he.Op != "connect" {
		t.Fatalf("not a *host.Error: %#v", err)
	}
	// DialTimeout bounds the TCP connect only: a host that answered gets
	// the whole ConnectTimeout for its handshake.
	cfg.DialTimeout = 50 * time.Millisecond
	start = time.Now()
	_, err = sshhost.Dial(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "timed out after 500ms") || time.Since(start) < 400*time.Millisecond {
		t.Fatalf("with DialTimeout 50ms: err = %v after %s", err, time.Since(start))
	}
}
