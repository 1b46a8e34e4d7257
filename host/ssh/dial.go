package ssh

import (
	"context"
	"errors"
	"fmt"
	"github.com/pgwarm/pgwarm/host"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/melbahja/goph"
	xssh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// sshHost is a Host over one SSH connection, shared by all sessions.
type sshHost struct {
	name     string
	user     string // login user on the far side
	sudo     bool   // wrap every command in sudo -n
	client   *goph.Client
	jumps    []*xssh.Client // ProxyJump hops, innermost last; closed after client
	sessions chan struct{}  // semaphore: sshd limits sessions per connection
	done     chan struct{}
	close    sync.Once
	closeErr error
}

// Dial connects to one host: TCP (through ProxyJump hops if ssh_config says
// so), SSH handshake with strict host-key checking, public-key auth with
// ssh-agent and identity files, and for Become "sudo" a `sudo -n true`
// check. Every error is a *Error with Op "connect".
func Dial(ctx context.Context, cfg Config) (host.Host, error) {
	h, _, err := dial(ctx, cfg, true)
	if err != nil {
		return nil, &host.Error{Host: cfg.Name, Op: "connect", Err: err}
	}
	return h, nil
}

// DialRun is Dial and then Run(cmd), one round trip shorter: under
// become: sudo there is no separate `sudo -n true` check, cmd's own sudo
// is the check. Whatever Dial would refuse, DialRun refuses with the same
// *Error (Op "connect"), and the connect timeout covers cmd until sudo has
// let it run; cmd then runs as under Run, except that it inherits
// LC_ALL=C from the sudo it ran under. On error the connection is closed
// and Host is nil; a non-zero exit of cmd is not an error (see Run).
func DialRun(ctx context.Context, cfg Config, cmd host.Cmd) (host.Host, host.Result, error) {
	h, deadline, err := dial(ctx, cfg, false)
	if err != nil {
		return nil, host.Result{}, &host.Error{Host: cfg.Name, Op: "connect", Err: err}
	}
	res, sudoPhase, err := h.runFirst(ctx, deadline, cmd)
	if err != nil {
		h.Close()
		op := "run"
		if sudoPhase {
			op = "connect"
		}
		return nil, res, &host.Error{Host: cfg.Name, Op: op, Err: err}
	}
	return h, res, nil
}

// dial connects; with sudoCheck, a become: sudo connection is checked
// with `sudo -n true`. It returns the connect deadline.
func dial(ctx context.Context, cfg Config, sudoCheck bool) (*sshHost, time.Time, error) {
	if cfg.Name == "" {
		return nil, time.Time{}, errors.New("ssh.Config has no Name")
	}
	if cfg.Become != "" && cfg.Become != "sudo" {
		return nil, time.Time{}, fmt.Errorf("become %q is not supported (only \"sudo\")", cfg.Become)
	}
	timeout := cfg.ConnectTimeout
	if timeout <= 0 {
		timeout = defaultConnectTimeout
	}
	deadline := time.Now().Add(timeout)
	h, err := dialUntil(ctx, cfg, timeout, deadline, sudoCheck)
	return h, deadline, err
}

func dialUntil(ctx context.Context, cfg Config, timeout time.Duration, deadline time.Time, sudoCheck bool) (*sshHost, error) {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	sc, err := loadSSHConfig(cfg.SSHConfigFile)
	if err != nil {
		return nil, err
	}
	alias := cfg.Address
	if alias == "" {
		alias = cfg.Name
	}
	target, err := sc.resolve(alias, cfg.User, cfg.Port, cfg.IdentityFile, cfg.KnownHostsFile)
	if err != nil {
		return nil, err
	}
	agentAuth, closeAgent := agentSigners()
	defer closeAgent()

	// Hops first: each one is dialed through the one before it.
	var jumps []*xssh.Client
	fail := func(err error) (*sshHost, error) {
		for i := len(jumps) - 1; i >= 0; i-- {
			jumps[i].Close()
		}
		return nil, err
	}
	if len(target.jumps) > maxProxyJumps {
		return nil, fmt.Errorf("ProxyJump for %s has more than %d hops", alias, maxProxyJumps)
	}
	for _, spec := range target.jumps {
		hop, err := sc.resolveJump(spec, target.knownHosts)
		if err != nil {
			return fail(err)
		}
		// A hop's own ProxyJump is not followed (ssh would recurse):
		// list every hop, outermost first, in the target's ProxyJump.
		hop.identityFiles = append(hop.identityFiles, target.identityFiles...)
		var via *xssh.Client
		if len(jumps) > 0 {
			via = jumps[len(jumps)-1]
		}
		c, err := connect(ctx, via, hop, cfg.AcceptNewHostKeys, agentAuth, timeout, cfg.DialTimeout)
		if err != nil {
			return fail(fmt.Errorf("via ProxyJump %s: %w", spec, err))
		}
		jumps = append(jumps, c)
	}
	var via *xssh.Client
	if len(jumps) > 0 {
		via = jumps[len(jumps)-1]
	}
	c, err := connect(ctx, via, target, cfg.AcceptNewHostKeys, agentAuth, timeout, cfg.DialTimeout)
	if err != nil {
		return fail(err)
	}
	maxSess := cfg.MaxSessions
	if maxSess <= 0 {
		maxSess = defaultMaxSessions
	}
	h := &sshHost{
		name: cfg.Name,
		user: target.user,
		sudo: cfg.Become == "sudo" && target.user != "root",
		client: &goph.Client{Client: c, Config: &goph.Config{
			User: target.user, Addr: target.hostName, Port: uint(target.port), Timeout: timeout,
		}},
		jumps:    jumps,
		sessions: make(chan struct{}, maxSess),
		done:     make(chan struct{}),
	}
	if h.sudo && sudoCheck {
		if err := h.checkSudo(ctx); err != nil {
			h.Close()
			return nil, err
		}
	}
	if ka := cfg.KeepAlive; ka >= 0 {
		if ka == 0 {
			ka = defaultKeepAlive
		}
		go h.keepAlive(ka)
	}
	return h, nil
}

// connect opens one SSH connection to e, over TCP or through via.
func connect(ctx context.Context, via *xssh.Client, e endpoint, acceptNew bool, agentAuth xssh.AuthMethod, timeout, dialTimeout time.Duration) (*xssh.Client, error) {
	if dialTimeout <= 0 || dialTimeout > timeout {
		dialTimeout = timeout
	}
	keys := hostKeys{file: e.knownHosts, acceptNew: acceptNew, hash: e.hashKnown}
	hkcb, err := keys.callback()
	if err != nil {
		return nil, err
	}
	algos, err := keys.algorithms(e.knownHostsAddr())
	if err != nil {
		return nil, err
	}
	if algos == nil {
		algos = defaultHostKeyAlgos() // the key a new host gets recorded with is the one ssh would pick
	}
	auth, err := authMethods(e, agentAuth)
	if err != nil {
		return nil, err
	}
	// The callback's own error is kept: x/crypto wraps it in "ssh:
	// handshake failed", which would bury the one line the operator needs.
	var keyErr error
	cc := &xssh.ClientConfig{
		User: e.user,
		Auth: goph.Auth(auth),
		HostKeyCallback: func(_ string, remote net.Addr, key xssh.PublicKey) error {
			keyErr = hkcb(e.knownHostsAddr(), remote, key)
			return keyErr
		},
		HostKeyAlgorithms: algos,
		Timeout:           timeout,
	}

	var conn net.Conn
	if via == nil {
		d := net.Dialer{Timeout: dialTimeout}
		conn, err = d.DialContext(ctx, "tcp", e.tcpAddr())
	} else {
		dctx, cancel := context.WithTimeout(ctx, dialTimeout)
		conn, err = via.DialContext(dctx, "tcp", e.tcpAddr())
		cancel()
		if err != nil {
			err = fmt.Errorf("dial tcp %s through the jump host: %w", e.tcpAddr(), err)
		}
	}
	if err != nil {
		return nil, err
	}
	// The handshake has no context of its own: closing the connection is
	// what stops it when ctx ends (deadline or cancel).
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	cc2, chans, reqs, err := xssh.NewClientConn(conn, e.tcpAddr(), cc)
	stopped := stop()
	switch {
	case keyErr != nil:
		conn.Close()
		return nil, keyErr
	case !stopped: // ctx ended and closed conn, perhaps just after a handshake that worked
		conn.Close()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("ssh handshake with %s timed out after %s", e.tcpAddr(), timeout)
		}
		return nil, fmt.Errorf("ssh handshake with %s: %w", e.tcpAddr(), ctx.Err())
	case err != nil && strings.Contains(err.Error(), "unable to authenticate"):
		conn.Close()
		return nil, fmt.Errorf("ssh: %s refused authentication as %q (tried %s)", e.tcpAddr(), e.user, describeAuth(e, agentAuth))
	case err != nil:
		conn.Close()
		return nil, err
	}
	return xssh.NewClient(cc2, chans, reqs), nil
}

