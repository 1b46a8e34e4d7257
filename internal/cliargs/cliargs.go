// Package cliargs lets flags follow positional arguments with urfave/cli
// v2, whose parser (Go's flag package) stops at the first argument that
// is not a flag: `pgwarm rebuild pg2 --method rewind` would leave
// "--method rewind" as two more arguments. Reorder moves a command's
// flags ahead of its arguments before the app parses them.
package cliargs

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// valueFlag is what urfave/cli flags say about taking a value.
type valueFlag interface{ TakesValue() bool }

// Reorder returns args (args[0] the program) with the flags of the named
// command placed before its positional arguments, which follow a "--" so
// that one spelled like a flag stays an argument. A "--" in args ends the
// flags: everything after it is positional, as with getopt. A flag that
// takes a value keeps the next argument as its value unless written
// --flag=value. App flags before the command name, an unknown command
// and commands with subcommands are left as they are. Pure.
func Reorder(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	i := 1
	for i < len(args) && isFlag(args[i]) {
		if args[i] == "--" {
			return args
		}
		if takesValue(app.Flags, args[i]) {
			i++
		}
		i++
	}
	if i >= len(args) {
		return args
	}
	cmd := find(app.Commands, args[i])
	if cmd == nil || len(cmd.Subcommands) > 0 || cmd.SkipFlagParsing {
		return args
	}
	var flags, pos []string
	tail := args[i+1:]
	for j := 0; j < len(tail); j++ {
		a := tail[j]
		if a == "--" {
			pos = append(pos, tail[j+1:]...)
			break
		}
		if !isFlag(a) {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		if takesValue(cmd.Flags, a) && j+1 < len(tail) {
			j++
			flags = append(flags, tail[j])
		}
	}
	out := append([]string{}, args[:i+1]...)
	out = append(out, flags...)
	if len(pos) > 0 {
		out = append(append(out, "--"), pos...)
	}
	return out
}

// isFlag: "-x", "--x", "--x=v" and "--"; a lone "-" (stdin) is an argument.
func isFlag(a string) bool { return len(a) > 1 && a[0] == '-' }

// takesValue reports whether a (written without "=value") names one of
// flags that takes a value.
func takesValue(flags []cli.Flag, a string) bool {
	name := strings.TrimLeft(a, "-")
	if strings.Contains(name, "=") {
		return false
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				v, ok := f.(valueFlag)
				return ok && v.TakesValue()
			}
		}
	}
	return false
}

func find(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}
