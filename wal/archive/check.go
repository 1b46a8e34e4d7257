package archive

import (
	"fmt"
	"sort"

	"github.com/pgwarm/pgwarm/wal/segname"
	"github.com/pgwarm/pgwarm/wal/walfile"
)

// VerifiedFile is the result of checking one archived file's bytes.
type VerifiedFile struct {
	Name   segname.Name
	Header walfile.Header
	Err    error // nil when intact
}

// CheckFile fully checks one archived file: header, decompression,
// checksum, for WAL that the content matches its name and header (a
// file renamed by hand, or a header lying about the cluster, is caught)
// and every page header, and for history and backup files that they parse
// as one (CheckContentKind). segSize is the archive's wal_segment_size, or
// 0 when unknown. WAL content is checked as it streams by, never held;
// text files are small (maxTextFile) and parsed whole.
func CheckFile(n segname.Name, file []byte, segSize uint32) VerifiedFile {
	h, err := walfile.UnmarshalHeader(file)
	if err != nil {
		return VerifiedFile{Name: n, Header: h, Err: err}
	}
	lim, err := LimitFor(n, h, segSize)
	if err != nil {
		return VerifiedFile{Name: n, Header: h, Err: err}
	}
	if !n.HasWALContent() {
		content, _, err := walfile.DecodeLimited(file, lim)
		if err == nil {
			err = CheckContentKind(n, content)
		}
		return VerifiedFile{Name: n, Header: h, Err: err}
	}
	_, err = walfile.CheckLimited(file, lim)
	return VerifiedFile{Name: n, Header: h, Err: err}
}

// maxTextFile bounds the content of a history or backup history file. A
// timeline history file is one line per timeline switch ("2\t0/3000000\t
// reason", under 100 bytes with PostgreSQL's own reasons), a backup
// history file a backup label (a dozen lines of at most MAXPGPATH): 1 MiB
// is ten thousand promotions, and what a crafted one can cost a reader.
const maxTextFile = 1 << 20

// CheckSize refuses a header whose content size cannot be the file its
// name says, before anything allocates that size: a segment (or
// .partial) is exactly one wal_segment_size, history and backup files are
// text. segSize, when not zero, is the archive's wal_segment_size (its
// pgwarm-archive.json): the header's own claim is not enough, since a
// segment of 1 GiB that says so is self-consistent. Checked on every push
// and before every reader decodes.
func CheckSize(n segname.Name, h walfile.Header, segSize uint32) error {
	switch {
	case n.HasWALContent() && segSize != 0 && h.SegSize != segSize:
		return fmt.Errorf("%w: %s says the cluster's segments are %d bytes, the archive's are %d", walfile.ErrCorrupt, n, h.SegSize, segSize)
	case n.HasWALContent() && h.Size != uint64(h.SegSize):
		return fmt.Errorf("%w: %s would be %d bytes but its header says the cluster's segments are %d bytes", walfile.ErrCorrupt, n, h.Size, h.SegSize)
	case !n.HasWALContent() && h.Size > maxTextFile:
		return fmt.Errorf("%w: %s would be %d bytes, more than a %s file can be (%d)", walfile.ErrCorrupt, n, h.Size, n.Kind, maxTextFile)
	}
	return nil
}

// LimitFor is what the decoder of a file named n with header h accepts
// (CheckSize first): at most one segment of the archive's size (or, in an
// archive not bound yet, the size the header claims, which CheckSize
// requires to be a WAL segment size) with every page header checked, or
// maxTextFile of text.
func LimitFor(n segname.Name, h walfile.Header, segSize uint32) (walfile.Limit, error) {
	if err := CheckSize(n, h, segSize); err != nil {
		return walfile.Limit{}, err
	}
	if !n.HasWALContent() {
		return walfile.Limit{Size: maxTextFile}, nil
	}
	return walfile.Limit{Size: uint64(h.SegSize), WAL: &walfile.WALPages{
		Start: n.StartLSN(h.SegSize), TLI: n.TLI, Prefix: n.Kind == segname.Partial}}, nil
}

// MaxFileSize is the most bytes an archived file with header h can take:
// the header and a body no larger than what any codec here makes of the
// stored content when it does not compress (deflate's stored blocks and
// zstd's raw blocks add a few bytes per block). A frame longer than that
// is refused before it is read.
func MaxFileSize(h walfile.Header) uint64 {
	return walfile.HeaderSize + h.Stored + h.Stored/64 + 64<<10
}

