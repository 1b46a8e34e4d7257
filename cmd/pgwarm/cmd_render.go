package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pgwarm/pgwarm/templates"
	"github.com/urfave/cli/v2"
)

func renderCommand() *cli.Command {
	return &cli.Command{
		Name:  "render",
		Usage: "write every rendered file, per host, under DIR (offline)",
		Description: "Writes DIR/<host>/<path> for every rendered file. Managed blocks (pg_hba.conf,\n" +
			"postgresql.conf, /etc/exports, /etc/fstab, authorized_keys, ~/.ssh/config) are written\n" +
			"as the block alone, between its BEGIN/END marker lines. Files apply generates or\n" +
			"uploads (SSH keys, the pgwarm-wal binary) are not written. Placeholders such as\n" +
			"{{key:pg1}} are filled in by apply.",
		Flags:  []cli.Flag{inventoryFlag(), &cli.StringFlag{Name: "dir", Usage: "output `DIR`", Required: true}},
		Before: noArgs,
		Action: renderAction,
	}
}

func renderAction(c *cli.Context) error {
	file := c.String("inventory")
	inv, err := loadInventory(file)
	if err != nil {
		return err
	}
	// Everything is rendered in memory first, so an error writes nothing.
	r, err := templates.Render(inv)
	if err != nil {
		return exitStatus{code: 1, msg: fmt.Sprintf("%s: %v", file, err)}
	}
	for _, w := range r.Warnings {
		fmt.Fprintf(c.App.ErrWriter, "%s: warning: %s\n", file, w)
	}
	n, err := writeRendered(c.String("dir"), r)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "%d files for %d hosts written under %s\n", n, len(r.Hosts), c.String("dir"))
	return nil
}

// writeRendered writes r under dir and returns how many files it wrote.
// Directories to ensure become directories; secrets get mode 0600 whatever
// the template said.
func writeRendered(dir string, r templates.Rendered) (int, error) {
	n := 0
	var errs []error
	for _, host := range r.HostNames() {
		for _, f := range r.Hosts[host] {
			dst := filepath.Join(dir, host, filepath.FromSlash(f.Path))
			if f.Dir {
				if err := os.MkdirAll(dst, 0o755); err != nil {
					errs = append(errs, err)
					continue
				}
				errs = append(errs, os.Chmod(dst, f.Mode.Perm()))
				continue
			}
			if f.Source != "" {
				continue // generated or uploaded by apply
			}
			content := f.Content
			if f.Block != "" {
				content = templates.MergeBlock(nil, f.Block, f.Content)
			}
			mode := f.Mode.Perm()
			if f.Secret {
				mode = 0o600
			}
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				errs = append(errs, err)
				continue
			}
			if err := os.WriteFile(dst, content, mode); err != nil {
				errs = append(errs, err)
				continue
			}
			// WriteFile keeps the mode of an existing file; make it exact.
			errs = append(errs, os.Chmod(dst, mode))
			n++
		}
	}
	return n, errors.Join(errs...)
}
