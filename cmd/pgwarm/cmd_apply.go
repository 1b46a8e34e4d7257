package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/pgwarm/pgwarm/apply"
	"github.com/pgwarm/pgwarm/facts"
	"github.com/pgwarm/pgwarm/host"
	"github.com/pgwarm/pgwarm/inventory"
	"github.com/pgwarm/pgwarm/plan"
	"github.com/pgwarm/pgwarm/templates"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"
)

func applyCommand() *cli.Command {
	return &cli.Command{
		Name:      "apply",
		Usage:     "apply a saved plan (refusing a stale one) or plan and apply",
		ArgsUsage: "[PLANFILE]",
		Description: "Without PLANFILE: plans, shows the plan and asks for `yes` (or --auto-approve;\n" +
			"without a terminal --auto-approve is required). With PLANFILE (from plan --out):\n" +
			"applies it when no host and not the inventory changed since, else refuses it.\n" +
			"Steps run in dependency order (archive host, primary, standbys) and are\n" +
			"idempotent: after a failure or an interruption, run apply again.\n" +
			"A lock on the primary (/var/lib/pgwarm/CLUSTER/apply.lock) refuses a second run;\n" +
			"a lock left by a killed run of this user on this machine is taken over, any\n" +
			"other is removed only with --force-unlock.",
		Flags: append([]cli.Flag{
			inventoryFlag(),
			&cli.BoolFlag{Name: "auto-approve", Usage: "do not ask for confirmation"},
			&cli.BoolFlag{Name: "force-unlock", Usage: "remove an apply lock left by a run that is known to be dead"},
		}, append(sshFlags(), parallelFlag())...),
		Action: applyAction,
	}
}

func applyAction(c *cli.Context) error {
	if err := checkArgs(c, 0, 1, "at most one PLANFILE"); err != nil {
		return err
	}
	planFile := c.Args().First()
	file := c.String("inventory")
	var saved *plan.Plan
	if planFile != "" {
		p, err := plan.Load(planFile)
		if err != nil {
			return err
		}
		// The plan names its inventory: -i is not needed, and may only
		// name the same file.
		if c.IsSet("inventory") && !samePath(file, p.Inventory.Path) {
			return exitStatus{code: 1, msg: fmt.Sprintf("pgwarm apply: %s was made from the inventory %s, not %s; apply it without -i, or make a new plan with -i %s", planFile, p.Inventory.Path, file, file)}
		}
		file, saved = p.Inventory.Path, &p
	}
	inv, err := loadInventory(file)
	if err != nil {
		return err
	}
	in, err := planInput(inv, file)
	if err != nil {
		return err
	}
	if saved != nil {
		in.Limit = saved.Limit
	}
	probed, err := plan.Probed(inv, in.Limit)
	if err != nil {
		return err
	}
	ctx := c.Context
	conns, closeAll, err := connect(ctx, inv, probed, sshDialOptions(c))
	if err != nil {
		return err
	}
	defer closeAll()
	reqs, err := plan.Requests(inv, in.Rendered, in.Limit)
	if err != nil {
		return err
	}
	if in.Facts, err = probeAll(ctx, probed, conns, reqs); err != nil {
		return err
	}

	out := c.App.Writer
	var p plan.Plan
	if saved != nil {
		if err := plan.CheckFresh(*saved, in); err != nil {
			return fmt.Errorf("%s: refusing the saved plan: %w", planFile, err)
		}
		p = *saved
		fmt.Fprintf(out, "%s: the saved plan of %s is current; applying it to %s\n", planFile, p.Inventory.Path, planHosts(p))
	} else {
		if p, err = plan.Compute(in); err != nil {
			return err
		}
		if err := plan.Human(out, p, colour(out)); err != nil {
			return err
		}
		if p.Empty() {
			return nil
		}
		if !c.Bool("auto-approve") {
			if err := confirm(c); err != nil {
				return err
			}
		}
	}

	opts := apply.Options{
		Password:    os.Getenv(inv.Replication.PasswordEnv),
		Helper:      helperFinder(),
		Holder:      holder(),
		ForceUnlock: c.Bool("force-unlock"),
		PidAlive:    pidAlive,
		Plan:        &p,
	}
	s := apply.NewState(inv, in.Rendered, conns, in.Facts, opts, apply.NewPrinter(out, isTerminal(out)))
	if err := apply.Execute(ctx, s, apply.Steps()); err != nil {
		return err
	}
	fmt.Fprintf(out, "Apply complete: %s\n", inv.Summary())
	return nil
}

