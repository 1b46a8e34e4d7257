package host_test

import (
	"testing"

	"github.com/pgwarm/pgwarm/host"
	"github.com/pgwarm/pgwarm/host/hosttest"
)

func TestFakeConformance(t *testing.T) {
	hosttest.Run(t, func(t *testing.T) host.Host {
		f := host.NewFake("fake1")
		f.HandlerContext = hosttest.LocalShell
		f.StreamHandler = hosttest.LocalShellStream
		return f
	})
}