// DecodeFor decodes an archived file that is to be n: its header's size
// is checked against n and segSize (CheckSize) before anything is
// allocated, then the content is decoded as a stream that stops at the
// limit and at the first bad WAL page (LimitFor). Every reader of
// archived files uses it.
func DecodeFor(n segname.Name, file []byte, segSize uint32) ([]byte, walfile.Header, error) {
	h, err := walfile.UnmarshalHeader(file)
	if err != nil {
		return nil, h, err
	}
	lim, err := LimitFor(n, h, segSize)
	if err != nil {
		return nil, h, err
	}
	return walfile.DecodeLimited(file, lim)
}

// SumFor is DecodeFor that returns the sha256 of the content instead of
// the content: how two files under one name are compared.
func SumFor(n segname.Name, file []byte, segSize uint32) ([32]byte, walfile.Header, error) {
	h, err := walfile.UnmarshalHeader(file)
	if err != nil {
		return [32]byte{}, h, err
	}
	lim, err := LimitFor(n, h, segSize)
	if err != nil {
		return [32]byte{}, h, err
	}
	return walfile.SumLimited(file, lim)
}

// CheckWALContent checks that content's pages belong at name and agree
// with the header's system identifier and segment size: what ship checks
// before it sends a segment, with the rules every reader applies.
func CheckWALContent(n segname.Name, content []byte, h walfile.Header) error {
	if uint64(len(content)) != h.Size {
		return fmt.Errorf("%w: %s is %d bytes, its header says %d", walfile.ErrCorrupt, n, len(content), h.Size)
	}
	lim, err := LimitFor(n, h, 0)
	if err != nil {
		return err
	}
	return walfile.CheckPages(content[:h.Stored], h, *lim.WAL)
}

// BuildReport turns a listing and per-file checks into Verify's findings.
func BuildReport(ls Listing, files []VerifiedFile) Report {
	r := Report{Files: len(ls.Entries) + len(ls.Broken), Timelines: segname.Timelines(ls.Names())}
	var sysid uint64
	segSize := uint32(segname.DefaultSegSize)
	if ls.Meta != nil {
		sysid = ls.Meta.SysIDValue()
		if ls.Meta.SegSize != 0 {
			segSize = ls.Meta.SegSize
		}
	} else if len(ls.Entries) > 0 {
		r.Problems = append(r.Problems, Problem{Kind: KindCorrupt, What: "metadata",
			Msg: MetaFile + " is missing although files are archived; the archive is not bound to a cluster"})
	}
	for _, b := range ls.Broken {
		r.Problems = append(r.Problems, Problem{Kind: KindCorrupt, What: "checksum", Name: b, Msg: "unreadable header"})
	}
	for _, f := range files {
		switch {
		case f.Err != nil:
			r.Problems = append(r.Problems, Problem{Kind: KindCorrupt, What: "checksum", Name: f.Name.String(), Msg: f.Err.Error()})
		case f.Name.HasWALContent() && sysid != 0 && f.Header.SysID != sysid:
			r.Problems = append(r.Problems, Problem{Kind: KindForeign, What: "foreign-cluster", Name: f.Name.String(),
				Msg: fmt.Sprintf("written by cluster %d, archive belongs to %d", f.Header.SysID, sysid)})
		}
	}
	for _, name := range ls.Foreign {
		r.Problems = append(r.Problems, Problem{Kind: KindForeign, What: "foreign-file", Name: name, Msg: "not a WAL file name; pgwarm-wal did not write it"})
	}
	for _, g := range segname.Gaps(ls.Names(), segSize) {
		r.Problems = append(r.Problems, Problem{Kind: KindGaps, What: "gap", Name: g.First.String(), Msg: gapMsg(g, segSize)})
	}
	sort.SliceStable(r.Problems, func(i, j int) bool { return r.Problems[i].Kind < r.Problems[j].Kind })
	return r
}

// Worst is the Kind that decides verify's exit status: corruption beats a
// foreign cluster beats gaps.
func (r Report) Worst() (Kind, bool) {
	order := []Kind{KindCorrupt, KindForeign, KindGaps}
	for _, k := range order {
		for _, p := range r.Problems {
			if p.Kind == k {
				return k, true
			}
		}
	}
	return KindOther, false
}
