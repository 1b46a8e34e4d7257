package apply

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pgwarm/pgwarm/facts"
	"github.com/pgwarm/pgwarm/host"
	"github.com/pgwarm/pgwarm/inventory"
	"github.com/pgwarm/pgwarm/plan"
	"github.com/pgwarm/pgwarm/templates"
)

func TestLockRoundTripAndDecision(t *testing.T) {
	started := time.Date(2026, 11, 28, 4, 0, 0, 0, time.UTC)
	l := Lock{Holder: "op@laptop", PID: 4242, Started: started, Run: "abc"}
	got := ParseLock([]byte(l.String()))
	if got != l {
		t.Fatalf("round trip: got %+v, want %+v", got, l)
	}
	alive := func(pid int) bool { return pid == 4242 }
	dead := func(int) bool { return false }
	for _, tc := range []struct {
		name  string
		me    string
		alive func(int) bool
		force bool
		want  LockVerdict
	}{
		{"same operator, run alive", "op@laptop", alive, false, LockRefuse},
		{"same operator, run killed", "op@laptop", dead, false, LockTakeOver},
		{"other machine, never guessed dead", "op@desktop", dead, false, LockRefuse},
		{"force-unlock", "op@desktop", alive, true, LockTakeOver},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if v := DecideLock(l, tc.me, tc.alive, tc.force); v != tc.want {
				t.Errorf("DecideLock = %v, want %v", v, tc.want)
			}
		})
	}
	msg := (&LockError{Host: "pg1", Path: "/var/lib/pgwarm/main/apply.lock", Holder: l, Now: started.Add(90 * time.Second)}).Error()
	for _, want := range []string{"pg1: ", "op@laptop", "pid 4242", "1m30s ago", "--force-unlock"} {
		if !strings.Contains(msg, want) {
			t.Errorf("lock message %q lacks %q", msg, want)
		}
	}
}

