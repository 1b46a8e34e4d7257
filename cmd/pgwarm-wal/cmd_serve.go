package main

import (
	"fmt"
	"os"

	"github.com/pgwarm/pgwarm/wal/archive"
	"github.com/pgwarm/pgwarm/wal/serve"
	"github.com/urfave/cli/v2"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "far end of ssh:// archives, as an authorized_keys forced command",
		Description: "In ~archive/.ssh/authorized_keys on the archive host:\n" +
			"  command=\"pgwarm-wal serve --root /srv/pgwarm/main --allow push@1\",restrict ssh-ed25519 AAAA... postgres@primary\n" +
			"  command=\"pgwarm-wal serve --root /srv/pgwarm/main --allow get,cleanup\",restrict ssh-ed25519 AAAA... postgres@standby\n" +
			"The request comes from SSH_ORIGINAL_COMMAND; anything but a valid pgwarm-wal request is refused.\n" +
			"get also allows list and verify (reading names adds nothing to reading files); push allows nothing else.\n" +
			"push@T adds only timeline T's segments, backup files and history file, and the .partial of the timeline\n" +
			"T branched from; a bare push adds segments of any timeline but no history file.\n" +
			"With --rights FILE --as NAME instead of --allow, the rights are NAME's line of FILE (\"pg1 push@1\",\n" +
			"\"pg2 get,cleanup\"), read for every request: a change applies to connections already open.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "root", Required: true, Usage: "archive `DIR` on this host"},
			&cli.StringFlag{Name: "allow", Usage: "comma-separated operations this key may run: push@TIMELINE,get,cleanup,list,verify"},
			&cli.StringFlag{Name: "rights", Usage: "read this key's operations from `FILE` at every request (with --as)"},
			&cli.StringFlag{Name: "as", Usage: "the `NAME` of this key's line in the --rights file"},
			&cli.StringFlag{Name: "require-marker", Usage: "refuse every operation unless `NAME` exists in DIR"},
		},
		Action: func(c *cli.Context) error {
			cfg := serve.Config{Root: c.String("root"), RequireMarker: c.String("require-marker"), RightsFile: c.String("rights"), As: c.String("as")}
			switch {
			case (cfg.RightsFile == "") == (c.String("allow") == ""):
				return fail("serve", "", badInput(fmt.Errorf("give either --allow or --rights with --as")))
			case (cfg.RightsFile == "") != (cfg.As == ""):
				return fail("serve", "", badInput(fmt.Errorf("--rights and --as go together")))
			case cfg.RightsFile == "":
				rights, err := serve.ParseRights(c.String("allow"))
				if err != nil {
					return fail("serve", "", badInput(err))
				}
				cfg.Allow = rights
			}
			orig := os.Getenv("SSH_ORIGINAL_COMMAND")
			if orig == "" {
				return fail("serve", "", archive.Errorf(archive.KindBadInput, "SSH_ORIGINAL_COMMAND is empty: serve must run as an ssh forced command for a pgwarm-wal client"))
			}
			err := serve.Serve(c.Context, cfg, orig, os.Stdin, os.Stdout)
			if err != nil {
				// stderr reaches sshd's client and the server's own logs.
				fmt.Fprintf(c.App.ErrWriter, "pgwarm-wal serve %s: %s\n", orig, oneLine(err.Error()))
				return &cmdError{cmd: "serve", err: err, subject: "(reported to client)"}
			}
			return nil
		},
	}
}

func badInput(err error) error {
	return &archive.Error{Kind: archive.KindBadInput, Msg: err.Error(), Err: err}
}
