// Command pgwarm-wal is the WAL archive helper: archive_command (ship),
// restore_command (restore), archive_cleanup_command (cleanup), operator
// checks (verify, list) and the ssh forced command on the archive host
// (serve). See wal/doc.go for guarantees and exit codes.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/pgwarm/pgwarm/internal/cliargs"
	"github.com/pgwarm/pgwarm/wal"
	"github.com/pgwarm/pgwarm/wal/archive"
	"github.com/urfave/cli/v2"
)

func main() {
	// One short-lived process per segment: garbage collection over a heap of
	// a few 16 MiB buffers only costs time, so collect only near the limit.
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(memoryLimit)
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// memoryLimit is what a pgwarm-wal process may hold besides the one
// segment it works on: its budget is 64 MiB of RSS plus one segment, and
// the binary and runtime take ~8 MiB. With the collector off, garbage
// grows to the limit before anything is collected, so the limit is
// resident memory for any command that allocates more than it (verify
// reads every file; the limit was 512 MiB). A live heap above it (1 GiB
// segments) only makes the few allocations after that collect: the heap
// is a handful of large buffers without pointers, cheap to mark. Ship
// sets its own (cmd_ship.go).
const memoryLimit = 48 << 20

// cmdError carries which command and file an error is about, so main can
// print the one-line "pgwarm-wal ship 0000...03: cause" message.
type cmdError struct {
	cmd, subject string
	err          error
}

func (e *cmdError) Error() string { return e.err.Error() }
func (e *cmdError) Unwrap() error { return e.err }

func fail(cmd, subject string, err error) error {
	if err == nil {
		return nil
	}
	return &cmdError{cmd: cmd, subject: subject, err: err}
}

// run is main without os.Exit, so tests can drive the whole CLI.
func run(args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		// A bug must not turn into exit 2 from the Go runtime or, worse, a
		// code above 125 that PostgreSQL treats as fatal.
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "pgwarm-wal: internal error (please report): %v\n%s", r, debug.Stack())
			code = wal.ExitInternal
		}
	}()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	var got os.Signal
	done := make(chan struct{})
	defer close(done)
	sigSeen := make(chan os.Signal, 1)
	go func() {
		select {
		case s := <-sigs:
			sigSeen <- s
			stop()
		case <-done:
		}
	}()

	app := newApp(stdout, stderr)
	err := app.RunContext(ctx, cliargs.Reorder(app, args))
	select {
	case got = <-sigSeen:
	default:
	}
	// A restore whose server died gets SIGTERM from the kernel; it says
	// so and exits 1 (see parentGoneError), not as a stop would.
	if got != nil && !errors.Is(err, errParentGone) {
		fmt.Fprintf(stderr, "pgwarm-wal: stopped by %v\n", got)
		if got == syscall.SIGINT {
			return wal.ExitSIGINT
		}
		return wal.ExitSIGTERM
	}
	return exitCode(err, stderr)
}

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var ce *cmdError
	prefix := "pgwarm-wal"
	if errors.As(err, &ce) {
		prefix = strings.TrimSpace("pgwarm-wal " + ce.cmd + " " + ce.subject)
	}
	code := wal.ExitCode(err)
	if ce == nil && archive.KindOf(err) == archive.KindOther {
		code = wal.ExitBadInput // flag parsing errors from urfave/cli
	}
	fmt.Fprintf(stderr, "%s: %s\n", prefix, oneLine(err.Error()))
	return code
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func archiveFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "archive", Usage: "archive `URL`: /path, file:///path or ssh://user@host[:port]/path", EnvVars: []string{"PGWARM_WAL_ARCHIVE"}},
		&cli.StringFlag{Name: "require-marker", Usage: "refuse to work unless `NAME` exists in the archive root (the seed's \"mounted\" check)"},
	}
}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:  "pgwarm-wal",
		Usage: "ship, restore and check PostgreSQL WAL archives without losing, overwriting or corrupting a segment",
		Description: "archive_command         = 'pgwarm-wal ship --archive URL %p %f'\n" +
			"restore_command         = 'pgwarm-wal restore --archive URL %f %p'   (warm standby: add --wait --trigger FILE)\n" +
			"archive_cleanup_command = 'pgwarm-wal cleanup --archive URL --as HOST --standbys HOST,... %r'   (streaming: add --streaming)\n\n" +
			"URL is /path or file:///path (a local or NFS-mounted directory) or ssh://user@host[:port]/path,\n" +
			"whose far end is 'pgwarm-wal serve --root DIR --allow OPS' as an authorized_keys forced command.\n" +
			"The ssh command is ssh (BatchMode) unless PGWARM_WAL_SSH overrides it.\n\n" + wal.ExitHelp,
		HideHelpCommand: true,
		Writer:          stdout,
		ErrWriter:       stderr,
		Flags:           archiveFlags(),
		Commands: []*cli.Command{
			shipCommand(), restoreCommand(), cleanupCommand(), verifyCommand(), listCommand(), serveCommand(),
		},
		ExitErrHandler: func(*cli.Context, error) {}, // exit codes are decided in exitCode
	}
}

// openArchive opens --archive from the command or the global flags.
func openArchive(c *cli.Context) (archive.Archive, error) {
	return openArchiveFor(c, archive.Cluster{})
}

// openArchiveFor opens the archive for a reader of cluster (restore).
func openArchiveFor(c *cli.Context, cluster archive.Cluster) (archive.Archive, error) {
	url := c.String("archive")
	if url == "" {
		return nil, archive.Errorf(archive.KindBadInput, "--archive URL is required")
	}
	return archive.Open(url, archive.Options{RequireMarker: c.String("require-marker"), Cluster: cluster})
}

func needArgs(c *cli.Context, names ...string) error {
	if c.NArg() != len(names) {
		return archive.Errorf(archive.KindBadInput, "expected %d arguments (%s), got %d (a file name that starts with - goes after --)", len(names), strings.Join(names, " "), c.NArg())
	}
	return nil
}
