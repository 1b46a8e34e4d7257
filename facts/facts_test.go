package facts

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgwarm/pgwarm/host"
)

// localHost runs the probe in the local /bin/sh: the script under test is
// the real one, only the transport is missing. Every other method fails so
// a probe that strays from one Run is caught.
type localHost struct {
	runs int
	path string // PATH for the probe; "" inherits this process's
}

func (l *localHost) Name() string { return "local" }
func (l *localHost) Run(ctx context.Context, c host.Cmd) (host.Result, error) {
	l.runs++
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", c.Command)
	if l.path != "" {
		cmd.Env = append(os.Environ(), "PATH="+l.path)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return host.Result{Stdout: out.Bytes(), Stderr: errb.Bytes(), ExitCode: ee.ExitCode()}, nil
	}
	return host.Result{Stdout: out.Bytes(), Stderr: errb.Bytes()}, err
}

var errNotInProbe = errors.New("the probe must use one Run only")

func (l *localHost) ReadFile(context.Context, string) ([]byte, error) { return nil, errNotInProbe }
func (l *localHost) WriteFile(context.Context, string, []byte, fs.FileMode, string) error {
	return errNotInProbe
}
func (l *localHost) Stat(context.Context, string) (host.FileInfo, error) {
	return host.FileInfo{}, errNotInProbe
}
func (l *localHost) SHA256(context.Context, string) (string, error) { return "", errNotInProbe }
func (l *localHost) Upload(context.Context, string, string, fs.FileMode, string) error {
	return errNotInProbe
}
func (l *localHost) DialContext(context.Context, string, string) (net.Conn, error) {
	return nil, errNotInProbe
}
func (l *localHost) Close() error { return nil }

