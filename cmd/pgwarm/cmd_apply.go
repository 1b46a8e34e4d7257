package main

import (
	"github.com/urfave/cli/v2"
)

func applyCommand() *cli.Command {
	return &cli.Command{
		Name:   "apply",
		Usage:  "apply a saved plan (refusing a stale one) or plan and apply",
		Flags:  []cli.Flag{inventoryFlag(), &cli.BoolFlag{Name: "auto-approve", Usage: "do not ask for confirmation"}},
		Action: notImplemented("apply"),
	}
}
