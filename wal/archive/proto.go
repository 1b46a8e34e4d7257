package archive

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/pgwarm/pgwarm/wal/segname"
	"github.com/pgwarm/pgwarm/wal/walfile"
)

// The serve protocol. The operation travels as the ssh command line
// (SSH_ORIGINAL_COMMAND on the far side):
//
//	pgwarm-wal-op push NAME [root=/path] [marker=NAME]     then one Data frame with the walfile
//	pgwarm-wal-op get NAME [root=/path] [wait=MILLIS]
//	pgwarm-wal-op cleanup NAME [root=/path] [as=HOST] [standbys=HOST,...] [streaming] [dry-run]
//	pgwarm-wal-op list|verify [root=/path]
//
// Frames on stdin/stdout are: type byte, big-endian uint32 length, payload.
// The server answers with exactly one Ok frame (payload: the file for get,
// JSON otherwise) or one Err frame (JSON WireError), and only after the
// operation is complete, e.g. after fsync and link for push.
const (
	OpPrefix       = "pgwarm-wal-op"
	FrameData byte = 'D'
	FrameOK   byte = 'O'
	FrameErr  byte = 'E'
	maxFrame       = 1<<30 + 1<<20 // a 1 GiB segment stored uncompressed, plus slack
)

// Request is a parsed operation line.
type Request struct {
	Op     string
	Name   segname.Name
	Root   string
	Marker string
	Wait   time.Duration
	DryRun bool
	// cleanup: the client's --as (serve only checks it against the key's
	// own name), --standbys (added to the standbys serve waits for) and
	// --streaming (see CleanupOptions).
	As        string
	Standbys  []string
	Streaming bool
}

// Ops are the operations serve knows.
var Ops = []string{"push", "get", "cleanup", "list", "verify"}

// String renders the request as the remote command line. Every part is
// either a fixed word, a parsed WAL name, or validated by ParseRequest, so
// nothing needs shell quoting.
func (r Request) String() string {
	parts := []string{OpPrefix, r.Op}
	if r.Op == "push" || r.Op == "get" || r.Op == "cleanup" {
		parts = append(parts, r.Name.String())
	}
	if r.Root != "" {
		parts = append(parts, "root="+r.Root)
	}
	if r.Marker != "" {
		parts = append(parts, "marker="+r.Marker)
	}
	if r.Wait > 0 {
		parts = append(parts, "wait="+strconv.FormatInt(r.Wait.Milliseconds(), 10))
	}
	if r.As != "" {
		parts = append(parts, "as="+r.As)
	}
	if len(r.Standbys) > 0 {
		parts = append(parts, "standbys="+strings.Join(r.Standbys, ","))
	}
	if r.Streaming {
		parts = append(parts, "streaming")
	}
	if r.DryRun {
		parts = append(parts, "dry-run")
	}
	return strings.Join(parts, " ")
}

// ParseRequest validates a command line strictly: known operation, WAL
// names that parse, no shell metacharacters, no relative paths.
func ParseRequest(line string) (Request, error) {
	bad := func(format string, a ...any) (Request, error) {
		return Request{}, Errorf(KindBadInput, "refused request %q: "+format, append([]any{line}, a...)...)
	}
	if len(line) > 4096 || strings.ContainsAny(line, "\x00\n\r\t;&|`$<>'\"\\*?") {
		return bad("contains characters no pgwarm-wal request has")
	}
	f := strings.Split(line, " ")
	if len(f) < 2 || f[0] != OpPrefix {
		return bad("not a pgwarm-wal request (want %q followed by an operation); this key only runs pgwarm-wal serve", OpPrefix)
	}
	r := Request{Op: f[1]}
	rest := f[2:]
	switch r.Op {
	case "push", "get", "cleanup":
		if len(rest) == 0 {
			return bad("%s needs a WAL file name", r.Op)
		}
		n, err := segname.Parse(rest[0])
		if err != nil {
			return bad("%v", err)
		}
		if r.Op == "cleanup" && n.Kind != segname.Segment {
			return bad("cleanup needs a segment name")
		}
		r.Name, rest = n, rest[1:]
	case "list", "verify":
	default:
		return bad("unknown operation %q", r.Op)
	}
	for _, a := range rest {
		k, v, _ := strings.Cut(a, "=")
		switch {
		case k == "root" && strings.HasPrefix(v, "/") && !strings.Contains(v, "/../") && !strings.HasSuffix(v, "/.."):
			r.Root = v
		case k == "marker" && r.Op == "push" && validMarker(v) == nil && v != "":
			r.Marker = v
		case k == "wait" && r.Op == "get":
			ms, err := strconv.ParseUint(v, 10, 32)
			if err != nil || ms > 600_000 {
				return bad("wait must be milliseconds up to 600000")
			}
			r.Wait = time.Duration(ms) * time.Millisecond
		case a == "dry-run" && r.Op == "cleanup":
			r.DryRun = true
		case a == "streaming" && r.Op == "cleanup":
			r.Streaming = true
		case k == "as" && r.Op == "cleanup" && r.As == "" && ValidStandbyName(v) == nil:
			r.As = v
		case k == "standbys" && r.Op == "cleanup" && r.Standbys == nil:
			ss, err := ParseStandbys(v)
			if err != nil {
				return bad("%v", err)
			}
			r.Standbys = ss
		default:
			return bad("unexpected argument %q", a)
		}
	}
	return r, nil
}

