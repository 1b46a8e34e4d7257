package main

import (
	"context"
	"sync"

	"github.com/urfave/cli/v2"

	"github.com/pgwarm/pgwarm/host"
	"github.com/pgwarm/pgwarm/inventory"
	"github.com/pgwarm/pgwarm/ops"
)

// hostConfig is how pgwarm logs in to h: the inventory's ssh defaults
// merged with h's overrides (one definition, shared with ops).
func hostConfig(inv *inventory.Inventory, h inventory.Host) host.Config {
	return ops.HostConfig(inv, h, 0)
}

// dialOptions are the command line's say on connecting (sshFlags); nil
// tweak means the inventory's settings as they are.
type dialOptions struct {
	tweak    func(host.Config) host.Config
	parallel int
}

// sshDialOptions reads the ssh flags of commands that define them.
func sshDialOptions(c *cli.Context) dialOptions {
	return dialOptions{
		tweak:    func(cfg host.Config) host.Config { return applySSHFlags(c, cfg) },
		parallel: parallelLimit(c),
	}
}

// connect dials hosts in parallel. Every host that cannot be reached is
// reported at once (errors.Join, each prefixed with its host); on error
// the connections that did open are closed. closeAll closes the rest.
func connect(ctx context.Context, inv *inventory.Inventory, hosts []inventory.Host, opt dialOptions) (conns map[string]host.Host, closeAll func(), err error) {
	var mu sync.Mutex
	conns = map[string]host.Host{}
	names := make([]string, len(hosts))
	for i, h := range hosts {
		names[i] = h.Name
	}
	closeAll = func() {
		for _, c := range conns {
			c.Close()
		}
	}
	err = host.ParallelNames(ctx, opt.parallel, names, func(ctx context.Context, name string) error {
		ih, _ := inv.Host(name)
		cfg := hostConfig(inv, ih)
		if opt.tweak != nil {
			cfg = opt.tweak(cfg)
		}
		c, err := host.Dial(ctx, cfg)
		if err != nil {
			return err
		}
		mu.Lock()
		conns[name] = c
		mu.Unlock()
		return nil
	})
	if err != nil {
		closeAll()
		return nil, func() {}, err
	}
	return conns, closeAll, nil
}
