package apply

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pgwarm/pgwarm/host"
)

// CloseArchiveSessions ends the archive account's open ssh connections on
// the archive host. sshd fixes a key's forced command (its --allow rights)
// when a connection authenticates, and the PostgreSQL hosts keep one shared
// connection open (ControlMaster): after authorized_keys changes, only new
// logins get the new rights. pgwarm's own session runs as another account.
func CloseArchiveSessions(ctx context.Context, h host.Host, user string) error {
	// The per-connection process is sshd-session from OpenSSH 9.8 on, sshd before.
	res, err := h.Run(ctx, host.Cmd{Command: "pkill -TERM -u " + host.Quote(user) + " -x 'sshd|sshd-session'; true", Timeout: 10 * time.Second})
	if err != nil {
		return err
	}
	if !res.OK() {
		return &host.Error{Host: h.Name(), Err: fmt.Errorf("closing %s's ssh connections: %s", user, strings.TrimSpace(string(res.Stderr)))}
	}
	return nil
}
