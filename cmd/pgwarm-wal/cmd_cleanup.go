package main

import (
	"fmt"

	"github.com/pgwarm/pgwarm/wal"
	"github.com/pgwarm/pgwarm/wal/archive"
	"github.com/pgwarm/pgwarm/wal/segname"
	"github.com/urfave/cli/v2"
)

func cleanupCommand() *cli.Command {
	return &cli.Command{
		Name:      "cleanup",
		Usage:     "archive_cleanup_command: remove segments before OLDEST on its timeline (%r); never history files",
		ArgsUsage: "OLDEST",
		Flags: append(archiveFlags(),
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "print what would be removed"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "print every removed file"},
		),
		Action: func(c *cli.Context) error {
			oldest := c.Args().Get(0)
			if err := needArgs(c, "OLDEST"); err != nil {
				return fail("cleanup", oldest, err)
			}
			n, err := wal.ParseName(oldest)
			if err != nil {
				return fail("cleanup", oldest, err)
			}
			if n.Kind != segname.Segment {
				return fail("cleanup", oldest, archive.Errorf(archive.KindBadInput, "OLDEST must be a segment name (%%r), not a %s file", n.Kind))
			}
			a, err := openArchive(c)
			if err != nil {
				return fail("cleanup", oldest, err)
			}
			defer a.Close()
			removed, err := a.Cleanup(c.Context, n, c.Bool("dry-run"))
			if c.Bool("dry-run") || c.Bool("verbose") {
				verb := "removed"
				if c.Bool("dry-run") {
					verb = "would remove"
				}
				for _, r := range removed {
					fmt.Fprintf(c.App.Writer, "%s %s\n", verb, r)
				}
			}
			return fail("cleanup", oldest, err)
		},
	}
}
