package ops

import (
	"time"

	"github.com/pgwarm/pgwarm/host"
	"github.com/pgwarm/pgwarm/inventory"
)

// HostConfig is how to reach h over SSH according to the inventory: its ssh
// defaults merged with h's overrides. Every command dials through it.
func HostConfig(inv *inventory.Inventory, h inventory.Host, timeout time.Duration) host.Config {
	s := inv.SSHFor(h)
	become := ""
	if s.Become == "sudo" {
		become = "sudo"
	}
	return host.Config{
		Name:           h.Name,
		Address:        h.Address,
		Port:           s.Port,
		User:           s.User,
		IdentityFile:   s.IdentityFile,
		KnownHostsFile: s.KnownHosts,
		Become:         become,
		ConnectTimeout: timeout,
	}
}

// NewPool returns a pool over every inventory host, dialing each on first
// use with the given connect timeout.
func NewPool(inv *inventory.Inventory, timeout time.Duration) (*host.Pool, error) {
	cfgs := make([]host.Config, 0, len(inv.Hosts))
	for _, h := range inv.Hosts {
		cfgs = append(cfgs, HostConfig(inv, h, timeout))
	}
	return host.NewPool(cfgs...)
}

// NewPoolWith is NewPool with a TCP connect timeout of their own for some
// hosts (promote gives up sooner on an old primary that may be gone).
func NewPoolWith(inv *inventory.Inventory, timeout time.Duration, dial map[string]time.Duration) (*host.Pool, error) {
	cfgs := make([]host.Config, 0, len(inv.Hosts))
	for _, h := range inv.Hosts {
		cfg := HostConfig(inv, h, timeout)
		cfg.DialTimeout = dial[h.Name]
		cfgs = append(cfgs, cfg)
	}
	return host.NewPool(cfgs...)
}
