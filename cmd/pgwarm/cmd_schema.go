package main

import (
	"github.com/urfave/cli/v2"
)

func schemaCommand() *cli.Command {
	return &cli.Command{
		Name:   "schema",
		Usage:  "print the inventory JSON Schema (for editors)",
		Flags:  []cli.Flag{},
		Action: notImplemented("schema"),
	}
}
