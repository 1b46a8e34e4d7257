package main

import (
	"os"
	"time"

	"github.com/pgwarm/pgwarm/apply"
	"github.com/pgwarm/pgwarm/inventory"
	"github.com/pgwarm/pgwarm/ops"
	"github.com/urfave/cli/v2"
)

func rebuildCommand() *cli.Command {
	return &cli.Command{
		Name:      "rebuild",
		Usage:     "reseed HOST as a standby of the current primary",
		ArgsUsage: "HOST",
		Description: "Refuses when HOST is the live primary, or accepts writes while no other host is\n" +
			"primary on a newer timeline. A former primary that came back on an older timeline\n" +
			"than the current primary's is stopped first. auto tries pg_rewind and falls back\n" +
			"to a base backup; then the standby settings for the current primary are written,\n" +
			"its automatic start re-enabled, it is started and proven to replay a canary.",
		Flags: append([]cli.Flag{inventoryFlag(),
			&cli.StringFlag{Name: "method", Value: "auto", Usage: "auto|rewind|basebackup"},
			&cli.DurationFlag{Name: "timeout", Value: 5 * time.Minute, Usage: "wait at most `D` for the rebuilt standby to replay the canary"},
			&cli.BoolFlag{Name: "force-unlock", Usage: "remove an apply lock on the primary left by a run that is known to be dead"},
		}, sshFlags()...),
		Action: rebuildAction,
	}
}

func rebuildAction(c *cli.Context) error {
	if err := checkArgs(c, 1, 1, "one HOST"); err != nil {
		return err
	}
	inv, err := inventory.Load(c.String("inventory"))
	if err != nil {
		return err
	}
	pool, err := newPool(c, inv, nil)
	if err != nil {
		return err
	}
	defer pool.Close()
	p := &ops.Printer{W: c.App.Writer, Color: colour(c.App.Writer)}
	return ops.Rebuild(c.Context, inv, pool, ops.RebuildOptions{
		Target: c.Args().First(), Method: c.String("method"), VerifyTimeout: c.Duration("timeout"),
		Password: os.Getenv(inv.Replication.PasswordEnv),
		Lock:     apply.LockOptions{Cmd: "rebuild", Holder: holder(), PidAlive: pidAlive, ForceUnlock: c.Bool("force-unlock")},
	}, p)
}