func TestDesired(t *testing.T) {
	keys := map[string]string{
		templates.KeyPlaceholder("pg1"):      "ssh-ed25519 AAAAkey1 postgres@pg1",
		templates.HostKeyPlaceholder("arch"): "ssh-ed25519 AAAAhost",
	}
	t.Run("block merged, rest kept, keys filled", func(t *testing.T) {
		f := templates.File{Path: "/x/authorized_keys", Block: "main", NeedsKeys: []string{"pg1"},
			Content: []byte("command=\"serve\" " + templates.KeyPlaceholder("pg1") + "\n")}
		existing := []byte("ssh-rsa AAAAoperator me@desk\n")
		got, err := Desired(f, existing, keys)
		if err != nil {
			t.Fatal(err)
		}
		want := "ssh-rsa AAAAoperator me@desk\n# BEGIN pgwarm main\ncommand=\"serve\" ssh-ed25519 AAAAkey1 postgres@pg1\n# END pgwarm main\n"
		if string(got) != want {
			t.Errorf("got\n%s\nwant\n%s", got, want)
		}
		again, err := Desired(f, got, keys)
		if err != nil || !bytes.Equal(again, got) {
			t.Errorf("merging twice changed the file (err %v):\n%s", err, again)
		}
	})
	t.Run("host key", func(t *testing.T) {
		f := templates.File{Path: "/kh", NeedsHostKeys: []string{"arch"}, Content: []byte("10.0.0.3 " + templates.HostKeyPlaceholder("arch") + "\n")}
		got, err := Desired(f, nil, keys)
		if err != nil || string(got) != "10.0.0.3 ssh-ed25519 AAAAhost\n" {
			t.Errorf("got %q, %v", got, err)
		}
	})
	t.Run("missing key is an error, not a placeholder on disk", func(t *testing.T) {
		f := templates.File{Path: "/ak", NeedsKeys: []string{"pg2"}, Content: []byte(templates.KeyPlaceholder("pg2"))}
		if _, err := Desired(f, nil, keys); err == nil {
			t.Error("no error for a key not collected yet")
		}
	})
	t.Run("unset secret", func(t *testing.T) {
		f := templates.File{Path: "/p", Secret: true, SecretMissing: true, SecretEnv: "PGWARM_REPLICATION_PASSWORD", Content: []byte("{{secret:PGWARM_REPLICATION_PASSWORD}}")}
		if _, err := Desired(f, nil, keys); err == nil || !strings.Contains(err.Error(), "PGWARM_REPLICATION_PASSWORD") {
			t.Errorf("err = %v, want one naming the variable", err)
		}
	})
	t.Run("timelines from facts", func(t *testing.T) {
		f := templates.File{Path: "/r", NeedsTimelines: []string{"pg1"},
			Content: []byte("pg1 push@" + templates.TimelinePlaceholder("pg1") + "\npg2 get,push@" + templates.NextTimelinePlaceholder("pg1") + "\n")}
		st := &State{Facts: map[string]facts.Facts{"pg1": {DataDir: &facts.DataDir{State: facts.DataDirInitialised, Timeline: 2, WALTimeline: 3}}}}
		got, err := Desired(f, nil, st.keys())
		if err != nil || string(got) != "pg1 push@3\npg2 get,push@4\n" {
			t.Errorf("got %q, %v; want the newest timeline (pg_wal's history file, the control file lagging)", got, err)
		}
		if _, err := Desired(f, nil, keys); err == nil || !strings.Contains(err.Error(), "the timeline of pg1 is not known") {
			t.Errorf("unknown timeline: %v", err)
		}
	})
	t.Run("cluster from facts", func(t *testing.T) {
		f := templates.File{Path: "/s", NeedsClusters: []string{"pg1"},
			Content: []byte("restore_command = 'pgwarm-wal restore " + templates.ClusterPlaceholder("pg1") + " %f %p'\n")}
		st := &State{Facts: map[string]facts.Facts{"pg1": {DataDir: &facts.DataDir{State: facts.DataDirInitialised, SystemID: "7713065586891178360", WALSegSize: 16 << 20}}}}
		got, err := Desired(f, nil, st.keys())
		if err != nil || string(got) != "restore_command = 'pgwarm-wal restore --system-identifier 7713065586891178360 --segment-size 16777216 %f %p'\n" {
			t.Errorf("got %q, %v", got, err)
		}
		// pg_controldata unread, or what it printed not a cluster: no
		// restore_command that names no cluster is written.
		for _, dd := range []*facts.DataDir{nil, {SystemID: "7713065586891178360"}, {SystemID: "77'; x", WALSegSize: 16 << 20}, {SystemID: "1", WALSegSize: 3 << 20}} {
			st := &State{Facts: map[string]facts.Facts{"pg1": {DataDir: dd}}}
			if _, err := Desired(f, nil, st.keys()); err == nil || !strings.Contains(err.Error(), "of pg1's cluster are not known") {
				t.Errorf("%+v: %v", dd, err)
			}
		}
	})
	t.Run("damaged block refused", func(t *testing.T) {
		f := templates.File{Path: "/h", Block: "replication", Content: []byte("x\n")}
		if _, err := Desired(f, []byte("# BEGIN pgwarm replication\nno end\n"), keys); err == nil {
			t.Error("a BEGIN without END was merged")
		}
	})
}

func TestControlCommand(t *testing.T) {
	base := Control{Version: "15", Service: "postgresql@15-main", BinDir: "/usr/lib/postgresql/15/bin", DataDir: "/var/lib/postgresql/15/main", LogFile: "/var/lib/pgwarm/main/postgresql.log"}
	for _, tc := range []struct {
		name    string
		systemd bool
		layout  inventory.Layout
		action  string
		want    string
	}{
		{"systemd wins", true, inventory.LayoutDebian, "restart", "systemctl restart postgresql@15-main"},
		{"debian without systemd", false, inventory.LayoutDebian, "start", "pg_ctlcluster 15 main start"},
		{"rhel without systemd", false, inventory.LayoutRHEL, "stop", "runuser -u postgres -- sh -c '/usr/lib/postgresql/15/bin/pg_ctl -D /var/lib/postgresql/15/main -w -t 300 -m fast stop'"},
		{"custom start logs", false, inventory.LayoutCustom, "start", "-l /var/lib/pgwarm/main/postgresql.log start"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			c.Systemd, c.Layout = tc.systemd, tc.layout
			if got := c.Command(tc.action); !strings.Contains(got, tc.want) {
				t.Errorf("Command(%s) = %q, want it to contain %q", tc.action, got, tc.want)
			}
		})
	}
}

