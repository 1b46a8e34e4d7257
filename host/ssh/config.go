package ssh

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kevinburke/ssh_config"
)

// Config says how to reach one host. Zero values mean "what ssh would do":
// the ssh_config file, then ssh's defaults. Explicit fields (from the
// inventory) win over ssh_config, like options on ssh's command line.
type Config struct {
	Name              string        // inventory name; starts every error about the host
	Address           string        // host name, IP or ssh_config Host alias; "" means Name
	Port              int           // 0: ssh_config Port, else 22
	User              string        // "": ssh_config User, else the local user
	IdentityFile      string        // "": ssh_config IdentityFile(s), else ~/.ssh/id_{ed25519,ecdsa,rsa}
	KnownHostsFile    string        // "": ssh_config UserKnownHostsFile, else ~/.ssh/known_hosts
	AcceptNewHostKeys bool          // record unknown keys (never changed ones)
	Become            string        // "" or "sudo" (ignored when the user is root)
	ConnectTimeout    time.Duration // 0: 10s; covers TCP connect, handshake and sudo check
	// DialTimeout bounds each TCP connect alone (0: ConnectTimeout). A host
	// that does not answer a SYN on a LAN within a fraction of a second is
	// gone, while a slow handshake on a loaded host that did answer is not:
	// promote uses this to give up on a dead old primary quickly.
	DialTimeout   time.Duration
	SSHConfigFile string // "": ~/.ssh/config if it exists; "none": no ssh_config

	// KeepAlive is the interval of keepalive@openssh.com probes that close
	// a dead connection (so a cut-off host fails fast instead of hanging).
	// 0: 15s; negative: off.
	KeepAlive time.Duration
	// MaxSessions bounds concurrent sessions on the one connection; sshd
	// refuses more than its MaxSessions (10 by default). 0: 8.
	MaxSessions int
}

const (
	defaultConnectTimeout = 10 * time.Second
	defaultKeepAlive      = 15 * time.Second
	defaultMaxSessions    = 8
	maxProxyJumps         = 8
)

// endpoint is one SSH server to connect to, after ssh_config resolution.
type endpoint struct {
	alias         string // what the user called it (ssh_config Host pattern target)
	hostName      string // where TCP goes
	port          int
	user          string
	identityFiles []string
	explicitKey   bool   // identityFiles[0] was asked for explicitly: missing is an error
	hostKeyAlias  string // name looked up in known_hosts (HostKeyAlias or HostName)
	knownHosts    string
	hashKnown     bool
	jumps         []string // ProxyJump specs, outermost first
}

// knownHostsAddr is the "host:port" known_hosts is searched for; knownhosts
// normalises it to "host" for 22 and "[host]:port" otherwise, as ssh does.
func (e endpoint) knownHostsAddr() string {
	return joinHostPort(e.hostKeyAlias, e.port)
}

func (e endpoint) tcpAddr() string { return joinHostPort(e.hostName, e.port) }

func joinHostPort(h string, p int) string { return strings.TrimSpace(h) + ":" + strconv.Itoa(p) }

// sshConfig is a parsed ssh_config, or nil for none.
type sshConfig struct {
	path string
	cfg  *ssh_config.Config
}

func loadSSHConfig(file string) (*sshConfig, error) {
	explicit := file != ""
	switch file {
	case "none":
		return &sshConfig{}, nil
	case "":
		home, err := os.UserHomeDir()
		if err != nil {
			return &sshConfig{}, nil
		}
		file = filepath.Join(home, ".ssh", "config")
	}
	f, err := os.Open(expandHome(file))
	if err != nil {
		if !explicit && errors.Is(err, os.ErrNotExist) {
			return &sshConfig{}, nil
		}
		return nil, fmt.Errorf("ssh_config: %w", err)
	}
	defer f.Close()
	cfg, err := ssh_config.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("ssh_config %s: %w", file, err)
	}
	return &sshConfig{path: file, cfg: cfg}, nil
}

func (s *sshConfig) get(alias, key string) string {
	if s.cfg == nil {
		return ""
	}
	v, _ := s.cfg.Get(alias, key)
	return strings.TrimSpace(v)
}

func (s *sshConfig) getAll(alias, key string) []string {
	if s.cfg == nil {
		return nil
	}
	v, _ := s.cfg.GetAll(alias, key)
	return v
}

