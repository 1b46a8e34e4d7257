package main

import (
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
			"(rebuild re-enables it); one that does not answer within --fence-timeout is reported,\n" +
			"promoted around, then tried again for --late-fence and fenced if it comes back. Lets\n" +
			"the new primary add to an ssh archive, promotes with pg_ctl promote, waits until a\n" +
			"write is acknowledged and prints the time from the start of the command to it.",
		Flags: append([]cli.Flag{inventoryFlag(),
			&cli.BoolFlag{Name: "update-inventory", Usage: "write the swapped roles into the inventory file (comments kept)"},
			&cli.DurationFlag{Name: "timeout", Value: time.Minute, Usage: "wait at most `D` for the promoted host to accept a write"},
			&cli.DurationFlag{Name: "fence-timeout", Value: 500 * time.Millisecond, Usage: "TCP connect timeout for the inventory's primary: no answer within `D` and it is promoted around (then tried again for --late-fence)"},
			&cli.DurationFlag{Name: "late-fence", Value: 10 * time.Second, Usage: "after promoting around an unreachable primary, keep trying for `D` to reach and fence it (0: do not)"},
		}, sshFlags()...),
		Action: promoteAction,
	}
}

func promoteAction(c *cli.Context) error {
	if err := checkArgs(c, 0, 1, "at most one HOST"); err != nil {
		return err
	}
	inv, err := inventory.Load(c.String("inventory"))
	if err != nil {
		return err
	}
	pool, err := newPool(c, inv, map[string]time.Duration{inv.Primary().Name: c.Duration("fence-timeout")})
	if err != nil {
		return err
	}
	defer pool.Close()
	p := &ops.Printer{W: c.App.Writer, Color: colour(c.App.Writer)}
	return ops.Promote(c.Context, inv, pool, ops.PromoteOptions{
		Target: c.Args().First(), WriteTimeout: c.Duration("timeout"), UpdateInventory: c.Bool("update-inventory"),
		LateFence: c.Duration("late-fence"), Redial: redial(c, inv),
	}, p)
}