// planInput is what plan and apply make a plan from, facts aside: the
// inventory (its file's digest, its templates_dir's), the rendered files,
// the helper binaries and this build's version.
func planInput(inv *inventory.Inventory, file string) (plan.Input, error) {
	invBytes, err := os.ReadFile(file)
	if err != nil {
		return plan.Input{}, err
	}
	r, err := templates.Render(inv)
	if err != nil {
		return plan.Input{}, fmt.Errorf("%s: %w", file, err)
	}
	in := plan.Input{Inventory: inv, InventoryPath: absPath(file), InventoryHash: plan.Hash(invBytes),
		Rendered: r, Helpers: localHelpers(), Version: version()}
	if inv.TemplatesDir != "" {
		if in.TemplatesHash, err = templates.OverridesHash(inv.TemplatesDir); err != nil {
			return plan.Input{}, err
		}
	}
	return in, nil
}

// planHosts names a plan's hosts for the line apply starts with.
func planHosts(p plan.Plan) string {
	var names []string
	for _, h := range p.Hosts {
		names = append(names, h.Name)
	}
	if len(p.Limit) > 0 {
		return strings.Join(names, ", ") + " only (the plan's --limit)"
	}
	return strings.Join(names, ", ")
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

func samePath(a, b string) bool { return absPath(a) == absPath(b) }

// confirm asks for "yes" on the terminal; without one it refuses, so a
// script never applies by accident.
func confirm(c *cli.Context) error {
	in, ok := c.App.Reader.(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) {
		return exitStatus{code: 1, msg: "pgwarm apply: no terminal to confirm on; review the plan and re-run with --auto-approve (or apply a saved plan)"}
	}
	fmt.Fprint(c.App.Writer, "\nApply these changes? Only 'yes' is accepted: ")
	line, _ := bufio.NewReader(in).ReadString('\n')
	if strings.TrimSpace(line) != "yes" {
		return exitStatus{code: 1, msg: "pgwarm apply: cancelled, nothing changed"}
	}
	return nil
}

// probeAll gathers facts on the hosts in parallel.
func probeAll(ctx context.Context, hosts []inventory.Host, conns map[string]host.Host, reqs map[string]facts.Request) (map[string]facts.Facts, error) {
	var mu sync.Mutex
	out := map[string]facts.Facts{}
	list := make([]host.Host, 0, len(hosts))
	for _, h := range hosts {
		list = append(list, conns[h.Name])
	}
	err := host.Parallel(ctx, 0, list, func(ctx context.Context, h host.Host) error {
		fa, err := facts.Gather(ctx, h, reqs[h.Name()])
		if err != nil {
			return err
		}
		mu.Lock()
		out[h.Name()] = fa
		mu.Unlock()
		return nil
	})
	return out, err
}

// helperFinder looks for pgwarm-wal next to this executable (make build
// puts both in bin/), under the Debian name of the architecture.
func helperFinder() func(string) (string, error) {
	dir := "."
	if exe, err := os.Executable(); err == nil {
		dir = filepath.Dir(exe)
	}
	return apply.HelperNextTo(dir, debArch())
}

// holder is user@host of this run, written into the lock.
func holder() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	hn, _ := os.Hostname()
	return name + "@" + hn
}

// pidAlive: signal 0 tests for the process without touching it.
func pidAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
