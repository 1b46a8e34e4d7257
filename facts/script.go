package facts

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/pgwarm/pgwarm/host"
)

// probe is the read-only shell script run on every host. It prints one
// record per line, "tag<TAB>field<TAB>field...", and "end" last so a
// truncated output is detected. It uses only POSIX sh plus coreutils
// (stat, sha256sum, base64 -w, df; tar and openssl when there) and writes
// nothing anywhere. Every external command costs a fork and an exec — on
// a container's fuse-overlayfs some tens of milliseconds under load — so
// builtins are used where they can be (read instead of cat or id,
// parameter expansion instead of dirname or cut) and the managed paths are
// classified with test(1) builtins and then examined together: one stat
// for all of them, one sha256sum for the files only hashed, and one tar
// for the files whose text is wanted (hashed by Parse from that text).
// Lists of paths are newline-separated (Script refuses paths with a
// newline) and split with IFS set to a newline and globbing off.
const probe = `
LC_ALL=C; export LC_ALL
NL='
'
DEFIFS=" 	$NL"
# p prints one tab-separated record. Its loop variable is named so that it
# cannot clobber the script's own (sh has no local variables).
p() { printf '%s' "$1"; shift; for p_arg in "$@"; do printf '\t%s' "$p_arg"; done; printf '\n'; }
uid=; if [ -r /proc/self/status ]; then while read -r k a b _; do [ "$k" = Uid: ] && { uid=$b; break; }; done < /proc/self/status; fi
[ -n "$uid" ] || uid=$(id -u); p uid "$uid"
m=; [ -r /proc/sys/kernel/arch ] && read -r m < /proc/sys/kernel/arch
[ -n "$m" ] || m=$(uname -m); p machine "$m"
command -v dpkg >/dev/null 2>&1 && p dpkgarch "$(dpkg --print-architecture 2>/dev/null)"
if [ -r /etc/os-release ]; then while IFS= read -r l || [ -n "$l" ]; do p os "$l"; done < /etc/os-release; fi
c=; [ -r /proc/1/comm ] && read -r c < /proc/1/comm; p pid1 "$c"
[ -d /run/systemd/system ] && p systemd 1
if [ -n "$ARCHUSER" ] && [ "$ARCHUSER" != postgres ]; then ents=$(getent passwd postgres "$ARCHUSER" 2>/dev/null)
else ents=$(getent passwd postgres 2>/dev/null); fi
pw=; aw=; IFS=$NL; set -f
for l in $ents; do case $l in postgres:*) pw=$l ;; esac; case $l in "$ARCHUSER":*) aw=$l ;; esac; done
IFS=$DEFIFS; set +f
[ -n "$pw" ] && p pguser "$pw"
if [ -n "$ARCHUSER" ]; then
  if [ -n "$aw" ]; then p archuser "$aw"; else p archuser; fi
fi
for d in /usr/lib/postgresql/*/bin /usr/pgsql-*/bin; do [ -x "$d/postgres" ] && p pgbin "$d"; done
case "$BINDIR" in /usr/lib/postgresql/*/bin|/usr/pgsql-*/bin) ;; *) [ -n "$BINDIR" ] && [ -x "$BINDIR/postgres" ] && p pgbinver "$BINDIR" "$("$BINDIR/postgres" -V 2>/dev/null)" ;; esac
askserver=
if [ -n "$DATADIR" ]; then
  D=$DATADIR
  if [ ! -e "$D" ]; then p datadir absent
  elif [ ! -d "$D" ]; then p datadir not-a-directory
  elif [ ! -r "$D" ] || [ ! -x "$D" ]; then p datadir unreadable
  elif [ -f "$D/PG_VERSION" ]; then
    p datadir initialised
    read -r V < "$D/PG_VERSION"; p pgversion "$V"
    for s in standby.signal recovery.signal recovery.conf; do [ -e "$D/$s" ] && p signal "$s"; done
    pid=; [ -r "$D/postmaster.pid" ] && read -r pid < "$D/postmaster.pid"
    case "$pid" in ''|*[!0-9]*) ;; *)
      c=; [ -r "/proc/$pid/comm" ] && read -r c < "/proc/$pid/comm"
      case "$c" in postgres*|postmaster*) p running "$pid" ;; esac ;;
    esac
    for c in "$BINDIR/pg_controldata" "/usr/lib/postgresql/$V/bin/pg_controldata" "/usr/pgsql-$V/bin/pg_controldata"; do
      [ -x "$c" ] || continue
      out=$("$c" -D "$D" 2>/dev/null) || continue
      IFS=$NL; set -f; for l in $out; do p ctl "$l"; done; IFS=$DEFIFS; set +f; break
    done
    # The newest history file in pg_wal is the timeline of a primary that
    # was just promoted, before its first checkpoint updates the control file.
    for h in "$D"/pg_wal/*.history "$D"/pg_xlog/*.history; do [ -f "$h" ] && p walhistory "${h##*/}"; done
    [ -n "$pid" ] && [ -x "$BINDIR/psql" ] && askserver=1
  elif [ -z "$(ls -A "$D" 2>/dev/null)" ]; then p datadir empty
  else p datadir other
  fi
fi
# server asks the running server, as postgres over the local socket,
# whether the replication role exists (when ROLE is set), which settings
# take effect only at a restart (pg_settings.context postmaster) and which
# wait for one already (pending_restart): through setpriv when there is
# one (no PAM session, unlike runuser), with postgres's HOME as runuser
# sets it. One line each: "role STATE", "postmaster NAME", "pending NAME".
server() {
  sql="select 'postmaster ' || name from pg_settings where context = 'postmaster' union all select 'pending ' || name from pg_settings where pending_restart"
  [ -n "$ROLE" ] && sql="select 'role ' || coalesce((select case when rolcanlogin and rolreplication then 'present' else 'lacking' end from pg_roles where rolname = '$ROLE'), 'absent') union all $sql"
  cd / || return
  export PGCONNECT_TIMEOUT=3
  if command -v setpriv >/dev/null 2>&1; then
    ph=${pw#*:*:*:*:*:}; HOME=${ph%%:*} exec setpriv --reuid=postgres --regid=postgres --init-groups -- "$BINDIR/psql" -XAtq -p "$PORT" -d postgres -c "$sql" 2>/dev/null
  fi
  exec runuser -u postgres -- "$BINDIR/psql" -XAtq -p "$PORT" -d postgres -c "$sql" 2>/dev/null
}
# rest is everything after the data directory.
rest() {
if [ -n "$SERVICE" ] && [ -d /run/systemd/system ]; then
  p service "$SERVICE" "$(systemctl is-active "$SERVICE" 2>/dev/null)" "$(systemctl is-enabled "$SERVICE" 2>/dev/null)"
fi
# f sorts one managed path: directories and readable files are listed in
# S (and in W when their text is wanted), the rest recorded at once.
S=; W=
f() {
  if [ -d "$1" ]; then S="$S$NL$1"
  elif [ -f "$1" ]; then
    if [ ! -r "$1" ]; then p unreadable "$1"; return; fi
    S="$S$NL$1"; [ "$2" = 1 ] && W="$W$NL$1$NL"
  elif [ -e "$1" ] || [ -L "$1" ]; then p other "$1"
  else p missing "$1"
  fi
}
PATHS
if [ -n "$S" ]; then
  tarok=; command -v tar >/dev/null 2>&1 && tarok=1
  IFS=$NL; set -f; set -- $S; IFS=$DEFIFS; set +f
  st=$(stat -L -c '%F|%a|%U|%G|%s|%n' -- "$@" 2>/dev/null)
  H=; T=; C=; big=; IFS=$NL; set -f
  for l in $st; do
    n=${l#*|*|*|*|*|}; m=${l%"|$n"}; t=${m%%|*}; m=${m#*|}
    case $t in
    directory) p dir "$n" "${m%|*}" ;;
    regular*)
      p fstat "$n" "$m"
      case "$W" in *"$NL$n$NL"*)
        if [ "${m##*|}" -le "$MAXCONTENT" ]; then
          if [ -n "$tarok" ]; then T="$T$NL$n"; continue; fi
          C="$C$NL$n"
        fi ;;
      esac
      H="$H$NL$n"; [ "${m##*|}" -gt 1048576 ] && big=1 ;;
    esac
  done
  IFS=$DEFIFS; set +f
  if [ -n "$T" ]; then
    IFS=$NL; set -f; set -- $T; IFS=$DEFIFS; set +f
    b=$(tar -b 1 -chPf - -- "$@" 2>/dev/null | base64 -w 0)
    # A tar that knows none of these options prints nothing: those files
    # go the way they would without tar.
    if [ -n "$b" ]; then p tar "$b"; else H="$H$T"; C="$C$T"; fi
  fi
  if [ -n "$H" ]; then
    IFS=$NL; set -f; set -- $H; IFS=$DEFIFS
    # openssl hashes big files (the helper binary) several times faster.
    if [ -n "$big" ] && command -v openssl >/dev/null 2>&1; then sums=$(openssl dgst -sha256 -r "$@" 2>/dev/null)
    else sums=$(sha256sum -- "$@" 2>/dev/null); fi
    IFS=$NL; for l in $sums; do p sum "$l"; done; IFS=$DEFIFS; set +f
  fi
  IFS=$NL; set -f; set -- $C; IFS=$DEFIFS; set +f
  for n in "$@"; do p content "$n" "$(base64 -w 0 < "$n")"; done
fi
if [ -n "$HOSTKEYS" ]; then
  for t in ed25519 ecdsa rsa; do [ -r "/etc/ssh/ssh_host_${t}_key.pub" ] && read -r kt kb _ < "/etc/ssh/ssh_host_${t}_key.pub" && p hostkey "$kt $kb"; done
fi
if [ -n "$ARCHIVE" ]; then
  a=$ARCHIVE; [ -e "$a" ] && p archexists 1
  while [ ! -e "$a" ] && [ -n "$a" ]; do a=${a%/*}; done; a=${a:-/}
  df -PTk "$a" 2>/dev/null | { read -r _; read -r l; p df "$a" "$l"; }
fi
}
if [ -n "$askserver" ]; then
  # psql and the backend it starts take a while: the rest of the probe
  # runs meanwhile, its records going straight out on fd 3; only psql's
  # answer is captured.
  exec 3>&1
  if r=$(server & rest >&3; wait $!); then
    p settingsread 1
    IFS=$NL; set -f
    for l in $r; do case $l in "role "*) p role "${l#role }" ;; "postmaster "*) p postmaster "${l#postmaster }" ;; "pending "*) p pending "${l#pending }" ;; esac; done
    IFS=$DEFIFS; set +f
  fi
  exec 3>&-
else
  rest
fi
p end
`

