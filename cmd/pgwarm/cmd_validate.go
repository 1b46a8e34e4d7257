package main

import (
	"errors"
	"fmt"

	"github.com/pgwarm/pgwarm/inventory"
	"github.com/pgwarm/pgwarm/templates"
	"github.com/urfave/cli/v2"
)

func validateCommand() *cli.Command {
	return &cli.Command{
		Name:   "validate",
		Usage:  "check the inventory offline",
		Flags:  []cli.Flag{inventoryFlag()},
		Before: noArgs,
		Action: validateAction,
	}
}

func validateAction(c *cli.Context) error {
	file := c.String("inventory")
	inv, err := loadInventory(file)
	if err != nil {
		return err
	}
	// Rendering too catches broken operator templates before plan does.
	r, err := templates.Render(inv)
	if err != nil {
		return exitStatus{code: 1, msg: fmt.Sprintf("%s: %v", file, err)}
	}
	for _, w := range r.Warnings {
		fmt.Fprintf(c.App.ErrWriter, "%s: warning: %s\n", file, w)
	}
	fmt.Fprintf(c.App.Writer, "%s: valid (%s)\n", file, inv.Summary())
	return nil
}

// loadInventory loads file and turns its problems into exit status 1 with
// one file:line:col: message per line.
func loadInventory(file string) (*inventory.Inventory, error) {
	inv, err := inventory.Load(file)
	var ps inventory.Problems
	switch {
	case errors.As(err, &ps):
		return nil, exitStatus{code: 1, msg: ps.Error()}
	case err != nil:
		return nil, exitStatus{code: 1, msg: fmt.Sprintf("pgwarm: %v", err)}
	}
	return inv, nil
}