func write(t *testing.T, path, content string, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

const controldata = `pg_control version number:            1300
Database system identifier:           7412345678901234567
Database cluster state:               in archive recovery
Latest checkpoint's TimeLineID:       3
Bytes per WAL segment:                16777216
`

// tree builds a fake PostgreSQL host under a temp dir: a bin dir whose
// pg_controldata and postgres -V answer like the real ones, and a running
// "postgres" process named in postmaster.pid.
func tree(t *testing.T) (root string, req Request) {
	root = t.TempDir()
	bin := filepath.Join(root, "bin")
	write(t, filepath.Join(bin, "pg_controldata"), "#!/bin/sh\ncat <<'X'\n"+controldata+"X\n", 0o755)
	write(t, filepath.Join(bin, "postgres"), "#!/bin/sh\necho 'postgres (PostgreSQL) 15.8 (Debian 15.8-0+deb12u1)'\n", 0o755)
	data := filepath.Join(root, "data")
	write(t, filepath.Join(data, "PG_VERSION"), "15\n", 0o600)
	write(t, filepath.Join(data, "standby.signal"), "", 0o600)
	// Promoted to timeline 4 (the control file still says 3): a newer
	// history file in pg_wal; neither a partly written one nor a directory
	// counts.
	for _, n := range []string{"00000002.history", "00000004.history", "00000009.history.tmp", "000000040000000000000003"} {
		write(t, filepath.Join(data, "pg_wal", n), "1\t0/3000000\tx\n", 0o600)
	}
	os.MkdirAll(filepath.Join(data, "pg_wal", "0000000A.history"), 0o700)

	// A process whose comm is "postgres": a copy of sleep under that name.
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	b, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	fakePG := filepath.Join(root, "pgproc", "postgres")
	write(t, fakePG, string(b), 0o755)
	cmd := exec.Command(fakePG, "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	write(t, filepath.Join(data, "postmaster.pid"), strings.Join([]string{strconv.Itoa(cmd.Process.Pid), data, "1700000000", "5432"}, "\n")+"\n", 0o600)

	conf := filepath.Join(root, "etc", "postgresql.conf")
	write(t, conf, "port = 5432\n# pgwarm\n", 0o644)
	secret := filepath.Join(root, "etc", "pgpass")
	write(t, secret, "*:*:*:replicator:hunter2\n", 0o600)
	req = Request{
		DataDir:     data,
		BinDir:      bin,
		Service:     "postgresql@15-main",
		ArchivePath: filepath.Join(root, "srv", "pgwarm", "main"),
		Paths: []PathRequest{
			{Path: conf, Content: true},
			{Path: secret},
			{Path: filepath.Join(root, "etc")},
			{Path: filepath.Join(root, "nope")},
		},
	}
	return root, req
}

// snapshot lists every path under root with its mode, size and sha256.
func snapshot(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %v %d", p, info.Mode(), info.Size())
		if info.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " %x", sha256.Sum256(data))
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	return bytes.Equal(ja, jb)
}

func TestGatherLocalShell(t *testing.T) {
	root, req := tree(t)
	h := &localHost{}
	before := snapshot(t, root)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f, err := Gather(ctx, h, req)
	if err != nil {
		t.Fatal(err)
	}
	if h.runs != 1 {
		t.Errorf("probe used %d round trips, want 1", h.runs)
	}
	if after := snapshot(t, root); after != before {
		t.Errorf("probe changed the tree:\nbefore %s\nafter  %s", before, after)
	}

	t.Run("platform", func(t *testing.T) {
		if f.Machine == "" || f.Arch == "" {
			t.Errorf("machine %q arch %q", f.Machine, f.Arch)
		}
		if f.OS.ID == "" {
			t.Errorf("no OS id from /etc/os-release")
		}
		if !slices.Contains(f.Postgres, Install{Major: "15", BinDir: req.BinDir}) {
			t.Errorf("custom bin dir %s not found as 15 (from postgres -V): %+v", req.BinDir, f.Postgres)
		}
	})
	t.Run("data dir", func(t *testing.T) {
		dd := f.DataDir
		if dd == nil {
			t.Fatal("no data dir facts")
		}
		want := DataDir{Path: req.DataDir, State: DataDirInitialised, Version: "15", SystemID: "7412345678901234567", WALSegSize: 16 << 20,
			Timeline: 3, WALTimeline: 4, ClusterState: "in archive recovery", Running: true, InRecovery: true, Signals: []string{"standby.signal"}}
		if !equalJSON(t, *dd, want) {
			t.Errorf("data dir\n got %+v\nwant %+v", *dd, want)
		}
		if tl := dd.CurrentTimeline(); tl != 4 {
			t.Errorf("current timeline %d, want 4 (pg_wal's newest history file)", tl)
		}
	})
	t.Run("files", func(t *testing.T) {
		conf := f.Files[req.Paths[0].Path]
		if conf.Type != Regular || conf.Mode != "0644" || conf.Content == nil || *conf.Content != "port = 5432\n# pgwarm\n" {
			t.Errorf("conf = %+v", conf)
		}
		if want := fmt.Sprintf("%x", sha256.Sum256([]byte("port = 5432\n# pgwarm\n"))); conf.SHA256 != want {
			t.Errorf("conf sha256 %q, want %q", conf.SHA256, want)
		}
		secret := f.Files[req.Paths[1].Path]
		if secret.Content != nil || secret.SHA256 == "" {
			t.Errorf("secret: content collected or hash missing: %+v", secret)
		}
		if d := f.Files[req.Paths[2].Path]; d.Type != Dir {
			t.Errorf("dir = %+v", d)
		}
		if m, ok := f.Files[req.Paths[3].Path]; !ok || m.Exists() {
			t.Errorf("missing path: %+v %v", m, ok)
		}
	})
	t.Run("archive", func(t *testing.T) {
		a := f.Archive
		if a == nil || a.Exists || a.Probed != root || a.Type == "" || a.SizeBytes <= 0 || a.MountPoint == "" {
			t.Errorf("archive = %+v", a)
		}
	})
}

func TestGatherDataDirStates(t *testing.T) {
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, "empty"), 0o700)
	write(t, filepath.Join(root, "other", "junk"), "x", 0o600)
	write(t, filepath.Join(root, "file"), "x", 0o600)
	for _, c := range []struct {
		dir  string
		want DataDirState
	}{{"absent", DataDirAbsent}, {"empty", DataDirEmpty}, {"other", DataDirOther}, {"file", DataDirNotDir}} {
		t.Run(c.dir, func(t *testing.T) {
			f, err := Gather(context.Background(), &localHost{}, Request{DataDir: filepath.Join(root, c.dir)})
			if err != nil {
				t.Fatal(err)
			}
			if f.DataDir.State != c.want || f.DataDir.Running {
				t.Errorf("state %+v, want %s", f.DataDir, c.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	out := "uid\t1000\nmachine\tx86_64\nos\tID=debian\nos\tPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n" +
		"pgbin\t/usr/lib/postgresql/15/bin\npgbin\t/usr/lib/postgresql/9.6/bin\npgbin\t/usr/pgsql-11/bin\n" +
		"df\t/srv\t/dev/sda1 ext4 1000000 400000 600000 40% /\nend\n"
	f, err := Parse("pg1", Request{ArchivePath: "/srv/pgwarm/main"}, []byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if f.Root || f.Arch != "amd64" || f.OS.PrettyName != "Debian GNU/Linux 12 (bookworm)" {
		t.Errorf("platform: %+v", f)
	}
	var majors []string
	for _, in := range f.Postgres {
		majors = append(majors, in.Major)
	}
	if strings.Join(majors, ",") != "9.6,11,15" {
		t.Errorf("majors %v, want 9.6,11,15", majors)
	}
	want := Filesystem{Path: "/srv/pgwarm/main", Probed: "/srv", Device: "/dev/sda1", Type: "ext4", SizeBytes: 1000000 * 1024, AvailBytes: 600000 * 1024, UsedPct: 40, MountPoint: "/"}
	if *f.Archive != want {
		t.Errorf("archive %+v\nwant %+v", *f.Archive, want)
	}

	t.Run("truncated", func(t *testing.T) {
		if _, err := Parse("pg1", Request{}, []byte("uid\t0\n")); err == nil {
			t.Error("truncated output accepted")
		}
	})
	t.Run("path without record", func(t *testing.T) {
		if _, err := Parse("pg1", Request{Paths: []PathRequest{{Path: "/etc/x"}}}, []byte("end\n")); err == nil {
			t.Error("missing path record accepted")
		}
	})
}

func TestScriptRejectsUnsafePaths(t *testing.T) {
	for _, p := range []string{"relative/path", "/etc/a\tb", "/etc/a\nb"} {
		if _, err := Script(Request{Paths: []PathRequest{{Path: p}}}); err == nil {
			t.Errorf("Script accepted %q", p)
		}
	}
	if _, err := Script(Request{ArchivePath: "srv/archive"}); err == nil {
		t.Error("Script accepted a relative archive path")
	}
	if _, err := Script(Request{Role: "x'; drop role y; --"}); err == nil {
		t.Error("Script accepted a role name with quotes")
	}
}

func TestNormaliseArch(t *testing.T) {
	for _, c := range [][3]string{{"x86_64", "", "amd64"}, {"aarch64", "", "arm64"}, {"x86_64", "i386", "i386"}, {"riscv64", "", "riscv64"}} {
		if got := NormaliseArch(c[0], c[1]); got != c[2] {
			t.Errorf("NormaliseArch(%q,%q) = %q, want %q", c[0], c[1], got, c[2])
		}
	}
}

// The archive host after apply: the archive directory exists. The probe once
// looped forever here because its print helper clobbered a shell variable.
func TestGatherExistingArchive(t *testing.T) {
	root, req := tree(t)
	if err := os.MkdirAll(req.ArchivePath, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f, err := Gather(ctx, &localHost{}, req)
	if err != nil {
		t.Fatalf("probe with an existing archive directory: %v", err)
	}
	if f.Archive == nil || !f.Archive.Exists {
		t.Fatalf("archive %s exists but facts say %+v", req.ArchivePath, f.Archive)
	}
	_ = root
}

// TestGatherArchiveUser: the archive account's passwd home is read (the
// plan refuses an archive.home that differs), and a missing account is
// told apart from one not asked for.
func TestGatherArchiveUser(t *testing.T) {
	f, err := Gather(context.Background(), &localHost{}, Request{ArchiveUser: "root"})
	if err != nil {
		t.Fatal(err)
	}
	if u := f.ArchiveUser; u == nil || u.Name != "root" || u.UID != 0 || u.Home == "" {
		t.Errorf("root: archive user %+v", u)
	}
	f, err = Gather(context.Background(), &localHost{}, Request{ArchiveUser: "no-such-user-pgwarm"})
	if err != nil {
		t.Fatal(err)
	}
	if u := f.ArchiveUser; u == nil || u.Name != "" {
		t.Errorf("missing account: archive user %+v, want an empty record", u)
	}
	f, err = Gather(context.Background(), &localHost{}, Request{})
	if err != nil {
		t.Fatal(err)
	}
	if f.ArchiveUser != nil {
		t.Errorf("not asked: archive user %+v, want nil", f.ArchiveUser)
	}
	if _, err := Script(Request{ArchiveUser: "x; rm -rf /"}); err == nil {
		t.Error("Script accepted an archive user that is not a user name")
	}
}

// TestGatherAwkwardPaths: managed paths with spaces, quotes, '|', a
// backslash and a leading dash, a symlink to a file, and a file too big for
// its text to be collected all come back as single stat(1) and
// sha256sum(1) calls would describe them one by one.
func TestGatherAwkwardPaths(t *testing.T) {
	// With tar and openssl (when installed here); with neither: sha256sum
	// and base64 only; and with a tar that fails (knows no -h, say).
	for _, tarKind := range []string{"tar", "none", "broken"} {
		t.Run(tarKind, func(t *testing.T) {
			root := t.TempDir()
			texts := map[string]string{
				"a b.conf":      "x = 1\n",
				"it's|odd.conf": "y = 'two'\n",
				`back\slash`:    "z\\n\n",
				"-dash":         "",
				"no newline":    "last",
			}
			var req Request
			want := map[string]string{}
			for name, text := range texts {
				p := filepath.Join(root, "etc", name)
				write(t, p, text, 0o640)
				req.Paths = append(req.Paths, PathRequest{Path: p, Content: true}, PathRequest{Path: p + ".hashonly"})
				write(t, p+".hashonly", text+text, 0o600)
				want[p], want[p+".hashonly"] = text, text+text
			}
			link := filepath.Join(root, "etc", "link.conf")
			if err := os.Symlink(filepath.Join(root, "etc", "a b.conf"), link); err != nil {
				t.Fatal(err)
			}
			req.Paths = append(req.Paths, PathRequest{Path: link, Content: true})
			want[link] = texts["a b.conf"]
			big := filepath.Join(root, "etc", "big")
			write(t, big, strings.Repeat("x", MaxContent+1), 0o644)
			req.Paths = append(req.Paths, PathRequest{Path: big, Content: true})

			h := &localHost{}
			if tarKind != "tar" {
				h.path = pathWithout(t, "tar")
				os.Remove(filepath.Join(h.path, "openssl"))
			}
			if tarKind == "broken" {
				write(t, filepath.Join(h.path, "tar"), "#!/bin/sh\necho 'tar: unknown option -h' >&2; exit 1\n", 0o755)
			}
			f, err := Gather(context.Background(), h, req)
			if err != nil {
				t.Fatal(err)
			}
			for p, text := range want {
				fi := f.Files[p]
				if fi.Type != Regular || fi.Size != int64(len(text)) || fi.SHA256 != fmt.Sprintf("%x", sha256.Sum256([]byte(text))) {
					t.Errorf("%s: %+v, want a %d-byte file with its hash", p, fi, len(text))
				}
				wantText := strings.HasSuffix(p, ".hashonly") == false
				if got := fi.Content != nil; got != wantText || got && *fi.Content != text {
					t.Errorf("%s: content %v, want %q (asked: %v)", p, fi.Content, text, wantText)
				}
			}
			if fi := f.Files[big]; fi.Content != nil || fi.SHA256 != fmt.Sprintf("%x", sha256.Sum256([]byte(strings.Repeat("x", MaxContent+1)))) || fi.Mode != "0644" {
				t.Errorf("big file: %v content, hash %s, mode %s; want a hash only", fi.Content != nil, fi.SHA256, fi.Mode)
			}
		})
	}
}

// pathWithout is a PATH of links to the tools the probe and tree use,
// without the tool named ("": without setpriv, for the caller's own).
func pathWithout(t *testing.T, tool string) string {
	dir := t.TempDir()
	for _, n := range []string{"stat", "sha256sum", "base64", "getent", "id", "uname", "dpkg", "df", "ls", "cat", "setpriv", "runuser", "tar", "sleep", "openssl"} {
		if n == tool || n == "setpriv" && tool == "" {
			continue
		}
		if p, err := exec.LookPath(n); err == nil {
			if err := os.Symlink(p, filepath.Join(dir, n)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

func TestParseSum(t *testing.T) {
	h := strings.Repeat("ab", 32)
	for _, c := range [][2]string{
		{h + "  /etc/a b", "/etc/a b"},
		{`\` + h + `  /etc/back\\slash`, `/etc/back\slash`},
		{h + " */etc/bin", "/etc/bin"},
	} {
		p, s, err := parseSum(c[0])
		if err != nil || p != c[1] || s != h {
			t.Errorf("parseSum(%q) = %q, %q, %v; want %q", c[0], p, s, err, c[1])
		}
	}
	if _, _, err := parseSum("short"); err == nil {
		t.Error("parseSum accepted a short line")
	}
}

// TestGatherRole: the role check runs beside the rest of the probe (psql
// is slow to answer) and its answer, or its failure, still comes back.
func TestGatherRole(t *testing.T) {
	for _, c := range []struct{ psql, want string }{
		{"sleep 0.3; echo 'role present'; echo 'postmaster port'; echo 'postmaster wal_level'; echo 'pending wal_level'", "present"},
		{"echo 'role lacking'", "lacking"},
		{"echo 'role absent'", "absent"},
		{"echo 'psql: error: connection refused' >&2; exit 2", ""},
		// A hostile host's answer: nothing but setting names is kept.
		{"printf 'role present\\033[2J\\npostmaster port\\npostmaster x\\033[31m\\npending a;rm\\npostmaster \\npending wal_level\\n'", "hostile"},
	} {
		t.Run(c.want, func(t *testing.T) {
			_, req := tree(t)
			req.Role, req.Port = "replicator", 5432
			write(t, filepath.Join(req.BinDir, "psql"), "#!/bin/sh\n"+c.psql+"\n", 0o755)
			h := &localHost{path: pathWithout(t, "")}
			// A setpriv that only runs the command: the test need not be root.
			write(t, filepath.Join(h.path, "setpriv"), "#!/bin/sh\nwhile [ \"$1\" != -- ]; do shift; done; shift; exec \"$@\"\n", 0o755)
			f, err := Gather(context.Background(), h, req)
			if err != nil {
				t.Fatal(err)
			}
			if c.want == "hostile" {
				st := f.DataDir.Settings
				if f.DataDir.Role != "" || st == nil || strings.Join(st.Postmaster, ",") != "port" || strings.Join(st.PendingRestart, ",") != "wal_level" {
					t.Errorf("from a hostile answer: role %q, settings %+v", f.DataDir.Role, st)
				}
				return
			}
			if f.DataDir.Role != c.want {
				t.Errorf("role %q, want %q", f.DataDir.Role, c.want)
			}
			// What the server says about restarts comes with the role.
			switch st := f.DataDir.Settings; {
			case c.want == "" && st != nil:
				t.Errorf("settings %+v from a psql that failed", st)
			case c.want == "present" && (st == nil || strings.Join(st.Postmaster, ",") != "port,wal_level" || strings.Join(st.PendingRestart, ",") != "wal_level"):
				t.Errorf("settings %+v", st)
			case c.want != "" && st == nil:
				t.Error("no settings from a psql that answered")
			}
			if conf := f.Files[req.Paths[0].Path]; conf.Content == nil || conf.SHA256 == "" {
				t.Errorf("files not probed beside the role check: %+v", conf)
			}
		})
	}
}

// TestParseNoHash: a file stat saw but whose hash never came (tar or
// sha256sum failed, or it vanished meanwhile) is an error, not a guess.
func TestParseNoHash(t *testing.T) {
	req := Request{Paths: []PathRequest{{Path: "/etc/a", Content: true}}}
	for name, out := range map[string]string{
		"empty tar": "fstat\t/etc/a\t644|root|root|3\ntar\t\nend\n",
		"no sum":    "fstat\t/etc/a\t644|root|root|3\nend\n",
	} {
		if _, err := Parse("pg1", req, []byte(out)); err == nil || !strings.Contains(err.Error(), "no hash for /etc/a") {
			t.Errorf("%s: err = %v, want no hash for /etc/a", name, err)
		}
	}
	ok := "fstat\t/etc/a\t644|root|root|3\nsum\t" + strings.Repeat("0", 64) + "  /etc/a\nend\n"
	if f, err := Parse("pg1", req, []byte(ok)); err != nil || f.Files["/etc/a"].SHA256 != strings.Repeat("0", 64) {
		t.Errorf("with its sum: %+v, %v", f.Files["/etc/a"], err)
	}
}
