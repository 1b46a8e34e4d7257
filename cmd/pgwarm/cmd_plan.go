package main

import (
	"context"
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
	"github.com/pgwarm/pgwarm/inventory"
	"github.com/pgwarm/pgwarm/plan"
	"github.com/pgwarm/pgwarm/templates"
	"github.com/urfave/cli/v2"
)

func planCommand() *cli.Command {
	return &cli.Command{
		Name:  "plan",
		Usage: "read facts from the hosts (read-only) and print the changes",
		Description: "Connects to every host, reads what is there (one read-only probe per host, nothing\n" +
			"written), and prints every change apply would make: + create, ~ modify (with a\n" +
			"unified diff), - remove, ! one-shot action (seed, install, restart, reload).\n" +
			"Secrets are masked. --out saves the plan with the observed hashes so that\n" +
			"apply refuses it once any host or the inventory has changed.",
		Flags: append([]cli.Flag{
			inventoryFlag(),
			&cli.StringFlag{Name: "out", Usage: "save the plan to `FILE` (JSON, mode 0600)"},
			&cli.BoolFlag{Name: "json", Usage: "print the plan as JSON"},
			&cli.BoolFlag{Name: "detailed-exitcode", Usage: "exit 0 when nothing would change, 2 when changes are pending (1 is an error)"},
			&cli.StringSliceFlag{Name: "limit", Usage: "only these `HOSTS` (comma-separated)"},
			&cli.BoolFlag{Name: "stats", Usage: "print per-host timings and SSH round trips to stderr", Hidden: true},
		}, sshFlags()...),
		Action: planAction,
	}
}

func planAction(c *cli.Context) error {
	file := c.String("inventory")
	inv, err := loadInventory(file)
	if err != nil {
		return err
	}
	invBytes, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	r, err := templates.Render(inv)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	limit := splitLimit(c.StringSlice("limit"))
	reqs, err := plan.Requests(inv, r, limit)
	if err != nil {
		return err
	}
	probed, err := plan.Probed(inv, limit)
	if err != nil {
		return err
	}
	ctx := c.Context
	start := time.Now()
	f, st, err := gatherFacts(ctx, inv, probed, reqs, sshDialOptions(c))
	if err != nil {
		return err
	}
	p, err := plan.Compute(plan.Input{
		Inventory: inv, InventoryPath: file, InventoryHash: plan.Hash(invBytes),
		Rendered: r, Facts: f, Helpers: localHelpers(), Version: version(), Limit: limit,
	})
	if err != nil {
		return err
	}
	if c.Bool("stats") {
		st.print(c.App.ErrWriter, time.Since(start))
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

// gatherFacts connects to hosts and probes them all in parallel; every
// failure is reported at once, each naming its host.
func gatherFacts(ctx context.Context, inv *inventory.Inventory, hosts []inventory.Host, reqs map[string]facts.Request, opt dialOptions) (map[string]facts.Facts, *stats, error) {
	st := &stats{dial: map[string]time.Duration{}, probe: map[string]time.Duration{}, runs: map[string]int{}}
	t0 := time.Now()
	conns, closeAll, err := connect(ctx, inv, hosts, opt)
	if err != nil {
		return nil, nil, err
	}
	defer closeAll()
	dialed := time.Since(t0)
	var mu sync.Mutex
	out := map[string]facts.Facts{}
	list := make([]host.Host, 0, len(hosts))
	for _, h := range hosts {
		list = append(list, conns[h.Name])
	}
	err = host.Parallel(ctx, 0, list, func(ctx context.Context, h host.Host) error {
		ch := &counting{Host: h}
		t := time.Now()
		f, err := facts.Gather(ctx, ch, reqs[h.Name()])
		mu.Lock()
		defer mu.Unlock()
		st.dial[h.Name()], st.probe[h.Name()], st.runs[h.Name()] = dialed, time.Since(t), ch.n
		if err != nil {
			return err
		}
		out[h.Name()] = f
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return out, st, nil
}

// counting counts the commands a probe sends, for --stats.
type counting struct {
	host.Host
	n int
}

func (c *counting) Run(ctx context.Context, cmd host.Cmd) (host.Result, error) {
	c.n++
	return c.Host.Run(ctx, cmd)
}

type stats struct {
	dial, probe map[string]time.Duration
	runs        map[string]int
}

func (s *stats) print(w io.Writer, total time.Duration) {
	for _, n := range sortedKeys(s.runs) {
		fmt.Fprintf(w, "stats: %s connect %s probe %s commands %d\n", n, s.dial[n].Round(time.Millisecond), s.probe[n].Round(time.Millisecond), s.runs[n])
	}
	fmt.Fprintf(w, "stats: total %s\n", total.Round(time.Millisecond))
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// localHelpers finds the pgwarm-wal built next to this pgwarm (make build
// puts both in bin/) and maps the Debian name of its architecture to its
// sha256. Without one the plan says so and apply cannot install it.
func localHelpers() map[string]string {
	exe, err := os.Executable()
	if err != nil || runtime.GOOS != "linux" {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(exe), "pgwarm-wal"))
	if err != nil {
		return nil
	}
	arch := map[string]string{"386": "i386", "arm": "armhf", "ppc64le": "ppc64el"}[runtime.GOARCH]
	if arch == "" {
		arch = runtime.GOARCH
	}
	return map[string]string{arch: plan.Hash(b)}
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
