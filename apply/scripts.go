package apply

import (
	"embed"

	"github.com/pgwarm/pgwarm/host"
)

// The shell apply runs on hosts is in scripts/*.sh, each taking its values
// as positional arguments (host.Script): nothing is formatted into shell
// text. scripts_test.go checks each with sh -n and runs it under a real sh
// on temporary paths.
//
//go:embed scripts/*.sh
var scripts embed.FS

// script is the command that runs scripts/name with args.
func script(name string, args ...string) string {
	b, err := scripts.ReadFile("scripts/" + name)
	if err != nil {
		panic("apply: no embedded script " + name) // a build without it is a bug
	}
	return host.Script(string(b), args...)
}
