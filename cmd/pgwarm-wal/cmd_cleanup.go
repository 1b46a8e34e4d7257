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
		Name: "cleanup",
		Usage: "archive_cleanup_command: record this standby's restart point (%r) and remove segments before the oldest restart point " +
			"of all standbys, on its timeline; never history files",
		ArgsUsage: "OLDEST",
		Description: "With several standbys each one runs cleanup with --as (its host name) and --standbys (all of them);\n" +
			"nothing is removed until every standby has reported, and never what one of them still needs.\n" +
			"Over ssh the archive host knows the name from the key (serve --as) and the standbys from its rights file.\n" +
			"OLDEST beyond the newest archived segment of its timeline is refused, or with --streaming lowered to it.",
		Flags: append(archiveFlags(),
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "print what would be removed, and why; record nothing"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "print every removed file and the restart points that decided it"},
			&cli.StringFlag{Name: "as", Usage: "record OLDEST as the restart point of standby `HOST`"},
			&cli.StringFlag{Name: "standbys", Usage: "`HOST,...`: every standby of the archive; each must have reported before anything is removed"},
			&cli.BoolFlag{Name: "streaming", Usage: "this standby streams: OLDEST ahead of the archive is lowered to the newest archived segment instead of refused"},
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
			opt := archive.CleanupOptions{DryRun: c.Bool("dry-run"), Streaming: c.Bool("streaming"), As: c.String("as")}
			if s := c.String("standbys"); s != "" {
				if opt.Standbys, err = archive.ParseStandbys(s); err != nil {
					return fail("cleanup", oldest, fmt.Errorf("--standbys: %w", err))
				}
				// For a local or NFS archive the list is the whole set
				// (serve ignores this and trusts only its rights file).
				opt.OnlyStandbys = true
			}
			a, err := openArchive(c)
			if err != nil {
				return fail("cleanup", oldest, err)
			}
			defer a.Close()
			res, err := a.Cleanup(c.Context, n, opt)
			if c.Bool("dry-run") || c.Bool("verbose") {
				verb := "removed"
				if c.Bool("dry-run") {
					verb = "would remove"
				}
				for _, line := range res.Explain() {
					fmt.Fprintln(c.App.Writer, line)
				}
				for _, r := range res.Removed {
					fmt.Fprintf(c.App.Writer, "%s %s\n", verb, r)
				}
			}
			return fail("cleanup", oldest, err)
		},
	}
}
