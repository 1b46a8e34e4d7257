// Command pgwarm provisions and operates a PostgreSQL warm/hot standby pair
// from one YAML inventory. See SPEC.md for the command-line contract.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

func main() {
	os.Exit(run(os.Args))
}

// run is main without os.Exit, so tests can drive the whole CLI.
func run(args []string) int {
	app := newApp()
	err := app.Run(args)
	return exitCode(err, os.Stderr)
}

// exitStatus lets a command ask for a specific non-error exit status
// (2 = changes pending / degraded) while still printing nothing extra.
type exitStatus struct {
	code int
	msg  string
}

func (e exitStatus) Error() string { return e.msg }

// exitCode is the one place where errors become exit statuses.
func exitCode(err error, stderr *os.File) int {
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

// notImplemented is what a command that a later issue builds says; it
// prints no fake output and exits 1.
func notImplemented(name string) cli.ActionFunc {
	return func(*cli.Context) error {
		return fmt.Errorf("%s: not implemented yet", name)
	}
}
