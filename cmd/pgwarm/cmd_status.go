package main

import (
	"encoding/json"
	"fmt"

	"github.com/pgwarm/pgwarm/inventory"
	"github.com/pgwarm/pgwarm/ops"
	"github.com/urfave/cli/v2"
)

func statusCommand() *cli.Command {
	def := ops.DefaultThresholds()
	return &cli.Command{
		Name:  "status",
		Usage: "one row per host: role, state, timeline, LSNs, lag, archiver health",
		Flags: append([]cli.Flag{inventoryFlag(), &cli.BoolFlag{Name: "json", Usage: "print JSON"},
			&cli.StringFlag{Name: "max-lag", Value: "64MiB", Usage: "a standby further behind than `SIZE` (bytes, kB/MB/GB, KiB/MiB/GiB) is degraded"},
			&cli.DurationFlag{Name: "max-lag-time", Value: def.MaxLagTime, Usage: "a standby behind for longer than `D` is degraded"},
		}, sshFlags()...),
		Before: noArgs,
		Action: statusAction,
	}
}

func statusAction(c *cli.Context) error {
	inv, err := inventory.Load(c.String("inventory"))
	if err != nil {
		return err
	}
	th := ops.DefaultThresholds()
	if th.MaxLagBytes, err = ops.ParseSize(c.String("max-lag")); err != nil {
		return fmt.Errorf("--max-lag: %w", err)
	}
	th.MaxLagTime = c.Duration("max-lag-time")
	pool, err := newPool(c, inv, nil)
	if err != nil {
		return err
	}
	defer pool.Close()
	r := ops.Observe(c.Context, inv, pool)
	ops.Evaluate(r, inv.Replication.Mode, th)
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else {
		p := &ops.Printer{W: c.App.Writer, Color: colour(c.App.Writer)}
		p.Table(r)
	}
	if code := r.Health.ExitCode(); code != 0 {
		return exitStatus{code: code} // the problems are in the output already
	}
	return nil
}
