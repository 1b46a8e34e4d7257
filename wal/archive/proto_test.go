package archive

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/pgwarm/pgwarm/wal/segname"
	"github.com/pgwarm/pgwarm/wal/walfile"
)

// A file frame is bounded by its name before it is read: only its 5-byte
// frame header and the file's 80-byte header are read (here nothing else
// is there, so reading on would fail as truncated) when the length or the
// header cannot be that file.
func TestReadFileFrameBoundsBeforeReading(t *testing.T) {
	seg, _ := segname.Parse("000000010000000000000005")
	hist, _ := segname.Parse("00000002.history")
	frameOf := func(h walfile.Header, length uint32) []byte {
		var b bytes.Buffer
		b.WriteByte(FrameData)
		binary.Write(&b, binary.BigEndian, length)
		b.Write(h.Marshal())
		return b.Bytes()
	}
	small := walfile.Header{Compression: walfile.Zstd, SumKind: walfile.SumBody, SegSize: 16 << 20, Size: 16 << 20, SysID: 1, Stored: 8192}
	huge := small
	huge.SegSize, huge.Size, huge.Stored = 1<<30, 1<<30, 1<<30
	text := walfile.Header{Compression: walfile.Zstd, SumKind: walfile.SumBody, Size: 16 << 20, Stored: 16 << 20}
	for _, c := range []struct {
		what    string
		name    segname.Name
		frame   []byte
		segSize uint32
		want    string
	}{
		{"1 GiB frame for one claimed page", seg, frameOf(small, 1<<30), 16 << 20, "more than a file whose header says 8192 stored bytes can take"},
		{"1 GiB segment in a 16 MiB archive", seg, frameOf(huge, 1<<30), 16 << 20, "the archive's are 16777216"},
		{"16 MiB history file", hist, frameOf(text, 16<<20), 0, "more than a history file can be"},
	} {
		_, _, err := ReadFileFrame(bytes.NewReader(c.frame), c.name, c.segSize)
		if KindOf(err) != KindCorrupt || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: kind %v, %v", c.what, KindOf(err), err)
		}
	}
	// An error frame is read as it is, and small.
	var b bytes.Buffer
	WriteFrame(&b, FrameErr, []byte(`{"kind":1,"message":"no"}`))
	if typ, p, err := ReadFileFrame(&b, seg, 0); err != nil || typ != FrameErr || !strings.Contains(string(p), "no") {
		t.Errorf("error frame: %q %q %v", typ, p, err)
	}
	b.Reset()
	b.Write([]byte{FrameErr, 0x40, 0, 0, 0})
	if _, _, err := ReadFileFrame(&b, seg, 0); err == nil {
		t.Error("a 1 GiB error frame was accepted")
	}
}
