package main

import (
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pgwarm/pgwarm/host/ssh"
)

// defaultParallel bounds how many hosts are connected to and worked on at
// once; a pair plus its archive host fits in one round.
const defaultParallel = 8

// sshFlags are the connection flags of every command that reaches hosts
// (status, verify, promote, rebuild, plan, apply).
func sshFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{
			Name:    "accept-new-host-keys",
			Usage:   "record the key of a host not yet in known_hosts (a CHANGED key is still refused)",
			EnvVars: []string{"PGWARM_ACCEPT_NEW_HOST_KEYS"},
		},
		&cli.StringFlag{
			Name:    "ssh-config",
			Usage:   "ssh_config `FILE` for HostName, User, Port, IdentityFile, ProxyJump (default ~/.ssh/config; \"none\" ignores it)",
			EnvVars: []string{"PGWARM_SSH_CONFIG"},
		},
		&cli.DurationFlag{
			Name:  "connect-timeout",
			Value: 10 * time.Second,
			Usage: "give up connecting to a host after `D`",
		},
	}
}

// parallelFlag bounds the hosts plan and apply work on at once.
func parallelFlag() cli.Flag {
	return &cli.IntFlag{
		Name:  "parallel",
		Value: defaultParallel,
		Usage: "work on at most `N` hosts at once",
	}
}

// applySSHFlags returns cfg with what the flags say; flags a command does
// not define leave cfg as it is.
func applySSHFlags(c *cli.Context, cfg ssh.Config) ssh.Config {
	if c.Bool("accept-new-host-keys") {
		cfg.AcceptNewHostKeys = true
	}
	if f := c.String("ssh-config"); f != "" {
		cfg.SSHConfigFile = f
	}
	if d := c.Duration("connect-timeout"); d > 0 {
		cfg.ConnectTimeout = d
	}
	return cfg
}

// parallelLimit is --parallel, or the default for commands without it.
func parallelLimit(c *cli.Context) int {
	if n := c.Int("parallel"); n > 0 {
		return n
	}
	return defaultParallel
}
