package ops

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseSize reads a byte count: "1048576", "64MB", "64MiB", "1 GB".
// PostgreSQL's units (kB, MB, GB, TB) are powers of 1024, like the IEC ones.
func ParseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') {
		i--
	}
	num, unit := strings.TrimSpace(t[:i]), strings.ToLower(strings.TrimSpace(t[i:]))
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad size %q", s)
	}
	mult := map[string]uint64{"": 1, "b": 1, "bytes": 1, "kb": 1 << 10, "kib": 1 << 10, "k": 1 << 10,
		"mb": 1 << 20, "mib": 1 << 20, "m": 1 << 20, "gb": 1 << 30, "gib": 1 << 30, "g": 1 << 30, "tb": 1 << 40, "tib": 1 << 40}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("bad size %q: unknown unit %q", s, unit)
	}
	return n * mult, nil
}
