// Command pgwarm provisions and operates a PostgreSQL warm/hot standby pair
// from one YAML inventory. See SPEC.md for the command-line contract.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/pgwarm/pgwarm/internal/cliargs"
)

func main() {
	os.Exit(run(os.Args))
}

// run is main without os.Exit, so tests can drive the whole CLI.
func run(args []string) int {
	return runApp(newApp(), args, os.Stderr)
}

// runApp runs app with its flags allowed after positional arguments, as
// SPEC prints them (`pgwarm rebuild pg2 --method rewind`), and returns
// the exit status.
func runApp(app *cli.App, args []string, stderr io.Writer) int {
	return exitCode(app.Run(cliargs.Reorder(app, args)), stderr)
}

// exitStatus lets a command ask for a specific non-error exit status
// (2 = changes pending / degraded) while still printing nothing extra.
type exitStatus struct {
	code int
	msg  string
}

func (e exitStatus) Error() string { return e.msg }

// exitCode is the one place where errors become exit statuses.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var es exitStatus
	if errors.As(err, &es) {
		if es.msg != "" {
			fmt.Fprintln(stderr, es.msg)
		}
		return es.code
	}
	fmt.Fprintf(stderr, "pgwarm: %v\n", err)
	return 1
}

func inventoryFlag() cli.Flag {
	return &cli.StringFlag{
		Name:    "inventory",
		Aliases: []string{"i"},
		Usage:   "inventory `FILE`",
		EnvVars: []string{"PGWARM_INVENTORY"},
		Value:   "./pgwarm.yaml",
	}
}

func newApp() *cli.App {
	return &cli.App{
		Name:  "pgwarm",
		Usage: "declarative PostgreSQL warm/hot standby provisioning over SSH",
		Description: "Renders a YAML inventory of a primary, standbys and an archive host into every file\n" +
			"the pair needs, previews the changes (plan), pushes them over SSH (apply), and\n" +
			"operates the pair afterwards (status, verify, promote, rebuild).",
		HideHelpCommand:      true,
		EnableBashCompletion: false,
		Commands:             commands(),
		ExitErrHandler:       func(*cli.Context, error) {}, // exit codes are decided in exitCode
	}
}

func commands() []*cli.Command {
	return []*cli.Command{
		validateCommand(),
		renderCommand(),
		planCommand(),
		applyCommand(),
		statusCommand(),
		verifyCommand(),
		promoteCommand(),
		rebuildCommand(),
		schemaCommand(),
	}
}

// checkArgs refuses a positional argument count outside [min, max],
// naming what the command takes; the usual slip, an inventory given as an
// argument (`pgwarm validate prod.yaml`), gets the flag that takes it.
func checkArgs(c *cli.Context, min, max int, what string) error {
	n := c.NArg()
	if n >= min && n <= max {
		return nil
	}
	name := "pgwarm " + c.Command.Name
	if n < min {
		return exitStatus{code: 1, msg: fmt.Sprintf("%s: expected %s, got none", name, what)}
	}
	hint := " (the inventory is given with -i FILE or PGWARM_INVENTORY=FILE)"
	if c.Command.Name == "schema" {
		hint = ""
	}
	quoted := make([]string, n)
	for i, a := range c.Args().Slice() {
		quoted[i] = fmt.Sprintf("%q", a)
	}
	if max == 0 {
		return exitStatus{code: 1, msg: fmt.Sprintf("%s takes no arguments, got %s%s", name, strings.Join(quoted, " "), hint)}
	}
	return exitStatus{code: 1, msg: fmt.Sprintf("%s: expected %s, got %d arguments (%s)%s", name, what, n, strings.Join(quoted, " "), hint)}
}

// noArgs is the Before of every command without positional arguments.
func noArgs(c *cli.Context) error { return checkArgs(c, 0, 0, "") }
