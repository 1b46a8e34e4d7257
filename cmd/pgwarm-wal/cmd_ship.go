package main

import (
	"os"
	"runtime/debug"

	"github.com/pgwarm/pgwarm/wal"
	"github.com/pgwarm/pgwarm/wal/walfile"
	"github.com/urfave/cli/v2"
)

func shipCommand() *cli.Command {
	return &cli.Command{
		Name:      "ship",
		Usage:     "archive_command: store PATH durably as NAME (%p %f)",
		ArgsUsage: "PATH NAME",
		Flags: append(archiveFlags(), &cli.StringFlag{
			Name: "compression", Value: "zstd", Usage: "zstd | gzip | none",
		}),
		Action: func(c *cli.Context) error {
			name := c.Args().Get(1)
			if err := needArgs(c, "PATH", "NAME"); err != nil {
				return fail("ship", name, err)
			}
			comp, err := walfile.ParseCompression(c.String("compression"))
			if err != nil {
				return fail("ship", name, badInput(err))
			}
			a, err := openArchive(c)
			if err != nil {
				return fail("ship", name, err)
			}
			defer a.Close()
			if st, err := os.Stat(c.Args().Get(0)); err == nil && st.Size() <= 1<<30 {
				// Ship holds its zstd encoders (~40 MiB live) and the body
				// beside the mapped segment: below memoryLimit it would
				// collect several times a segment, and every collection
				// returns pages that the next frame faults in again
				// (measured: +15% CPU on busy WAL). Its input is
				// PostgreSQL's own file of at most one segment, so its
				// memory is bounded by that: no collection below it.
				debug.SetMemoryLimit(memoryLimit + 4*st.Size())
			}
			return fail("ship", name, wal.Ship(c.Context, a, c.Args().Get(0), name, comp))
		},
	}
}