func TestScram(t *testing.T) {
	// Computed independently (Python hashlib) for RFC 7677's password and salt.
	const want = "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
	salt := []byte{0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e, 0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81}
	got, err := ScramVerifier("pencil", salt, 4096)
	if err != nil || got != want {
		t.Fatalf("ScramVerifier = %q, %v; want %q", got, err, want)
	}
	if !ScramMatches(want, "pencil") {
		t.Error("ScramMatches rejects the right password")
	}
	if ScramMatches(want, "pencil2") || ScramMatches("md5abc", "pencil") {
		t.Error("ScramMatches accepts a wrong password or an md5 hash")
	}
	random, _ := ScramVerifier("pencil", nil, 4096)
	if random == want || !ScramMatches(random, "pencil") {
		t.Error("a random salt must give another verifier for the same password")
	}
}

func TestRecoveringSegment(t *testing.T) {
	ps := "postgres: 15/main: checkpointer\npostgres: 15/main: startup recovering 0000000100000000000000A3\n"
	if seg, ok := RecoveringSegment(ps); !ok || seg != "0000000100000000000000A3" {
		t.Errorf("got %q %v", seg, ok)
	}
	if _, ok := RecoveringSegment("postgres: 15/main: walwriter\n"); ok {
		t.Error("found a segment in a primary's process list")
	}
}

func TestSeedReason(t *testing.T) {
	for _, tc := range []struct {
		name       string
		dd         *facts.DataDir
		incomplete bool
		seed       bool
	}{
		{"empty", &facts.DataDir{State: facts.DataDirEmpty}, false, true},
		{"absent", &facts.DataDir{State: facts.DataDirAbsent}, false, true},
		{"copy of the primary", &facts.DataDir{State: facts.DataDirInitialised, Version: "15", SystemID: "42"}, false, false},
		{"interrupted seed", &facts.DataDir{State: facts.DataDirInitialised, Version: "15", SystemID: "42"}, true, true},
		{"partial copy without pg_control", &facts.DataDir{State: facts.DataDirInitialised, Version: "15"}, false, true},
		{"another cluster", &facts.DataDir{State: facts.DataDirInitialised, Version: "15", SystemID: "7"}, false, true},
		{"another major", &facts.DataDir{State: facts.DataDirInitialised, Version: "13", SystemID: "42"}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := plan.SeedReason(&inventory.Inventory{Postgres: inventory.Postgres{Version: 150000}}, tc.dd, "42", tc.incomplete) != ""; got != tc.seed {
				t.Errorf("seed = %v, want %v", got, tc.seed)
			}
		})
	}
}

