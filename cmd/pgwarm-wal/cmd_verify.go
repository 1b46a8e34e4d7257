package main

import (
	"encoding/json"
	"fmt"

	"github.com/pgwarm/pgwarm/wal/archive"
	"github.com/urfave/cli/v2"
)

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:  "verify",
		Usage: "check every archived file (checksum, cluster) and report gaps per timeline",
		Flags: append(archiveFlags(), &cli.BoolFlag{Name: "json", Usage: "machine-readable output"}),
		Action: func(c *cli.Context) error {
			a, err := openArchive(c)
			if err != nil {
				return fail("verify", "", err)
			}
			defer a.Close()
			r, err := a.Verify(c.Context)
			if err != nil {
				return fail("verify", "", err)
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				if err := enc.Encode(r); err != nil {
					return err
				}
			} else {
				for _, p := range r.Problems {
					fmt.Fprintf(c.App.Writer, "%s\t%s\t%s\n", p.What, p.Name, p.Msg)
				}
				fmt.Fprintf(c.App.Writer, "%d files, timelines %v, %d problems\n", r.Files, r.Timelines, len(r.Problems))
			}
			if k, bad := r.Worst(); bad {
				return fail("verify", "", archive.Errorf(k, "archive has %d problems (see above)", len(r.Problems)))
			}
			return nil
		},
	}
}
