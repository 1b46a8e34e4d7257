package main

import (
	"github.com/pgwarm/pgwarm/inventory"
	"github.com/urfave/cli/v2"
)

func schemaCommand() *cli.Command {
	return &cli.Command{
		Name:   "schema",
		Usage:  "print the inventory JSON Schema (for editors)",
		Flags:  []cli.Flag{},
		Before: noArgs,
		Action: schemaAction,
	}
}

func schemaAction(c *cli.Context) error {
	b, err := inventory.Schema()
	if err != nil {
		return err
	}
	_, err = c.App.Writer.Write(b)
	return err
}