// Script returns the probe for req: variables first, then the fixed script
// with one f call per managed path.
func Script(req Request) (string, error) {
	for _, s := range []string{req.DataDir, req.BinDir, req.Service, req.ArchivePath} {
		if strings.ContainsAny(s, "\t\n") {
			return "", fmt.Errorf("path %q contains a tab or newline", s)
		}
	}
	for _, s := range []string{req.DataDir, req.BinDir, req.ArchivePath} {
		if s != "" && !strings.HasPrefix(s, "/") {
			return "", fmt.Errorf("path %q is not absolute", s)
		}
	}
	var calls strings.Builder
	for _, pr := range req.Paths {
		if !strings.HasPrefix(pr.Path, "/") || strings.ContainsAny(pr.Path, "\t\n") {
			return "", fmt.Errorf("managed path %q is not absolute or contains a tab or newline", pr.Path)
		}
		want := "0"
		if pr.Content {
			want = "1"
		}
		fmt.Fprintf(&calls, "f %s %s\n", host.Quote(pr.Path), want)
	}
	if !validRole(req.Role) {
		return "", fmt.Errorf("role name %q: only letters, digits and _ are probed", req.Role)
	}
	hostKeys := ""
	if req.HostKeys {
		hostKeys = "1"
	}
	if !validUser(req.ArchiveUser) {
		return "", fmt.Errorf("archive user %q is not a user name", req.ArchiveUser)
	}
	vars := fmt.Sprintf("DATADIR=%s BINDIR=%s SERVICE=%s ARCHIVE=%s HOSTKEYS=%s ROLE=%s PORT=%d MAXCONTENT=%d ARCHUSER=%s\n",
		host.Quote(req.DataDir), host.Quote(req.BinDir), host.Quote(req.Service), host.Quote(req.ArchivePath),
		hostKeys, host.Quote(req.Role), req.Port, MaxContent, host.Quote(req.ArchiveUser))
	return vars + strings.Replace(probe, "PATHS\n", calls.String(), 1), nil
}

