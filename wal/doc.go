// Package wal implements pgwarm-wal, the WAL archive helper that replaces the
// seed's archive_command (test -f mounted && test ! -f && rsync) and
// pg_standby. Ship and Restore are the two halves PostgreSQL calls; the
// storage backends live in wal/archive, the ssh far end in wal/serve, file
// names and range logic in wal/segname, the stored file format in
// wal/walfile.
//
// # Guarantees
//
//   - ship exits 0 only after the file is durable: temp file, fsync, link
//     into place (never overwriting), fsync of the directory. The same
//     content already archived is success; different content is a conflict
//     and the archive is untouched. A kill -9 at any moment leaves at most a
//     .tmp- file, never an incomplete file under the final name.
//   - the archive root records the cluster's system identifier (from the WAL
//     long page header) on first use; WAL of another cluster is refused, on
//     ship and, should some have got in, on restore (checked beside the
//     files: locally, or by serve on the archive host).
//   - no link is followed inside the archive: archived files and
//     pgwarm-archive.json are opened O_NOFOLLOW, regular files only (a link,
//     FIFO or device under a WAL name is refused by name and reported by
//     list and verify as a foreign file), and ROOT/wal must be a directory.
//     The archive root, DEST's directory, --spool and --trigger are the
//     operator's paths and may be links. Restore's and the spool's temp
//     files are new files under random names (O_EXCL|O_NOFOLLOW).
//   - restore stops, and writes nothing, once the server process that
//     started it is gone (parent or, with a forking /bin/sh between,
//     grandparent): an orphan must not write into a data directory that a
//     new server may own.
//   - every archived file carries a sha256 of its stored bytes (files of
//     older versions: of their content), and zstd frames carry zstd's
//     checksum of what was compressed; restore checks both (and that the
//     first WAL page belongs at that name) before writing DEST atomically.
//     The archive refuses a file whose bytes do not match its sha256.
//   - cleanup records each standby's restart point (%r) under its name
//     (over ssh the name of its key) and removes only segments before the
//     oldest restart point of all standbys, on that point's timeline, and
//     nothing until every standby has reported; never history or backup
//     files. A restart point beyond the newest archived segment of its
//     timeline is refused (--streaming: lowered to it).
//   - history and backup history files are stored, and handed to
//     PostgreSQL, only when they parse as what PostgreSQL writes (a
//     timeline history file it cannot read stops a standby with FATAL).
//   - over ssh a key writes one timeline (push@T): segments and backup
//     files of T (and those left over from earlier timelines, which a
//     rewound primary archives after its promotion), T's history file,
//     the .partial of the timeline T branched from; never a file of a
//     later timeline nor another timeline's history, so a primary cannot
//     take the next timeline ahead of a promotion. pgwarm promote and
//     apply move push@T.
//   - memory is bounded on any input: every reader (serve's push, get,
//     restore, verify) bounds an archived file by what its name allows
//     before reading it (a segment: the archive's wal_segment_size from
//     pgwarm-archive.json, or the header's claim in an archive not bound
//     yet; a history or backup file: 1 MiB), decodes it as a stream that
//     stops one byte past the header's stored length, and checks every
//     WAL page header (PostgreSQL's rules) as it is decoded, so a crafted
//     file is refused at its first bad page. Peak RSS stays within 64 MiB
//     plus one segment (TestBoundedMemory). pgwarm apply binds the
//     archive it provisions; an archive used without apply is bound by
//     the first WAL file that passes every check.
//
// # Exit codes
//
// No ordinary failure exits above 125: PostgreSQL treats higher codes from
// archive/restore commands as fatal.
//
//	0   success (ship: durable or identical copy already archived)
//	1   restore: file not in the archive, or recovery ended by the trigger file,
//	    or the server that started it is gone; any other unclassified error
//	2   bad input: invalid WAL file name, archive URL, flags, or source file
//	3   conflict: different content is already archived under that name
//	4   checksum mismatch or damaged archived file
//	5   foreign cluster: WAL of another system identifier / segment size; or
//	    a link, FIFO or device where an archived file should be
//	6   --require-marker file missing (archive probably not mounted)
//	7   permission denied, or operation not allowed for this ssh key
//	8   archive filesystem full
//	9   archive host unreachable over ssh
//	10  verify: segments missing inside a timeline (gaps)
//	70  internal error (a bug: a recovered panic)
//	143 only when stopped by SIGTERM (130 for SIGINT), as the shell reports
//	    a signal, which is what PostgreSQL expects during shutdown
package wal

import "github.com/pgwarm/pgwarm/wal/archive"

// Exit codes, see the package documentation.
const (
	ExitOK          = 0
	ExitNotFound    = 1
	ExitBadInput    = 2
	ExitConflict    = 3
	ExitCorrupt     = 4
	ExitForeign     = 5
	ExitMarker      = 6
	ExitDenied      = 7
	ExitNoSpace     = 8
	ExitUnreachable = 9
	ExitGaps        = 10
	ExitInternal    = 70
	ExitSIGINT      = 130
	ExitSIGTERM     = 143
)

// ExitCode is the one place errors become exit statuses.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	switch archive.KindOf(err) {
	case archive.KindNotFound:
		return ExitNotFound
	case archive.KindBadInput:
		return ExitBadInput
	case archive.KindConflict:
		return ExitConflict
	case archive.KindCorrupt:
		return ExitCorrupt
	case archive.KindForeign:
		return ExitForeign
	case archive.KindMarker:
		return ExitMarker
	case archive.KindDenied:
		return ExitDenied
	case archive.KindNoSpace:
		return ExitNoSpace
	case archive.KindUnreachable:
		return ExitUnreachable
	case archive.KindGaps:
		return ExitGaps
	}
	return 1
}

// ExitHelp is the exit-code table for --help.
const ExitHelp = `EXIT CODES (never above 125 for ordinary failures):
   0   success (ship: durable, or the identical file was already archived)
   1   restore: file not in the archive / recovery ended by trigger / its server is gone; other errors
   2   bad input: invalid WAL name, archive URL, flag or source file
   3   different content is already archived under that name (archive untouched)
   4   checksum mismatch / damaged archived file (restore refuses it)
   5   WAL of another cluster (system identifier differs from the archive's), or a
       link/FIFO/device where an archived file should be (never followed)
   6   --require-marker file missing (archive probably not mounted)
   7   permission denied, or operation not allowed for this ssh key
   8   archive filesystem full
   9   archive host unreachable over ssh
   10  verify: segments missing inside a timeline
   70  internal error (bug)
   143 stopped by SIGTERM (130 SIGINT), as PostgreSQL expects at shutdown`
