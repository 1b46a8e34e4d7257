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
// file renamed by hand, or a header lying about the cluster, is caught),
// and for history and backup files that they parse as one (CheckContentKind).
// segSize is the archive's wal_segment_size, or 0 when unknown.
func CheckFile(n segname.Name, file []byte, segSize uint32) VerifiedFile {
	content, h, err := DecodeFor(n, file, segSize)
	if err != nil {
		return VerifiedFile{Name: n, Header: h, Err: err}
	}
	if n.HasWALContent() {
		if err := CheckWALContent(n, content, h); err != nil {
			return VerifiedFile{Name: n, Header: h, Err: err}
		}
	}
	if err := CheckContentKind(n, content); err != nil {
		return VerifiedFile{Name: n, Header: h, Err: err}
	}
	return VerifiedFile{Name: n, Header: h}
}

// maxTextFile bounds the content of a history or backup history file: a
// line per timeline switch, or one backup label.
const maxTextFile = 16 << 20

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

// DecodeFor decodes an archived file that is to be n: its header's size
// is checked against n and segSize (CheckSize) before anything is
// allocated, then walfile.Decode checks the rest. Every reader of archived
// files uses it.
func DecodeFor(n segname.Name, file []byte, segSize uint32) ([]byte, walfile.Header, error) {
	h, err := walfile.UnmarshalHeader(file)
	if err != nil {
		return nil, h, err
	}
	if err := CheckSize(n, h, segSize); err != nil {
		return nil, h, err
	}
	return walfile.Decode(file)
}

// CheckWALContent checks that content's first page belongs at name and
// agrees with the header's system identifier and segment size.
func CheckWALContent(n segname.Name, content []byte, h walfile.Header) error {
	p, err := walfile.ParseLongHeader(content)
	if err != nil {
		return fmt.Errorf("%w: %v", walfile.ErrCorrupt, err)
	}
	if p.SysID != h.SysID || p.SegSize != h.SegSize {
		return fmt.Errorf("%w: header says cluster %d / segment size %d, WAL says %d / %d", walfile.ErrCorrupt, h.SysID, h.SegSize, p.SysID, p.SegSize)
	}
	if want := n.StartLSN(p.SegSize); p.PageAddr != want {
		return fmt.Errorf("%w: first page is at LSN %X/%08X but %s starts at %X/%08X", walfile.ErrCorrupt,
			p.PageAddr>>32, uint32(p.PageAddr), n, want>>32, uint32(want))
	}
	return nil
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
