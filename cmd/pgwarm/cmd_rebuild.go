package main

import (
	"github.com/urfave/cli/v2"
)

func rebuildCommand() *cli.Command {
	return &cli.Command{
		Name:   "rebuild",
		Usage:  "reseed HOST as a standby of the current primary",
		Flags:  []cli.Flag{inventoryFlag(), &cli.StringFlag{Name: "method", Value: "auto", Usage: "auto|rewind|basebackup"}},
		Action: notImplemented("rebuild"),
	}
}
