package main

import (
	"github.com/urfave/cli/v2"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:   "status",
		Usage:  "one row per host: role, state, timeline, LSNs, lag, archiver health",
		Flags:  []cli.Flag{inventoryFlag(), &cli.BoolFlag{Name: "json", Usage: "print JSON"}},
		Action: notImplemented("status"),
	}
}
