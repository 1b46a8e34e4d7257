// Package pg is PostgreSQL knowledge shared by several layers: how to
// reach a server through a host connection.
package pg

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarm/pgwarm/host"
)

// PgxConfig parses connString and routes every connection through h, so
// pgx reaches PostgreSQL as a local client on the host: "host=127.0.0.1"
// for TCP, or "host=/var/run/postgresql" for the unix socket. No database
// port has to be open to the operator's machine.
func PgxConfig(h host.Host, connString string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, &host.Error{Host: h.Name(), Op: "dial", Err: fmt.Errorf("connection string: %w", err)}
	}
	cfg.DialFunc = h.DialContext
	// Names are resolved on the host (sshd does it for direct-tcpip),
	// never by the operator's resolver.
	cfg.LookupFunc = func(_ context.Context, name string) ([]string, error) { return []string{name}, nil }
	return cfg, nil
}