// defaultHostKeyAlgos is OpenSSH's preference order (x/crypto's own
// prefers ECDSA), without certificates, which known_hosts cannot pin here.
func defaultHostKeyAlgos() []string {
	return []string{
		xssh.KeyAlgoED25519, xssh.KeyAlgoSKED25519,
		xssh.KeyAlgoECDSA256, xssh.KeyAlgoSKECDSA256, xssh.KeyAlgoECDSA384, xssh.KeyAlgoECDSA521,
		xssh.KeyAlgoRSASHA512, xssh.KeyAlgoRSASHA256,
	}
}

// agentSigners returns ssh-agent's keys as an auth method when
// SSH_AUTH_SOCK is set and reachable, and a func that closes the socket.
func agentSigners() (xssh.AuthMethod, func()) {
	sock := os.Getenv("SSH_AUTH_SOCK")
	if sock == "" {
		return nil, func() {}
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		return nil, func() {} // a stale socket is not fatal: identity files may do
	}
	return xssh.PublicKeysCallback(agent.NewClient(c).Signers), func() { c.Close() }
}

// authMethods is the agent, then every identity file that can be read.
// Only an explicitly configured identity file that is missing or broken is
// an error; passphrase-protected keys are left to the agent.
func authMethods(e endpoint, agentAuth xssh.AuthMethod) ([]xssh.AuthMethod, error) {
	var methods []xssh.AuthMethod
	if agentAuth != nil {
		methods = append(methods, agentAuth)
	}
	var signers []xssh.Signer
	for i, f := range e.identityFiles {
		s, err := goph.GetSigner(f, "")
		var ppe *xssh.PassphraseMissingError
		switch {
		case err == nil:
			signers = append(signers, s)
		case errors.As(err, &ppe):
			if agentAuth == nil && i == 0 && e.explicitKey {
				return nil, fmt.Errorf("identity file %s is passphrase-protected: load it into ssh-agent (ssh-add) first", f)
			}
		case i == 0 && e.explicitKey:
			return nil, fmt.Errorf("identity file: %w", err)
		}
	}
	if len(signers) > 0 {
		methods = append(methods, xssh.PublicKeys(signers...))
	}
	if len(methods) == 0 {
		return nil, fmt.Errorf("no SSH key to offer for %s@%s: set identity_file, or run ssh-agent with SSH_AUTH_SOCK", e.user, e.hostName)
	}
	return methods, nil
}

