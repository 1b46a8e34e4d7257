package main

import (
	"github.com/urfave/cli/v2"
)

func validateCommand() *cli.Command {
	return &cli.Command{
		Name:   "validate",
		Usage:  "check the inventory offline",
		Flags:  []cli.Flag{inventoryFlag()},
		Action: notImplemented("validate"),
	}
}
