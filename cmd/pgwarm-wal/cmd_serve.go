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
			"  command=\"pgwarm-wal serve --root /srv/pgwarm/main --allow push\",restrict ssh-ed25519 AAAA... postgres@primary\n" +
			"  command=\"pgwarm-wal serve --root /srv/pgwarm/main --allow get,cleanup\",restrict ssh-ed25519 AAAA... postgres@standby\n" +
			"The request comes from SSH_ORIGINAL_COMMAND; anything but a valid pgwarm-wal request is refused.\n" +
			"get also allows list and verify (reading names adds nothing to reading files); push allows nothing else.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "root", Required: true, Usage: "archive `DIR` on this host"},
			&cli.StringFlag{Name: "allow", Required: true, Usage: "comma-separated operations this key may run: push,get,cleanup,list,verify"},
			&cli.StringFlag{Name: "require-marker", Usage: "refuse every operation unless `NAME` exists in DIR"},
		},
		Action: func(c *cli.Context) error {
			rights, err := serve.ParseRights(c.String("allow"))
			if err != nil {
				return fail("serve", "", badInput(err))
			}
			orig := os.Getenv("SSH_ORIGINAL_COMMAND")
			if orig == "" {
				return fail("serve", "", archive.Errorf(archive.KindBadInput, "SSH_ORIGINAL_COMMAND is empty: serve must run as an ssh forced command for a pgwarm-wal client"))
			}
			err = serve.Serve(c.Context, serve.Config{Root: c.String("root"), Allow: rights, RequireMarker: c.String("require-marker")},
				orig, os.Stdin, os.Stdout)
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
