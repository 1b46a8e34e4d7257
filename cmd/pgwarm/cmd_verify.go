package main

import (
	"time"

	"github.com/pgwarm/pgwarm/inventory"
	"github.com/pgwarm/pgwarm/ops"
	"github.com/urfave/cli/v2"
)

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:   "verify",
		Usage:  "write a canary on the primary and wait until the standby has replayed it",
		Flags:  append([]cli.Flag{inventoryFlag(), &cli.DurationFlag{Name: "timeout", Value: 2 * time.Minute, Usage: "give up after `D`"}}, sshFlags()...),
		Before: noArgs,
		Action: verifyAction,
	}
}

func verifyAction(c *cli.Context) error {
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
	return ops.Verify(c.Context, inv, pool, c.Duration("timeout"), p)
}
