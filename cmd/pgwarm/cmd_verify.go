package main

import (
	"github.com/urfave/cli/v2"
	"time"
)

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:   "verify",
		Usage:  "write a canary on the primary and wait until the standby has replayed it",
		Flags:  []cli.Flag{inventoryFlag(), &cli.DurationFlag{Name: "timeout", Value: 2 * time.Minute, Usage: "give up after `D`"}},
		Action: notImplemented("verify"),
	}
}