// settingName reports whether s can be a pg_settings name (letters,
// digits, _ and the . of an extension's): what a server reports goes into
// the plan's restart line, so nothing else from a host is kept.
func settingName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// validRole keeps the role name safe to splice into the probe's SQL literal.
func validRole(r string) bool {
	for _, c := range r {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// validUser keeps the archive user's name safe for getent.
func validUser(u string) bool {
	for i, c := range u {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || i > 0 && (c >= '0' && c <= '9' || c == '-' || c == '.')) {
			return false
		}
	}
	return true
}

// Parse turns the probe's output into Facts. It is pure.
func Parse(name string, req Request, out []byte) (Facts, error) {
	f := Facts{Host: name, Files: Files{}}
	osr := map[string]string{}
	var ctl []string
	var dd *DataDir
	if req.DataDir != "" {
		dd = &DataDir{Path: req.DataDir}
	}
	var dpkgArch string
	unhashed := map[string]bool{} // regular files (from fstat) still without a hash
	ended := false
	for _, line := range strings.Split(string(out), "\n") {
		if line == "" {
			continue
		}
		fld := strings.Split(line, "\t")
		tag, args := fld[0], fld[1:]
		arg := func(i int) string {
			if i < len(args) {
				return args[i]
			}
			return ""
		}
		switch tag {
		case "uid":
			f.Root = arg(0) == "0"
		case "machine":
			f.Machine = arg(0)
		case "dpkgarch":
			dpkgArch = arg(0)
		case "os":
			if k, v, ok := strings.Cut(arg(0), "="); ok {
				osr[k] = unquoteOSRelease(v)
			}
		case "systemd":
			f.Systemd = true
		case "pguser":
			// name:x:uid:gid:gecos:home:shell
			p := strings.Split(arg(0), ":")
			if len(p) >= 6 {
				uid, _ := strconv.Atoi(p[2])
				f.PGUser = &User{UID: uid, Home: p[5]}
			}
		case "archuser":
			// Asked for: an empty record means the account does not exist.
			f.ArchiveUser = &User{}
			if p := strings.Split(arg(0), ":"); len(p) >= 6 {
				uid, _ := strconv.Atoi(p[2])
				f.ArchiveUser = &User{Name: p[0], UID: uid, Home: p[5]}
			}
		case "pgbin":
			f.addInstall(majorFromBinDir(arg(0)), arg(0))
		case "pgbinver":
			f.addInstall(majorFromVersion(arg(1)), arg(0))
		case "datadir":
			if dd != nil {
				dd.State = DataDirState(arg(0))
			}
		case "pgversion":
			if dd != nil {
				dd.Version = strings.TrimSpace(arg(0))
			}
		case "signal":
			if dd != nil {
				dd.Signals = append(dd.Signals, arg(0))
			}
		case "running":
			if dd != nil {
				dd.Running = true
			}
		case "role":
			if dd != nil && (arg(0) == "present" || arg(0) == "absent" || arg(0) == "lacking") {
				dd.Role = arg(0)
			}
		case "settingsread":
			if dd != nil {
				dd.Settings = &ServerSettings{Postmaster: []string{}, PendingRestart: []string{}}
			}
		case "postmaster":
			if dd != nil && dd.Settings != nil && settingName(arg(0)) {
				dd.Settings.Postmaster = append(dd.Settings.Postmaster, arg(0))
			}
		case "pending":
			if dd != nil && dd.Settings != nil && settingName(arg(0)) {
				dd.Settings.PendingRestart = append(dd.Settings.PendingRestart, arg(0))
			}
		case "hostkey":
			f.HostKeys = append(f.HostKeys, arg(0))
		case "ctl":
			ctl = append(ctl, arg(0))
		case "walhistory":
			if dd != nil && len(arg(0)) == len("00000002.history") && strings.HasSuffix(arg(0), ".history") {
				if tl, err := strconv.ParseUint(arg(0)[:8], 16, 32); err == nil && int(tl) > dd.WALTimeline {
					dd.WALTimeline = int(tl)
				}
			}
		case "service":
			f.Service = &Service{Name: arg(0), Active: arg(1), Enabled: arg(2)}
		case "dir":
			mode, owner, group, _ := statFields(arg(1))
			f.Files[arg(0)] = File{Type: Dir, Mode: mode, Owner: owner, Group: group}
		case "file":
			mode, owner, group, size := statFields(arg(1))
			f.Files[arg(0)] = File{Type: Regular, Mode: mode, Owner: owner, Group: group, Size: size, SHA256: arg(2)}
		case "fstat":
			mode, owner, group, size := statFields(arg(1))
			f.Files[arg(0)] = File{Type: Regular, Mode: mode, Owner: owner, Group: group, Size: size}
			unhashed[arg(0)] = true
		case "sum":
			path, sum, err := parseSum(arg(0))
			if err != nil {
				return Facts{}, err
			}
			fi, ok := f.Files[path]
			if !ok {
				return Facts{}, fmt.Errorf("probe output: hash before file record for %s", path)
			}
			fi.SHA256 = sum
			f.Files[path] = fi
			delete(unhashed, path)
		case "tar":
			if err := readTar(f.Files, arg(0)); err != nil {
				return Facts{}, err
			}
			for p, fi := range f.Files {
				if fi.SHA256 != "" {
					delete(unhashed, p)
				}
			}
		case "content":
			fi, ok := f.Files[arg(0)]
			if !ok {
				return Facts{}, fmt.Errorf("probe output: content before file record for %s", arg(0))
			}
			b, err := base64.StdEncoding.DecodeString(arg(1))
			if err != nil {
				return Facts{}, fmt.Errorf("probe output: content of %s: %w", arg(0), err)
			}
			s := string(b)
			fi.Content = &s
			f.Files[arg(0)] = fi
		case "unreadable":
			f.Files[arg(0)] = File{Type: Regular, Unreadable: true}
		case "other":
			f.Files[arg(0)] = File{Type: Other}
		case "missing":
			f.Files[arg(0)] = File{}
		case "archexists":
			if f.Archive == nil {
				f.Archive = &Filesystem{}
			}
			f.Archive.Exists = true
		case "df":
			if f.Archive == nil {
				f.Archive = &Filesystem{}
			}
			if err := parseDF(f.Archive, arg(0), arg(1)); err != nil {
				return Facts{}, err
			}
			f.Archive.Path = req.ArchivePath
		case "pid1":
			// Recorded by the script for people reading raw output; the
			// /run/systemd/system test (sd_booted) is what counts.
		case "end":
			ended = true
		}
	}
	if !ended {
		return Facts{}, fmt.Errorf("probe output truncated (no end record)")
	}
	for _, pr := range req.Paths {
		if _, ok := f.Files[pr.Path]; !ok {
			return Facts{}, fmt.Errorf("probe output: no record for %s", pr.Path)
		}
		// A file stat saw but no hash came back for: it vanished
		// meanwhile, or sha256sum or tar failed. Never guess.
		if unhashed[pr.Path] {
			return Facts{}, fmt.Errorf("probe output: no hash for %s (changed during the probe, or the host's sha256sum or tar failed); run plan again", pr.Path)
		}
	}
	f.OS = OS{ID: osr["ID"], VersionID: osr["VERSION_ID"], PrettyName: osr["PRETTY_NAME"]}
	f.Arch = NormaliseArch(f.Machine, dpkgArch)
	if dd != nil {
		if dd.State == "" {
			return Facts{}, fmt.Errorf("probe output: no data directory state")
		}
		parseControlData(dd, ctl)
		f.DataDir = dd
	}
	sort.Slice(f.Postgres, func(i, j int) bool { return versionLess(f.Postgres[i].Major, f.Postgres[j].Major) })
	return f, nil
}

// parseSum reads one line of sha256sum's output: "HASH  PATH", or, when
// the path has a backslash or a newline, "\\HASH  PATH" with those escaped.
func parseSum(line string) (path, sum string, err error) {
	escaped := strings.HasPrefix(line, "\\")
	if escaped {
		line = line[1:]
	}
	if len(line) < 66 || (line[64:66] != "  " && line[64:66] != " *") {
		return "", "", fmt.Errorf("probe output: cannot read sha256sum line %q", line)
	}
	sum, path = line[:64], line[66:]
	if escaped {
		var b strings.Builder
		for i := 0; i < len(path); i++ {
			if path[i] == '\\' && i+1 < len(path) {
				i++
				switch path[i] {
				case 'n':
					b.WriteByte('\n')
				case 'r':
					b.WriteByte('\r')
				default:
					b.WriteByte(path[i])
				}
				continue
			}
			b.WriteByte(path[i])
		}
		path = b.String()
	}
	return path, sum, nil
}

// readTar reads the probe's tar (base64) of the files whose text is
// wanted: each member's hash, and its text when within MaxContent.
func readTar(files Files, b64 string) error {
	data, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return fmt.Errorf("probe output: file contents: %w", err)
	}
	abs := func(p string) string { // tar -P keeps the leading slash; others may not
		if !strings.HasPrefix(p, "/") {
			return "/" + p
		}
		return p
	}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("probe output: file contents: %w", err)
		}
		path := abs(hdr.Name)
		fi, ok := files[path]
		if !ok {
			return fmt.Errorf("probe output: content before file record for %s", path)
		}
		if hdr.Typeflag == tar.TypeLink {
			// The same file as an earlier member (a hard link, or a
			// symlink to it, followed): tar stores it once.
			first := files[abs(hdr.Linkname)]
			fi.SHA256, fi.Content = first.SHA256, first.Content
			files[path] = fi
			continue
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		h := sha256.New()
		var text bytes.Buffer
		if _, err := io.Copy(io.MultiWriter(h, &limitedBuffer{&text, MaxContent}), tr); err != nil {
			return fmt.Errorf("probe output: content of %s: %w", path, err)
		}
		fi.SHA256 = hex.EncodeToString(h.Sum(nil))
		if hdr.Size <= MaxContent {
			s := text.String()
			fi.Content = &s
		}
		files[path] = fi
	}
}

