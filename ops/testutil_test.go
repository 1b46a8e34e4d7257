package ops

import "github.com/pgwarm/pgwarm/host"

func hostResult(stdout string, code int) host.Result {
	return host.Result{Stdout: []byte(stdout), ExitCode: code, Stderr: []byte("psql: error: boom\n")}
}