func TestProgressLine(t *testing.T) {
	got := ProgressLine("base backup", 50<<20, 100<<20, 10*time.Second)
	for _, want := range []string{"50.0 MiB", "~100.0 MiB (50%)", "5.0 MiB/s", "ETA 10s"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
}

// TestStepsOrder pins the dependency order: archive host, primary, standby.
func TestStepsOrder(t *testing.T) {
	var titles []string
	for _, s := range Steps() {
		titles = append(titles, s.Title())
	}
	idx := func(prefix string) int {
		for i, ti := range titles {
			if strings.HasPrefix(ti, prefix) {
				return i
			}
		}
		t.Fatalf("no step %q in %q", prefix, titles)
		return -1
	}
	order := []string{"lock", "preflight", "install pgwarm-wal", "ssh keys", "archive host", "primary: managed", "primary: replication role",
		"primary: reload", "primary: prove archiving", "standby: settings", "standby: stop and seed", "standby: recovery", "standby: prove"}
	for i := 1; i < len(order); i++ {
		if idx(order[i-1]) >= idx(order[i]) {
			t.Errorf("step %q must come before %q", order[i-1], order[i])
		}
	}
}

type fakeStep struct {
	title   string
	err     error
	skip    bool
	ran     *[]string
	cleaned *[]string
}

func (f fakeStep) Title() string { return f.title }
func (f fakeStep) Run(context.Context, *State) error {
	*f.ran = append(*f.ran, f.title)
	return f.err
}
func (f fakeStep) ShouldRun(*State) bool { return !f.skip }
func (f fakeStep) CleanUp(context.Context, *State) {
	*f.cleaned = append(*f.cleaned, f.title)
}

func TestExecute(t *testing.T) {
	var ran, cleaned []string
	boom := errors.New("boom")
	mk := func(title string, err error, skip bool) Step {
		return fakeStep{title: title, err: err, skip: skip, ran: &ran, cleaned: &cleaned}
	}
	var out bytes.Buffer
	s := &State{Out: NewPrinter(&out, false)}
	err := Execute(context.Background(), s, []Step{mk("a", nil, false), mk("skipped", nil, true), mk("b", boom, false), mk("c", nil, false)})
	var se *StepError
	if !errors.As(err, &se) || !errors.Is(err, boom) {
		t.Fatalf("err = %v, want a StepError wrapping boom", err)
	}
	if se.Step != "b" || strings.Join(se.Done, ",") != "a" {
		t.Errorf("step %q done %v, want b and [a]", se.Step, se.Done)
	}
	if strings.Join(ran, ",") != "a,b" || strings.Join(cleaned, ",") != "b,a" {
		t.Errorf("ran %v cleaned %v", ran, cleaned)
	}
	if !strings.Contains(err.Error(), "run `pgwarm apply` again") {
		t.Errorf("message does not say a re-run continues: %v", err)
	}
}

// pairInventory is a warm pair with an ssh archive host on PostgreSQL
// version, its replication role named user ("": the default).
func pairInventory(t *testing.T, version, user string) *inventory.Inventory {
	t.Helper()
	repl := "{mode: warm}"
	if user != "" {
		repl = "{mode: warm, user: " + user + "}"
	}
	inv, err := inventory.Parse("inv.yaml", []byte(`cluster: main
postgres: {version: `+version+`, layout: debian}
replication: `+repl+`
archive: {host: arch, transport: ssh, path: /srv/a}
hosts:
  - {name: pg1, address: 10.0.0.1, role: primary}
  - {name: pg2, address: 10.0.0.2, role: standby}
  - {name: arch, address: 10.0.0.3, role: archive}
`), inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// TestEnsureAccountNeverMovesAHome: an existing archive account whose home
// differs from archive.home is refused, never usermod-ed (the postgres
// user keeps .pgpass and .ssh in its own home); a missing one is created
// with archive.home.
func TestEnsureAccountNeverMovesAHome(t *testing.T) {
	inv := pairInventory(t, "15", "")
	for _, c := range []struct {
		passwd  string // "" = no such account
		wantErr bool
		wantCmd string
	}{
		{"postgres:x:100:102::/var/lib/postgresql:/bin/bash\n", false, ""},
		{"postgres:x:100:102::/var/lib/pgwarm:/bin/bash\n", true, ""},
		{"", false, "useradd --system --user-group --home-dir /var/lib/postgresql"},
	} {
		h := host.NewFake("arch")
		h.Handler = func(cmd host.Cmd) (host.Result, error) {
			if strings.HasPrefix(cmd.Command, "getent passwd") {
				if c.passwd == "" {
					return host.Result{ExitCode: 2}, nil
				}
				return host.Result{Stdout: []byte(c.passwd)}, nil
			}
			return host.Result{}, nil
		}
		var out bytes.Buffer
		s := &State{Inv: inv, Out: NewPrinter(&out, false)}
		err := ensureAccount(context.Background(), s, h)
		if (err != nil) != c.wantErr {
			t.Errorf("%q: err = %v, want error %v", c.passwd, err, c.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), "arch: ") {
			t.Errorf("%q: error does not name the host: %v", c.passwd, err)
		}
		var cmds []string
		for _, cmd := range h.Commands() {
			cmds = append(cmds, cmd.Command)
			if strings.Contains(cmd.Command, "usermod") {
				t.Errorf("%q: ran %q", c.passwd, cmd.Command)
			}
		}
		if c.wantCmd != "" && !strings.Contains(strings.Join(cmds, "\n"), c.wantCmd) {
			t.Errorf("%q: commands %q lack %q", c.passwd, cmds, c.wantCmd)
		}
	}
}

func TestMd5Verifier(t *testing.T) {
	// echo -n 'correct horse battery staplereplicator' | md5sum
	const want = "md511a2f706615df87541aa4bc0f61d9fef"
	if got := Md5Verifier("correct horse battery staple", "replicator"); got != want {
		t.Fatalf("Md5Verifier = %q, want %q", got, want)
	}
	for _, c := range []struct {
		v      int
		stored string
		pw     string
		want   bool
	}{
		{90624, want, "correct horse battery staple", true},
		{90624, want, "correct horse battery stapl", false},
		{90624, "correct horse battery staple", "correct horse battery staple", false}, // plaintext is not md5
		{150004, want, "correct horse battery staple", false},                          // 10+: SCRAM replaces md5
	} {
		if got := PasswordMatches(c.v, c.stored, "replicator", c.pw); got != c.want {
			t.Errorf("PasswordMatches(%d, %q, %q) = %t, want %t", c.v, c.stored, c.pw, got, c.want)
		}
	}
}

// fakeServer answers the role step's psql calls like PostgreSQL of one
// version: the role query from its pg_authid row, CREATE/ALTER ROLE by
// storing the literal the way that version does (9.6 keeps an md5 literal
// and md5-hashes anything else, as password_encryption=on does; 10+ keeps
// a SCRAM verifier).
type fakeServer struct {
	version int
	exists  bool
	stored  string
	sets    []string // the SQL of every CREATE/ALTER ROLE
}

var passwordLiteral = regexp.MustCompile(`PASSWORD '((?:[^']|'')*)'`)

func (fs *fakeServer) handle(t *testing.T, user string) func(host.Cmd) (host.Result, error) {
	return func(cmd host.Cmd) (host.Result, error) {
		if !strings.Contains(cmd.Command, "psql") {
			return host.Result{}, nil // pg_ctl status: running
		}
		sql := string(cmd.Stdin)
		switch {
		case strings.Contains(sql, "server_version_num"):
			out := fmt.Sprintf("%d|", fs.version)
			if fs.exists {
				out += "tt|" + fs.stored
			}
			return host.Result{Stdout: []byte(out + "\n")}, nil
		case strings.Contains(sql, " ROLE "):
			fs.sets = append(fs.sets, sql)
			m := passwordLiteral.FindStringSubmatch(sql)
			if m == nil {
				t.Fatalf("no password literal in %q", sql)
			}
			lit := strings.ReplaceAll(m[1], "''", "'")
			switch {
			case fs.version >= 100000 || (strings.HasPrefix(lit, "md5") && len(lit) == 35):
				fs.stored = lit
			default:
				fs.stored = Md5Verifier(lit, user)
			}
			fs.exists = true
			return host.Result{}, nil
		}
		return host.Result{}, nil
	}
}

// TestPrimaryRoleStepVersions: on 9.6 the role gets the md5 verifier of
// the password (SCRAM does not exist there) and a second apply leaves it
// alone; from 10 on it gets SCRAM, and a second apply too leaves it alone.
func TestPrimaryRoleStepVersions(t *testing.T) {
	const pw = "correct horse battery staple"
	for _, c := range []struct {
		pgVersion  string
		serverNum  int
		wantPrefix string
	}{
		{"9.6", 90624, "md5"},
		{"13", 130012, "SCRAM-SHA-256$"},
		{"15", 150004, "SCRAM-SHA-256$"},
	} {
		t.Run(c.pgVersion, func(t *testing.T) {
			inv := pairInventory(t, c.pgVersion, "replicator")
			srv := &fakeServer{version: c.serverNum}
			h := host.NewFake("pg1")
			h.Handler = srv.handle(t, "replicator")
			var out bytes.Buffer
			s := NewState(inv, templates.Rendered{}, map[string]host.Host{"pg1": h}, map[string]facts.Facts{}, Options{Password: pw}, NewPrinter(&out, false))
			for run := 1; run <= 2; run++ {
				if err := (primaryRoleStep{}).Run(context.Background(), s); err != nil {
					t.Fatalf("run %d: %v", run, err)
				}
			}
			if len(srv.sets) != 1 {
				t.Fatalf("CREATE/ALTER ROLE sent %d times over two applies, want once:\n%s", len(srv.sets), strings.Join(srv.sets, ""))
			}
			if !strings.HasPrefix(srv.sets[0], "CREATE ROLE") {
				t.Errorf("first apply sent %q, want CREATE ROLE", srv.sets[0])
			}
			if !strings.HasPrefix(srv.stored, c.wantPrefix) {
				t.Errorf("stored rolpassword %q, want a %s verifier", srv.stored, c.wantPrefix)
			}
			if c.serverNum < 100000 && srv.stored != Md5Verifier(pw, "replicator") {
				t.Errorf("stored %q, want md5(password+user) %q", srv.stored, Md5Verifier(pw, "replicator"))
			}
			if strings.Contains(strings.Join(srv.sets, ""), pw) {
				t.Error("the password itself was sent to the server")
			}
			if !strings.Contains(out.String(), "role replicator is up to date") {
				t.Errorf("second apply did not report the role up to date:\n%s", out.String())
			}
		})
	}
}

func TestParseRoleState(t *testing.T) {
	for _, c := range []struct {
		in   string
		want roleState
		err  bool
	}{
		{"90624|", roleState{ServerVersionNum: 90624}, false},
		{"150004|tt|SCRAM-SHA-256$4096:abc$def:ghi", roleState{150004, true, true, true, "SCRAM-SHA-256$4096:abc$def:ghi"}, false},
		{"90624|tf|pa|ss", roleState{90624, true, true, false, "pa|ss"}, false},
		{"150004|ft|", roleState{150004, true, false, true, ""}, false},
		{"ERROR", roleState{}, true},
		{"150004|x", roleState{}, true},
	} {
		got, err := parseRoleState(c.in)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("parseRoleState(%q) = %+v, %v; want %+v, error %t", c.in, got, err, c.want, c.err)
		}
	}
}

// TestEnsureFileLogsNoDigestOfAPassword: a managed file that holds a
// password (outside pgwarm's block, put there by the operator) is written
// without its hash in the output, which would let the password be guessed.
func TestEnsureFileLogsNoDigestOfAPassword(t *testing.T) {
	h := host.NewFake("pg2")
	h.Handler = func(host.Cmd) (host.Result, error) { return host.Result{}, nil }
	existing := "primary_conninfo = 'host=pg9 password=hunter2'\n"
	h.SetFile("/etc/pg/postgresql.conf", []byte(existing), 0o644, "postgres:postgres")
	var out bytes.Buffer
	s := &State{Out: NewPrinter(&out, false)}
	f := templates.File{Path: "/etc/pg/postgresql.conf", Block: "settings", Mode: 0o644, Owner: "postgres:postgres",
		Kind: templates.KindSettingsInclude, Content: []byte("include 'pgwarm.conf'\n")}
	if _, err := ensureFile(context.Background(), s, h, f); err != nil {
		t.Fatal(err)
	}
	written, _ := h.ReadFile(context.Background(), f.Path)
	if sum := shortHash(written); strings.Contains(out.String(), sum) || strings.Contains(out.String(), "hunter2") {
		t.Errorf("output shows the digest %s of a file with a password: %s", sum, out.String())
	}
	if !strings.Contains(out.String(), "no hash shown") {
		t.Errorf("output: %s", out.String())
	}
}
