package main

import (
	"github.com/urfave/cli/v2"
)

func promoteCommand() *cli.Command {
	return &cli.Command{
		Name:   "promote",
		Usage:  "end recovery on a standby; fence the old primary when reachable",
		Flags:  []cli.Flag{inventoryFlag()},
		Action: notImplemented("promote"),
	}
}
