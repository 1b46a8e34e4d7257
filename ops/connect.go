package ops

import (
	"time"

	"github.com/pgwarm/pgwarm/host/ssh"
	"github.com/pgwarm/pgwarm/inventory"
)

// HostConfig is how to reach h over SSH according to the inventory: its ssh
// defaults merged with h's overrides. Every command dials through it.
func HostConfig(inv *inventory.Inventory, h inventory.Host, timeout time.Duration) ssh.Config {
	s := inv.SSHFor(h)
	become := ""
	if s.Become == "sudo" {
		become = "sudo"
	}
	return ssh.Config{
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
