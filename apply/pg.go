package apply

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/pgwarm/pgwarm/host"
	"github.com/pgwarm/pgwarm/inventory"
)

// Control says how PostgreSQL is started, stopped and reloaded on a host:
// through systemd when it is PID 1 there, else pg_ctlcluster (debian) or
// pg_ctl (rhel, custom).
type Control struct {
	Systemd bool
	Layout  inventory.Layout
	Version string // "15"
	Service string
	BinDir  string
	DataDir string
	LogFile string // pg_ctl's server log when neither systemd nor pg_ctlcluster
}

// NewControl derives the control of h from the inventory and whether the
// host runs systemd (from facts).
func NewControl(inv *inventory.Inventory, systemd bool) Control {
	p := inv.Paths()
	l := inv.Postgres.Layout
	if l == "" {
		l = inventory.LayoutDebian
	}
	return Control{Systemd: systemd, Layout: l, Version: inv.Postgres.Version.String(), Service: p.Service,
		BinDir: p.BinDir, DataDir: p.DataDir, LogFile: path.Join(p.StateDir, "postgresql.log")}
}

// Command is the shell command (run as root) for action: start, stop,
// restart or reload. Pure.
func (c Control) Command(action string) string {
	switch {
	case c.Systemd:
		return "systemctl " + action + " " + host.Quote(c.Service)
	case c.Layout == inventory.LayoutDebian:
		return "pg_ctlcluster " + host.Quote(c.Version) + " main " + action
	}
	args := []string{path.Join(c.BinDir, "pg_ctl"), "-D", c.DataDir}
	switch action {
	case "start", "restart":
		args = append(args, "-w", "-t", "300", "-l", c.LogFile, action)
	case "stop":
		args = append(args, "-w", "-t", "300", "-m", "fast", "stop")
	default:
		args = append(args, action)
	}
	return asPostgres(host.Join(args...))
}

// Describe names the mechanism for output ("pg_ctlcluster", "systemd").
func (c Control) Describe() string {
	switch {
	case c.Systemd:
		return "systemd unit " + c.Service
	case c.Layout == inventory.LayoutDebian:
		return "pg_ctlcluster " + c.Version + " main"
	}
	return "pg_ctl -D " + c.DataDir
}

// StatusCommand exits 0 when the server runs, 3 when it does not.
func (c Control) StatusCommand() string {
	return asPostgres(host.Join(path.Join(c.BinDir, "pg_ctl"), "-D", c.DataDir, "status")) + " >/dev/null 2>&1"
}

// asPostgres runs a shell command as the postgres OS user from a directory
// it can read (sudo's cwd may be a home it cannot enter).
func asPostgres(cmd string) string {
	return "cd / && runuser -u postgres -- sh -c " + host.Quote(cmd)
}

// running reports whether PostgreSQL runs on h.
func running(ctx context.Context, h host.Host, c Control) (bool, error) {
	res, err := h.Run(ctx, host.Cmd{Command: c.StatusCommand()})
	if err != nil {
		return false, err
	}
	return res.ExitCode == 0, nil
}

// control runs action and prints it.
func control(ctx context.Context, s *State, h host.Host, c Control, action, why string) error {
	s.Out.Hostf(h.Name(), "%s postgresql (%s): %s", action, c.Describe(), why)
	_, err := host.CheckRun(ctx, h, host.Cmd{Command: c.Command(action)})
	return err
}

// psql runs SQL (from stdin, never on a command line) as the postgres user
// against the local server and returns its unaligned, tuples-only output.
func psql(ctx context.Context, s *State, h host.Host, sql string) (string, error) {
	cmd := asPostgres(host.Join(path.Join(s.Paths.BinDir, "psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
		"-p", strconv.Itoa(s.Inv.Postgres.Port), "-d", "postgres", "-f", "-"))
	res, err := h.Run(ctx, host.Cmd{Command: cmd, Stdin: []byte(sql)})
	if err != nil {
		return "", err
	}
	if !res.OK() {
		return "", fmt.Errorf("%s: psql: %s", h.Name(), strings.TrimSpace(string(res.Stderr)))
	}
	return strings.TrimSpace(string(res.Stdout)), nil
}

// sqlString quotes s as an SQL string literal.
func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// sqlIdent quotes s as an SQL identifier.
func sqlIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// ScramVerifier returns PostgreSQL's stored form of password for
// SCRAM-SHA-256, so the server (and its log, should a statement fail) never
// sees the password itself. salt nil: a random one.
func ScramVerifier(password string, salt []byte, iterations int) (string, error) {
	if salt == nil {
		salt = make([]byte, 16)
		if _, err := rand.Read(salt); err != nil {
			return "", err
		}
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, 32)
	if err != nil {
		return "", err
	}
	clientKey := hmacSum(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	serverKey := hmacSum(salted, "Server Key")
	enc := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, enc(salt), enc(stored[:]), enc(serverKey)), nil
}

func hmacSum(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

var scramRE = regexp.MustCompile(`^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$`)

// ScramMatches reports whether a stored SCRAM verifier is for password,
// so apply leaves an up-to-date role alone.
func ScramMatches(stored, password string) bool {
	m := scramRE.FindStringSubmatch(stored)
	if m == nil {
		return false
	}
	iter, err := strconv.Atoi(m[1])
	if err != nil {
		return false
	}
	salt, err := base64.StdEncoding.DecodeString(m[2])
	if err != nil {
		return false
	}
	again, err := ScramVerifier(password, salt, iter)
	return err == nil && subtle.ConstantTimeCompare([]byte(again), []byte(stored)) == 1
}

// Md5Verifier is PostgreSQL's md5 form of a role's password: "md5" and
// the hex md5 of the password followed by the role name. It is what 9.6,
// which has no SCRAM, stores and checks; handed over in this form the
// password itself never reaches the server.
func Md5Verifier(password, role string) string {
	sum := md5.Sum([]byte(password + role))
	return "md5" + hex.EncodeToString(sum[:])
}

// scramFrom is the first server_version_num with SCRAM-SHA-256 (10).
const scramFrom = 100000

// PasswordVerifier is the stored form apply sets for role's password on a
// server of serverVersionNum: SCRAM-SHA-256 (random salt) from 10 on, md5
// before. A SCRAM string sent to 9.6 would be taken for the password
// itself, md5-hashed, and no client could log in.
func PasswordVerifier(serverVersionNum int, role, password string) (string, error) {
	if serverVersionNum < scramFrom {
		return Md5Verifier(password, role), nil
	}
	return ScramVerifier(password, nil, 4096)
}

// PasswordMatches reports whether the stored rolpassword is the verifier
// PasswordVerifier would set for password, so a second apply leaves the
// role alone: on 9.6 the md5 of password and role, from 10 on a SCRAM
// verifier of password (an md5 one there is replaced by SCRAM).
func PasswordMatches(serverVersionNum int, stored, role, password string) bool {
	if serverVersionNum < scramFrom {
		return subtle.ConstantTimeCompare([]byte(stored), []byte(Md5Verifier(password, role))) == 1
	}
	return ScramMatches(stored, password)
}

// RecoveringSegment reads the WAL file the startup process works on from
// ps output ("postgres: 15/main: startup recovering 0000000100000000000000A3");
// it is how progress of a warm standby, which answers no queries, is seen.
func RecoveringSegment(ps string) (string, bool) {
	m := recoveringRE.FindStringSubmatch(ps)
	if m == nil {
		return "", false
	}
	return m[1], true
}

var recoveringRE = regexp.MustCompile(`startup (?:recovering|waiting for) ([0-9A-F]{24})`)