// resolve applies ssh_config to what the caller asked for. user, port,
// identity and knownHosts are explicit values ("" / 0 for unset).
func (s *sshConfig) resolve(alias, user string, port int, identity, knownHosts string) (endpoint, error) {
	e := endpoint{alias: alias, hostName: alias, port: port, user: user}
	if hn := s.get(alias, "HostName"); hn != "" {
		e.hostName = strings.ReplaceAll(hn, "%h", alias)
	}
	if e.port == 0 {
		if p := s.get(alias, "Port"); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil || n <= 0 || n > 65535 {
				return e, fmt.Errorf("ssh_config %s: Host %s: bad Port %q", s.path, alias, p)
			}
			e.port = n
		} else {
			e.port = 22
		}
	}
	if e.user == "" {
		e.user = s.get(alias, "User")
	}
	if e.user == "" {
		e.user = localUser()
	}
	if identity != "" {
		e.identityFiles = []string{s.expand(identity, e)}
		e.explicitKey = true
	}
	for _, f := range s.getAll(alias, "IdentityFile") {
		e.identityFiles = append(e.identityFiles, s.expand(f, e))
	}
	if len(e.identityFiles) == 0 {
		for _, f := range []string{"~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa"} {
			e.identityFiles = append(e.identityFiles, expandHome(f))
		}
	}
	e.hostKeyAlias = e.hostName
	if a := s.get(alias, "HostKeyAlias"); a != "" {
		e.hostKeyAlias = a
	}
	e.knownHosts = knownHosts
	if e.knownHosts == "" {
		if f := strings.Fields(s.get(alias, "UserKnownHostsFile")); len(f) > 0 {
			e.knownHosts = f[0]
		} else {
			e.knownHosts = "~/.ssh/known_hosts"
		}
	}
	e.knownHosts = s.expand(e.knownHosts, e)
	e.hashKnown = strings.EqualFold(s.get(alias, "HashKnownHosts"), "yes")
	if pc := s.get(alias, "ProxyCommand"); pc != "" && !strings.EqualFold(pc, "none") {
		return e, fmt.Errorf("ssh_config %s: Host %s: ProxyCommand is not supported, use ProxyJump", s.path, alias)
	}
	if pj := s.get(alias, "ProxyJump"); pj != "" && !strings.EqualFold(pj, "none") {
		for _, j := range strings.Split(pj, ",") {
			if j = strings.TrimSpace(j); j != "" {
				e.jumps = append(e.jumps, j)
			}
		}
	}
	return e, nil
}

// resolveJump turns one ProxyJump element ([user@]host[:port]) into an
// endpoint, through ssh_config like ssh does for jump hosts.
func (s *sshConfig) resolveJump(spec, knownHosts string) (endpoint, error) {
	user, hostport := "", spec
	if i := strings.LastIndex(spec, "@"); i >= 0 {
		user, hostport = spec[:i], spec[i+1:]
	}
	h, port := hostport, 0
	if strings.HasPrefix(hostport, "[") || strings.Count(hostport, ":") == 1 {
		hh, p, err := splitHostPort(hostport)
		if err != nil {
			return endpoint{}, fmt.Errorf("ProxyJump %q: %w", spec, err)
		}
		h, port = hh, p
	}
	return s.resolve(h, user, port, "", knownHosts)
}

func splitHostPort(s string) (string, int, error) {
	s = strings.TrimPrefix(s, "[")
	i := strings.LastIndex(s, ":")
	h, ps := strings.TrimSuffix(s[:i], "]"), s[i+1:]
	p, err := strconv.Atoi(ps)
	if err != nil || p <= 0 || p > 65535 {
		return "", 0, fmt.Errorf("bad port %q", ps)
	}
	return h, p, nil
}

// expand does ssh_config's ~ and the common % tokens.
func (s *sshConfig) expand(v string, e endpoint) string {
	v = expandHome(v)
	if !strings.Contains(v, "%") {
		return v
	}
	home, _ := os.UserHomeDir()
	r := strings.NewReplacer("%%", "%", "%d", home, "%h", e.hostName, "%n", e.alias,
		"%p", strconv.Itoa(e.port), "%r", e.user, "%u", localUser())
	return r.Replace(v)
}

func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[1:])
		}
	}
	return p
}

func localUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return os.Getenv("USER")
}