// ParseStandbys reads a comma-separated list of standby names (--standbys).
func ParseStandbys(v string) ([]string, error) {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if err := ValidStandbyName(s); err != nil {
			return nil, err
		}
		if !hasString(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

// WireError is an Err frame's payload.
type WireError struct {
	Kind Kind   `json:"kind"`
	Msg  string `json:"message"`
}

// WriteFrame writes one frame.
func WriteFrame(w io.Writer, typ byte, payload []byte) error {
	var h [5]byte
	h[0] = typ
	binary.BigEndian.PutUint32(h[1:], uint32(len(payload)))
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// ReadFrame reads one frame.
func ReadFrame(r io.Reader) (byte, []byte, error) {
	return readFrameLimit(r, maxFrame)
}

// readFrameLimit reads one frame of at most limit bytes, refused before
// anything of its length is allocated.
func readFrameLimit(r io.Reader, limit uint32) (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > limit {
		return 0, nil, &Error{Kind: KindCorrupt, Msg: fmt.Sprintf("an answer of %d bytes, more than such an answer can be (%d)", n, limit)}
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, fmt.Errorf("truncated frame: %w", err)
	}
	return h[0], buf, nil
}

// maxSmallFrame bounds a frame that carries no archived file where one is
// expected (an error's JSON).
const maxSmallFrame = 1 << 20

// ReadFileFrame reads a frame that carries an archived file for n: a
// push's Data frame, a get's Ok frame. The file's header is read first
// and checked against n and segSize (CheckSize: the archive's segment
// size, or 0 where it is not known), and the frame's length against what
// that file can be (MaxFileSize), before anything of that length is
// allocated: no frame makes the reader hold more than one file of the
// size its name allows. Other frames (an Err frame) are small.
func ReadFileFrame(r io.Reader, n segname.Name, segSize uint32) (byte, []byte, error) {
	return readFileFrame(r, n, segSize, Cluster{})
}

// readFileFrame is ReadFileFrame for a reader of cluster c: a file of
// another cluster is refused at its header, before its body is read.
func readFileFrame(r io.Reader, n segname.Name, segSize uint32, c Cluster) (byte, []byte, error) {
	var fh [5]byte
	if _, err := io.ReadFull(r, fh[:]); err != nil {
		return 0, nil, err
	}
	typ, size := fh[0], binary.BigEndian.Uint32(fh[1:])
	if (typ != FrameData && typ != FrameOK) || size < walfile.HeaderSize {
		if size > maxSmallFrame {
			return 0, nil, fmt.Errorf("frame %q of %d bytes where %s was expected", typ, size, n)
		}
		buf := make([]byte, size)
		if _, err := io.ReadFull(r, buf); err != nil {
			return 0, nil, fmt.Errorf("truncated frame: %w", err)
		}
		return typ, buf, nil
	}
	hb := make([]byte, walfile.HeaderSize)
	if _, err := io.ReadFull(r, hb); err != nil {
		return 0, nil, fmt.Errorf("truncated frame: %w", err)
	}
	h, err := walfile.UnmarshalHeader(hb)
	if err == nil {
		if ferr := c.CheckHeader(n, h); ferr != nil {
			return 0, nil, ferr
		}
		err = CheckSize(n, h, segSize)
	}
	if err == nil && uint64(size) > MaxFileSize(h) {
		err = fmt.Errorf("%w: %d bytes sent for %s, more than a file whose header says %d stored bytes can take (%d)", walfile.ErrCorrupt, size, n, h.Stored, MaxFileSize(h))
	}
	if err != nil {
		return 0, nil, &Error{Kind: KindCorrupt, Err: err, Msg: fmt.Sprintf("refusing the file sent for %s before reading it: %v", n, err)}
	}
	buf := make([]byte, size)
	copy(buf, hb)
	if _, err := io.ReadFull(r, buf[walfile.HeaderSize:]); err != nil {
		return 0, nil, fmt.Errorf("truncated frame: %w", err)
	}
	return typ, buf, nil
}

// WriteError sends err as an Err frame, keeping its Kind.
func WriteError(w io.Writer, err error) error {
	b, _ := json.Marshal(WireError{Kind: KindOf(err), Msg: err.Error()})
	return WriteFrame(w, FrameErr, b)
}
