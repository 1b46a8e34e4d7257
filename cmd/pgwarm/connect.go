package main

import (
	"context"
	"sync"

	"github.com/pgwarm/pgwarm/host"
	"github.com/pgwarm/pgwarm/inventory"
)

// hostConfig is how pgwarm logs in to h: the inventory's ssh defaults
// merged with h's overrides.
func hostConfig(inv *inventory.Inventory, h inventory.Host) host.Config {
	s := inv.SSHFor(h)
	become := s.Become
	if become == "none" {
		become = ""
	}
	return host.Config{
		Name:           h.Name,
		Address:        h.Address,
		Port:           s.Port,
		User:           s.User,
		IdentityFile:   s.IdentityFile,
		KnownHostsFile: s.KnownHosts,
		Become:         become,
	}
}

// connect dials hosts in parallel. Every host that cannot be reached is
// reported at once (errors.Join, each prefixed with its host); on error
// the connections that did open are closed. closeAll closes the rest.
func connect(ctx context.Context, inv *inventory.Inventory, hosts []inventory.Host) (conns map[string]host.Host, closeAll func(), err error) {
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
	err = host.ParallelNames(ctx, 0, names, func(ctx context.Context, name string) error {
		ih, _ := inv.Host(name)
		c, err := host.Dial(ctx, hostConfig(inv, ih))
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
