package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pgwarm/pgwarm/facts"
	"github.com/pgwarm/pgwarm/host"
	"github.com/pgwarm/pgwarm/host/ssh"
	"github.com/pgwarm/pgwarm/inventory"
	"github.com/pgwarm/pgwarm/plan"
	"github.com/urfave/cli/v2"
)

func planCommand() *cli.Command {
	return &cli.Command{
		Name:  "plan",
		Usage: "read facts from the hosts (read-only) and print the changes",
		Description: "Connects to every host, reads what is there (one read-only probe per host, nothing\n" +
			"written), and prints every change apply would make: + create, ~ modify (with a\n" +
			"unified diff), - remove, ! one-shot action (seed, install, restart, reload).\n" +
			"Secrets are masked, and so is any password found in a managed file. --out saves\n" +
			"the plan with what it observed (no digest of a secret: secret files are recorded\n" +
			"as matching the inventory or not) so that apply refuses it once any host or the\n" +
			"inventory has changed.",
		Flags: append([]cli.Flag{
			inventoryFlag(),
			&cli.StringFlag{Name: "out", Usage: "save the plan to `FILE` (JSON, mode 0600)"},
			&cli.BoolFlag{Name: "json", Usage: "print the plan as JSON"},
			&cli.BoolFlag{Name: "detailed-exitcode", Usage: "exit 0 when nothing would change, 2 when changes are pending (1 is an error)"},
			&cli.StringSliceFlag{Name: "limit", Usage: "only these `HOSTS` (comma-separated)"},
			&cli.BoolFlag{Name: "stats", Usage: "print per-host timings and SSH round trips to stderr", Hidden: true},
		}, append(sshFlags(), parallelFlag())...),
		Before: noArgs,
		Action: planAction,
	}
}

func planAction(c *cli.Context) error {
	t0 := time.Now()
	file := c.String("inventory")
	inv, err := loadInventory(file)
	if err != nil {
		return err
	}
	in, err := planInput(inv, file)
	if err != nil {
		return err
	}
	in.Limit = splitLimit(c.StringSlice("limit"))
	reqs, err := plan.Requests(inv, in.Rendered, in.Limit)
	if err != nil {
		return err
	}
	probed, err := plan.Probed(inv, in.Limit)
	if err != nil {
		return err
	}
	ctx := c.Context
	start := time.Now()
	prepare := start.Sub(t0)
	f, st, err := gatherFacts(ctx, inv, probed, reqs, sshDialOptions(c))
	if err != nil {
		return err
	}
	st.phases = append(st.phases, "load+render+hash "+prepare.Round(time.Millisecond).String())
	st.phase("gather", start)
	t := time.Now()
	in.Facts = f
	p, err := plan.Compute(in)
	if err != nil {
		return err
	}
	st.phase("compute", t)
	if c.Bool("stats") {
		defer st.print(c.App.ErrWriter, t0)
	}
	if out := c.String("out"); out != "" {
		if err := plan.Save(out, p); err != nil {
			return fmt.Errorf("saving the plan: %w", err)
		}
	}
	if c.Bool("json") {
		b, err := p.JSON()
		if err != nil {
			return err
		}
		if _, err := c.App.Writer.Write(b); err != nil {
			return err
		}
	} else if err := plan.Human(c.App.Writer, p, colour(c.App.Writer)); err != nil {
		return err
	}
	if c.Bool("detailed-exitcode") && !p.Empty() {
		return exitStatus{code: 2}
	}
	return nil
}

// splitLimit accepts --limit pg1,pg2 as well as --limit pg1 --limit pg2.
func splitLimit(in []string) []string {
	var out []string
	for _, s := range in {
		for _, n := range strings.Split(s, ",") {
			if n = strings.TrimSpace(n); n != "" {
				out = append(out, n)
			}
		}
	}
	return out
}

