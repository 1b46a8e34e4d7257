package main

import (
	"github.com/urfave/cli/v2"
)

func renderCommand() *cli.Command {
	return &cli.Command{
		Name:   "render",
		Usage:  "write every rendered file, per host, under DIR (offline)",
		Flags:  []cli.Flag{inventoryFlag(), &cli.StringFlag{Name: "dir", Usage: "output `DIR`", Required: true}},
		Action: notImplemented("render"),
	}
}