// limitedBuffer keeps the first n bytes written to it and drops the rest.
type limitedBuffer struct {
	b *bytes.Buffer
	n int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.n - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (f *Facts) addInstall(major, bin string) {
	if major == "" {
		return
	}
	for _, in := range f.Postgres {
		if in.BinDir == bin {
			return
		}
	}
	f.Postgres = append(f.Postgres, Install{Major: major, BinDir: bin})
}

// Installed returns the bin dir of major, or "".
func (f Facts) Installed(major string) string {
	for _, in := range f.Postgres {
		if in.Major == major {
			return in.BinDir
		}
	}
	return ""
}

// majorFromBinDir reads 15 from /usr/lib/postgresql/15/bin or
// /usr/pgsql-15/bin.
func majorFromBinDir(dir string) string {
	dir = strings.TrimSuffix(dir, "/bin")
	if i := strings.LastIndexAny(dir, "/-"); i >= 0 {
		return dir[i+1:]
	}
	return ""
}

// majorFromVersion reads "15" from "postgres (PostgreSQL) 15.8 (Debian ...)"
// and "9.6" from "postgres (PostgreSQL) 9.6.24".
func majorFromVersion(v string) string {
	fs := strings.Fields(v)
	if len(fs) < 3 {
		return ""
	}
	parts := strings.Split(fs[2], ".")
	if parts[0] == "9" || parts[0] == "8" || parts[0] == "7" {
		if len(parts) > 1 {
			return parts[0] + "." + parts[1]
		}
	}
	// "15.8", "16beta1": the leading digits.
	for i, r := range parts[0] {
		if r < '0' || r > '9' {
			return parts[0][:i]
		}
	}
	return parts[0]
}

func versionLess(a, b string) bool {
	af, _ := strconv.ParseFloat(a, 64)
	bf, _ := strconv.ParseFloat(b, 64)
	if af != bf {
		return af < bf
	}
	return a < b
}

func statFields(s string) (mode, owner, group string, size int64) {
	p := strings.Split(s, "|")
	for len(p) < 4 {
		p = append(p, "")
	}
	m, err := strconv.ParseUint(p[0], 8, 32)
	if err == nil {
		mode = fmt.Sprintf("%04o", m)
	}
	size, _ = strconv.ParseInt(p[3], 10, 64)
	return mode, p[1], p[2], size
}

// parseDF reads one `df -PTk` data line:
// Filesystem Type 1024-blocks Used Available Capacity Mounted-on.
func parseDF(fs *Filesystem, probed, line string) error {
	fs.Probed = probed
	c := strings.Fields(line)
	if len(c) < 7 {
		return fmt.Errorf("probe output: cannot read df line %q for %s", line, probed)
	}
	// A device name with spaces would shift columns; count from the right.
	n := len(c)
	fs.MountPoint = c[n-1]
	fs.UsedPct, _ = strconv.Atoi(strings.TrimSuffix(c[n-2], "%"))
	avail, err1 := strconv.ParseInt(c[n-3], 10, 64)
	size, err2 := strconv.ParseInt(c[n-5], 10, 64)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("probe output: cannot read df line %q for %s", line, probed)
	}
	fs.AvailBytes, fs.SizeBytes = avail*1024, size*1024
	fs.Type = c[n-6]
	fs.Device = strings.Join(c[:n-6], " ")
	return nil
}

