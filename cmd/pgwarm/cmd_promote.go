package main

import (
	"os"
	"time"

	"github.com/pgwarm/pgwarm/inventory"
	"github.com/pgwarm/pgwarm/ops"
	"github.com/urfave/cli/v2"
)

func promoteCommand() *cli.Command {
	return &cli.Command{
		Name:      "promote",
		Usage:     "end recovery on a standby; fence the old primary when reachable",
		ArgsUsage: "[HOST]",
		Description: "Promotes HOST, or the only running standby. First fences every host that is or may\n" +
			"be a primary: switches its WAL, stops it fast and disables its automatic start\n" +
			"(rebuild re-enables it); one that cannot be reached is reported and skipped. Lets\n" +
			"the new primary add to an ssh archive, promotes with pg_ctl promote, waits until a\n" +
			"write is acknowledged and prints the time from the start of the command to it.",
		Flags: []cli.Flag{inventoryFlag(),
			&cli.BoolFlag{Name: "update-inventory", Usage: "write the swapped roles into the inventory file (comments kept)"},
			&cli.DurationFlag{Name: "timeout", Value: time.Minute, Usage: "wait at most `D` for the promoted host to accept a write"},
			&cli.DurationFlag{Name: "connect-timeout", Value: 10 * time.Second, Usage: "SSH connect timeout per host"},
			&cli.DurationFlag{Name: "fence-timeout", Value: 3 * time.Second, Usage: "SSH connect timeout for the inventory's primary: unreachable after `D`, it is reported as not fenced"},
		},
		Action: promoteAction,
	}
}

func promoteAction(c *cli.Context) error {
	if c.NArg() > 1 {
		return exitStatus{code: 1, msg: "pgwarm promote: at most one HOST"}
	}
	inv, err := inventory.Load(c.String("inventory"))
	if err != nil {
		return err
	}
	pool, err := ops.NewPoolWith(inv, c.Duration("connect-timeout"), map[string]time.Duration{inv.Primary().Name: c.Duration("fence-timeout")})
	if err != nil {
		return err
	}
	defer pool.Close()
	p := &ops.Printer{W: c.App.Writer, Color: c.App.Writer == os.Stdout && ops.UseColor(os.Stdout)}
	return ops.Promote(c.Context, inv, pool, ops.PromoteOptions{
		Target: c.Args().First(), WriteTimeout: c.Duration("timeout"), UpdateInventory: c.Bool("update-inventory"),
	}, p)
}
