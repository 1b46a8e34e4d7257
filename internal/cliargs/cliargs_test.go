package cliargs

import (
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func testApp() *cli.App {
	return &cli.App{
		Flags: []cli.Flag{&cli.StringFlag{Name: "archive"}},
		Commands: []*cli.Command{
			{Name: "rebuild", Flags: []cli.Flag{
				&cli.StringFlag{Name: "inventory", Aliases: []string{"i"}},
				&cli.StringFlag{Name: "method"},
				&cli.BoolFlag{Name: "json"},
				&cli.StringSliceFlag{Name: "limit"},
			}},
			{Name: "group", Subcommands: []*cli.Command{{Name: "x"}}},
		},
	}
}

func TestReorder(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"p rebuild -i F pg2 --method rewind", "p rebuild -i F --method rewind -- pg2"},
		{"p rebuild pg2 -i F", "p rebuild -i F -- pg2"},
		{"p rebuild -i F pg2", "p rebuild -i F -- pg2"},
		{"p rebuild --method=rewind pg2 --json", "p rebuild --method=rewind --json -- pg2"},
		{"p rebuild pg2 --json pg3", "p rebuild --json -- pg2 pg3"},
		{"p rebuild -i F -- --method", "p rebuild -i F -- --method"}, // a host named like a flag
		{"p rebuild -- -pg2 --json", "p rebuild -- -pg2 --json"},     // nothing after -- is a flag
		{"p rebuild --limit a,b pg2 --limit c", "p rebuild --limit a,b --limit c -- pg2"},
		{"p rebuild pg2 --unknown x", "p rebuild --unknown -- pg2 x"}, // urfave then names the unknown flag
		{"p rebuild pg2 -", "p rebuild -- pg2 -"},                     // "-" is an argument
		{"p rebuild pg2 --method", "p rebuild --method -- pg2"},       // urfave: flag needs an argument
		{"p rebuild", "p rebuild"},
		{"p --archive /a rebuild pg2 --json", "p --archive /a rebuild --json -- pg2"}, // app flag with its value first
		{"p --archive=/a rebuild pg2 --json", "p --archive=/a rebuild --json -- pg2"},
		{"p nosuch a --b", "p nosuch a --b"},
		{"p group x --b", "p group x --b"},
		{"p -- rebuild --b", "p -- rebuild --b"},
	} {
		got := strings.Join(Reorder(testApp(), strings.Fields(c.in)), " ")
		if got != c.want {
			t.Errorf("Reorder(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestReorderParses: what Reorder returns parses as intended.
func TestReorderParses(t *testing.T) {
	for _, c := range []struct {
		in         []string
		wantArgs   []string
		wantMethod string
	}{
		{[]string{"p", "rebuild", "-i", "F", "--", "--method", "x"}, []string{"--method", "x"}, ""},
		{[]string{"p", "rebuild", "pg2", "--method", "rewind"}, []string{"pg2"}, "rewind"},
	} {
		var args []string
		var method string
		app := testApp()
		app.Commands[0].Action = func(c *cli.Context) error {
			args, method = c.Args().Slice(), c.String("method")
			return nil
		}
		if err := app.Run(Reorder(app, c.in)); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(args, c.wantArgs) || method != c.wantMethod {
			t.Errorf("%q: args %q, method %q; want %q, %q", c.in, args, method, c.wantArgs, c.wantMethod)
		}
	}
}
