package main

import (
	"context"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pgwarm/pgwarm/host"
	"github.com/pgwarm/pgwarm/host/ssh"
	"github.com/pgwarm/pgwarm/inventory"
	"github.com/pgwarm/pgwarm/ops"
)

// hostConfig is how pgwarm logs in to h: the inventory's ssh defaults
// merged with h's overrides (one definition, shared with ops).
func hostConfig(inv *inventory.Inventory, h inventory.Host) ssh.Config {
	return ops.HostConfig(inv, h, 0)
}

// dialFunc connects one host; ssh.Dial, or a fake in tests.
type dialFunc func(ctx context.Context, cfg ssh.Config) (host.Host, error)

// dialMetadata is the App.Metadata key under which tests put a dialFunc
// (per app, so no package state): every command that reaches hosts dials
// through dialer, so a test sees the configs the command line produced.
const dialMetadata = "pgwarm.dial"

// dialOverride is the test's dialFunc, nil when there is none.
func dialOverride(c *cli.Context) dialFunc {
	d, _ := c.App.Metadata[dialMetadata].(dialFunc)
	return d
}

func dialer(c *cli.Context) dialFunc {
	if d := dialOverride(c); d != nil {
		return d
	}
	return ssh.Dial
}

// dialOptions are the command line's say on connecting (sshFlags); nil
// tweak means the inventory's settings as they are.
type dialOptions struct {
	tweak    func(ssh.Config) ssh.Config
	parallel int
	dial     dialFunc // nil: ssh.Dial (plan: ssh.DialRun)
}

// sshDialOptions reads the ssh flags of commands that define them.
func sshDialOptions(c *cli.Context) dialOptions {
	return dialOptions{
		tweak:    func(cfg ssh.Config) ssh.Config { return applySSHFlags(c, cfg) },
		parallel: parallelLimit(c),
		dial:     dialOverride(c),
	}
}

// configFor is how the command of c logs in to h: the inventory's
// settings with the command line's SSH options over them.
func configFor(c *cli.Context, inv *inventory.Inventory, h inventory.Host) ssh.Config {
	return applySSHFlags(c, hostConfig(inv, h))
}

// newPool is the pool of every inventory host for the commands of ops
// (status, verify, promote, rebuild), dialing with the SSH options of c.
// dial gives some hosts a TCP connect timeout of their own.
func newPool(c *cli.Context, inv *inventory.Inventory, dial map[string]time.Duration) (*ssh.Pool, error) {
	cfgs := make([]ssh.Config, 0, len(inv.Hosts))
	for _, h := range inv.Hosts {
		cfg := configFor(c, inv, h)
		cfg.DialTimeout = dial[h.Name]
		cfgs = append(cfgs, cfg)
	}
	p, err := ssh.NewPool(cfgs...)
	if err != nil {
		return nil, err
	}
	p.Dial = dialer(c)
	return p, nil
}

// redial connects one inventory host again, with the same options.
func redial(c *cli.Context, inv *inventory.Inventory) func(ctx context.Context, name string) (host.Host, error) {
	return func(ctx context.Context, name string) (host.Host, error) {
		h, _ := inv.Host(name)
		return dialer(c)(ctx, configFor(c, inv, h))
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
	dial := opt.dial
	if dial == nil {
		dial = ssh.Dial
	}
	err = host.ParallelNames(ctx, opt.parallel, names, func(ctx context.Context, name string) error {
		ih, _ := inv.Host(name)
		cfg := hostConfig(inv, ih)
		if opt.tweak != nil {
			cfg = opt.tweak(cfg)
		}
		c, err := dial(ctx, cfg)
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
