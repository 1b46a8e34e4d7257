package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
)

func listCommand() *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "list archived files with sizes, compression and checksums",
		Flags: append(archiveFlags(), &cli.BoolFlag{Name: "json", Usage: "machine-readable output"}),
		Action: func(c *cli.Context) error {
			a, err := openArchive(c)
			if err != nil {
				return fail("list", "", err)
			}
			defer a.Close()
			ls, err := a.List(c.Context)
			if err != nil {
				return fail("list", "", err)
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(ls)
			}
			if ls.Meta != nil {
				fmt.Fprintf(c.App.Writer, "cluster %s, wal_segment_size %d\n", ls.Meta.SysID, ls.Meta.SegSize)
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tKIND\tTLI\tBYTES\tSTORED\tCOMPRESSION\tSHA256")
			for _, e := range ls.Entries {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\n", e.Name, e.Kind, e.TLI, e.Bytes, e.StoredBytes, e.Compression, e.SHA256[:16]+" ("+e.SHA256Of+")")
			}
			for _, f := range ls.Foreign {
				fmt.Fprintf(tw, "%s\tforeign\t-\t-\t-\t-\t-\n", f)
			}
			for _, f := range ls.Broken {
				fmt.Fprintf(tw, "%s\tbroken-header\t-\t-\t-\t-\t-\n", f)
			}
			return tw.Flush()
		},
	}
}