// parseControlData picks the lines of pg_controldata that matter.
func parseControlData(dd *DataDir, lines []string) {
	for _, l := range lines {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "Database system identifier":
			dd.SystemID = v
		case "Bytes per WAL segment":
			if n, err := strconv.ParseUint(v, 10, 32); err == nil {
				dd.WALSegSize = uint32(n)
			}
		case "Latest checkpoint's TimeLineID":
			dd.Timeline, _ = strconv.Atoi(v)
		case "Database cluster state":
			dd.ClusterState = v
		}
	}
	// The control file says "in archive recovery" for as long as a standby
	// replays; a stopped standby keeps "shut down in recovery".
	dd.InRecovery = dd.Running && dd.ClusterState == "in archive recovery"
}

func unquoteOSRelease(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		v = v[1 : len(v)-1]
	}
	return strings.NewReplacer(`\"`, `"`, `\\`, `\`, `\$`, `$`, "\\`", "`").Replace(v)
}

// NormaliseArch maps uname -m (and dpkg's answer, which wins: a 32-bit
// userland on a 64-bit kernel is what PostgreSQL's on-disk format follows)
// to Debian architecture names.
func NormaliseArch(machine, dpkg string) string {
	if dpkg != "" {
		return dpkg
	}
	switch machine {
	case "x86_64":
		return "amd64"
	case "aarch64", "arm64":
		return "arm64"
	case "i386", "i486", "i586", "i686":
		return "i386"
	case "armv7l", "armv6l":
		return "armhf"
	case "ppc64le":
		return "ppc64el"
	}
	return machine
}