func describeAuth(e endpoint, agentAuth xssh.AuthMethod) string {
	var parts []string
	if agentAuth != nil {
		parts = append(parts, "ssh-agent keys")
	}
	for _, f := range e.identityFiles {
		if _, err := os.Stat(f); err == nil {
			parts = append(parts, f)
		}
	}
	return strings.Join(parts, ", ")
}

// keepAlive probes the server; after three failures it closes the
// connection so that every pending and later call fails instead of hanging.
func (h *sshHost) keepAlive(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	misses := 0
	for {
		select {
		case <-h.done:
			return
		case <-t.C:
		}
		reply := make(chan error, 1)
		go func() {
			_, _, err := h.client.SendRequest("keepalive@openssh.com", true, nil)
			reply <- err
		}()
		select {
		case err := <-reply:
			if err != nil {
				misses = 3
			} else {
				misses = 0
			}
		case <-time.After(every):
			misses++
		case <-h.done:
			return
		}
		if misses >= 3 {
			h.Close()
			return
		}
	}
}

func (h *sshHost) Name() string { return h.name }

func (h *sshHost) Close() error {
	h.close.Do(func() {
		close(h.done)
		h.closeErr = h.client.Close()
		for i := len(h.jumps) - 1; i >= 0; i-- {
			h.jumps[i].Close()
		}
	})
	if h.closeErr != nil && !errors.Is(h.closeErr, net.ErrClosed) {
		return &host.Error{Host: h.name, Op: "close", Err: h.closeErr}
	}
	return nil
}

// DialContext opens a connection from the host's side: "tcp" through
// direct-tcpip, "unix" through direct-streamlocal@openssh.com. It runs as
// the login user, not through sudo.
func (h *sshHost) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	var err error
	switch network {
	case "tcp", "tcp4", "tcp6":
		c, err = h.client.DialContext(ctx, network, addr)
	case "unix":
		c, err = dialUnix(ctx, h.client.Client, addr)
	default:
		err = fmt.Errorf("network %q not supported", network)
	}
	if err != nil {
		return nil, &host.Error{Host: h.name, Op: "dial", Err: fmt.Errorf("%s %s: %w", network, addr, err)}
	}
	return c, nil
}

// dialUnix is xssh.Client.Dial("unix") with a context (x/crypto's
// DialContext only knows "tcp").
func dialUnix(ctx context.Context, c *xssh.Client, path string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		conn, err := c.Dial("unix", path)
		ch <- result{conn, err}
	}()
	select {
	case r := <-ch:
		return r.conn, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.conn != nil {
				r.conn.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

var (
	_ host.Host     = (*sshHost)(nil)
	_ host.Streamer = (*sshHost)(nil)
)
