package host

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// CmdError names a command that failed to run (not one that exited
// non-zero: that is a Result), saying so when its timeout killed it.
func CmdError(command string, err error, timeout time.Duration) error {
	if errors.Is(err, context.DeadlineExceeded) && timeout > 0 {
		return fmt.Errorf("%s: killed after timeout %s: %w", ShortCmd(command), timeout, err)
	}
	return fmt.Errorf("%s: %w", ShortCmd(command), err)
}

// ShortCmd is a command for an error message: first line, bounded.
func ShortCmd(c string) string {
	c = FirstLine([]byte(c))
	if len(c) > 60 {
		c = c[:57] + "..."
	}
	return strconv.Quote(c)
}

// CheckPath refuses what is not an absolute path; a file operation is
// never relative to some working directory.
func CheckPath(p string) error {
	if !strings.HasPrefix(p, "/") || strings.ContainsRune(p, 0) {
		return fmt.Errorf("%q is not an absolute path", p)
	}
	return nil
}

// CheckOwner refuses an owner that could be read as an option or as more
// than one word by chown.
func CheckOwner(owner string) error {
	if strings.HasPrefix(owner, "-") || strings.ContainsAny(owner, " \t\n\x00") || strings.Count(owner, ":") > 1 {
		return fmt.Errorf("bad owner %q (want user or user:group)", owner)
	}
	return nil
}
