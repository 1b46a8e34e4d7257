package main

import (
	"fmt"

	"github.com/pgwarm/pgwarm/wal"
	"github.com/pgwarm/pgwarm/wal/archive"
	"github.com/urfave/cli/v2"
)

func restoreCommand() *cli.Command {
	return &cli.Command{
		Name:      "restore",
		Usage:     "restore_command: check NAME and write it to DEST (%f %p)",
		ArgsUsage: "NAME DEST",
		Flags: append(archiveFlags(),
			&cli.BoolFlag{Name: "wait", Usage: "warm standby: wait for the segment like pg_standby until it arrives or the trigger file appears"},
			&cli.StringFlag{Name: "trigger", Usage: "trigger `FILE` that ends recovery (content \"fast\": now; anything else: after replaying what is archived); with --linger it only cuts the wait short"},
			&cli.IntFlag{Name: "prefetch", Usage: "standby mode: when a segment is archived already (the standby is behind), also fetch the next `N` at once into --spool; later restores take them from there"},
			&cli.StringFlag{Name: "spool", Usage: "directory for --prefetch (created; pgwarm renders its state directory's prefetch/)"},
			&cli.StringFlag{Name: "system-identifier", Usage: "this cluster's system identifier (`N`, pg_controldata's \"Database system identifier\"): WAL of another cluster is refused whatever the archive (host) says; pgwarm renders it"},
			&cli.StringFlag{Name: "segment-size", Usage: "this cluster's wal_segment_size in `BYTES`: bounds what is read from the archive before it is read; pgwarm renders it"},
			&cli.DurationFlag{Name: "linger", Usage: "standby mode: wait up to `D` for a segment that is not archived yet, handing it over the moment it lands; exit 1 after D, or at once when PostgreSQL is asked to promote"},
		),
		Action: func(c *cli.Context) error {
			name := c.Args().Get(0)
			if err := needArgs(c, "NAME", "DEST"); err != nil {
				return fail("restore", name, err)
			}
			if (c.Int("prefetch") > 0) != (c.String("spool") != "") || c.Int("prefetch") < 0 {
				return fail("restore", name, badInput(fmt.Errorf("--prefetch N (N > 0) and --spool DIR go together")))
			}
			cluster, err := archive.ParseCluster(c.String("system-identifier"), c.String("segment-size"))
			if err != nil {
				return fail("restore", name, err)
			}
			a, err := openArchiveFor(c, cluster)
			if err != nil {
				return fail("restore", name, err)
			}
			defer a.Close()
			ctx, parentGone, release := dieWithParent(c.Context)
			defer release()
			err = wal.Restore(ctx, a, name, c.Args().Get(1),
				wal.RestoreOptions{Cluster: cluster, Wait: c.Bool("wait"), Trigger: c.String("trigger"), Linger: c.Duration("linger"),
					Prefetch: wal.Prefetch{Ahead: c.Int("prefetch"), Spool: c.String("spool"), Archive: c.String("archive")}})
			if err != nil && parentGone() {
				err = parentGoneError(c.Args().Get(1))
			}
			return fail("restore", name, err)
		},
	}
}