// colour is on only for a terminal and when NO_COLOR is unset.
func colour(w io.Writer) bool {
	if _, set := os.LookupEnv("NO_COLOR"); set {
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// gatherFacts connects to hosts and probes them all in parallel, each host
// as soon as it is connected, with the probe as the connection's first
// command (under become: sudo its sudo doubles as the sudo check: one
// round trip per host). Every failure is reported at once, each naming
// its host.
func gatherFacts(ctx context.Context, inv *inventory.Inventory, hosts []inventory.Host, reqs map[string]facts.Request, opt dialOptions) (map[string]facts.Facts, *stats, error) {
	st := &stats{probe: map[string]time.Duration{}, runs: map[string]int{}}
	var mu sync.Mutex
	out := map[string]facts.Facts{}
	names := make([]string, len(hosts))
	for i, h := range hosts {
		names[i] = h.Name
	}
	err := host.ParallelNames(ctx, opt.parallel, names, func(ctx context.Context, name string) error {
		ih, _ := inv.Host(name)
		cfg := hostConfig(inv, ih)
		if opt.tweak != nil {
			cfg = opt.tweak(cfg)
		}
		req := reqs[name]
		cmd, err := facts.Probe(req)
		if err != nil {
			return fmt.Errorf("%s: facts: %w", name, err)
		}
		t := time.Now()
		h, res, err := dialRun(ctx, opt.dial, cfg, cmd)
		if err != nil {
			var he *host.Error
			if errors.As(err, &he) && he.Op == "connect" {
				return err // as connect reports it
			}
			_, err = facts.Read(name, req, res, err)
			return err
		}
		h.Close()
		f, err := facts.Read(name, req, res, nil)
		mu.Lock()
		defer mu.Unlock()
		st.probe[name], st.runs[name] = time.Since(t), 1
		if err != nil {
			return err
		}
		out[name] = f
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return out, st, nil
}

// dialRun is ssh.DialRun (the probe as the connection's first command),
// or dial then Run when a test dials.
func dialRun(ctx context.Context, dial dialFunc, cfg ssh.Config, cmd host.Cmd) (host.Host, host.Result, error) {
	if dial == nil {
		return ssh.DialRun(ctx, cfg, cmd)
	}
	h, err := dial(ctx, cfg)
	if err != nil {
		return nil, host.Result{}, err
	}
	res, err := h.Run(ctx, cmd)
	if err != nil {
		h.Close()
		return nil, res, err
	}
	return h, res, nil
}

// stats are plan's timings, for --stats: per host the connection and its
// commands, and the phases of the whole run.
type stats struct {
	probe  map[string]time.Duration
	runs   map[string]int
	phases []string
}

func (s *stats) phase(name string, since time.Time) {
	s.phases = append(s.phases, fmt.Sprintf("%s %s", name, time.Since(since).Round(time.Millisecond)))
}

func (s *stats) print(w io.Writer, start time.Time) {
	for _, n := range sortedKeys(s.runs) {
		fmt.Fprintf(w, "stats: %s connect+probe %s commands %d\n", n, s.probe[n].Round(time.Millisecond), s.runs[n])
	}
	fmt.Fprintf(w, "stats: phases %s\n", strings.Join(s.phases, ", "))
	fmt.Fprintf(w, "stats: total %s\n", time.Since(start).Round(time.Millisecond))
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// localHelpers maps each architecture apply can install pgwarm-wal for
// (the Debian name) to the sha256 of the binary it would upload, found as
// apply finds it (helperFinder): pgwarm-wal-linux-ARCH next to this pgwarm,
// or the pgwarm-wal built with it (make build puts both in bin/). The plan
// records it: a binary replaced between plan and apply makes the plan
// stale. Without one the plan says so and apply cannot install it.
func localHelpers() map[string]string {
	dir := "."
	if exe, err := os.Executable(); err == nil {
		dir = filepath.Dir(exe)
	}
	var archs []string
	if runtime.GOOS == "linux" {
		archs = append(archs, debArch())
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "pgwarm-wal-linux-*"))
	for _, m := range matches {
		archs = append(archs, strings.TrimPrefix(filepath.Base(m), "pgwarm-wal-linux-"))
	}
	find := helperFinder()
	out := map[string]string{}
	for _, a := range archs {
		p, err := find(a)
		if err != nil {
			continue
		}
		if b, err := os.ReadFile(p); err == nil {
			out[a] = plan.Hash(b)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// debArch is the Debian name of this build's architecture.
func debArch() string {
	if a := map[string]string{"386": "i386", "arm": "armhf", "ppc64le": "ppc64el"}[runtime.GOARCH]; a != "" {
		return a
	}
	return runtime.GOARCH
}

// version identifies this build in saved plans: the module version and
// VCS revision when the build recorded them, else "devel+" and the start of
// the executable's sha256, so a plan is never applied by another build.
func version() string {
	v := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				v += "+" + s.Value
			}
		}
	}
	if v != "" {
		return v
	}
	exe, err := os.Executable()
	if err != nil {
		return "devel"
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		return "devel"
	}
	return "devel+" + plan.Hash(b)[:12]
}
