package main

import (
	"github.com/urfave/cli/v2"
)

func planCommand() *cli.Command {
	return &cli.Command{
		Name:   "plan",
		Usage:  "read facts from the hosts (read-only) and print the changes",
		Flags:  []cli.Flag{inventoryFlag(), &cli.StringFlag{Name: "out", Usage: "save the plan to `FILE`"}, &cli.BoolFlag{Name: "json", Usage: "print the plan as JSON"}, &cli.BoolFlag{Name: "detailed-exitcode", Usage: "exit 2 when changes are pending"}, &cli.StringSliceFlag{Name: "limit", Usage: "only these `HOSTS`"}},
		Action: notImplemented("plan"),
	}
}
