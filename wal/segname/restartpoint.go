package segname

// Restart points (archive_cleanup_command's %r) are checked against what
// the archive holds before cleanup believes them: CleanupSet deletes
// everything on the name's timeline before it, so a name far in the future
// would empty the timeline.

// Newest returns the newest archived segment or .partial on timeline tli,
// and false when that timeline has none.
func Newest(names []Name, tli uint32) (Name, bool) {
	var out Name
	found := false
	for _, n := range names {
		if n.TLI != tli || n.Kind != Segment && n.Kind != Partial {
			continue
		}
		if !found || n.Log > out.Log || n.Log == out.Log && n.Seg > out.Seg {
			out, found = Name{Kind: Segment, TLI: n.TLI, Log: n.Log, Seg: n.Seg}, true
		}
	}
	return out, found
}

// RestartPointCheck is what the archive says about a reported restart
// point.
type RestartPointCheck struct {
	// Beyond: the point lies past the newest archived segment of its
	// timeline, or its timeline has nothing archived.
	Beyond bool
	// Newest is the newest archived segment of the point's timeline,
	// valid when HasNewest.
	Newest    Name
	HasNewest bool
}

// CheckRestartPoint compares restart point r with the archived names.
// Only r's own timeline matters: CleanupSet never deletes on another.
func CheckRestartPoint(names []Name, r Name) RestartPointCheck {
	newest, ok := Newest(names, r.TLI)
	c := RestartPointCheck{Newest: newest, HasNewest: ok}
	c.Beyond = !ok || r.Log > newest.Log || r.Log == newest.Log && r.Seg > newest.Seg
	return c
}

// Before orders restart points: by timeline, then position. A standby
// whose restart point is on a later timeline than another's needs nothing
// of the earlier timeline any more (its recovery reads forward from its
// own timeline), so the earliest point in this order is the one every
// standby agrees may be cleaned below, on its timeline.
func Before(a, b Name) bool {
	if a.TLI != b.TLI {
		return a.TLI < b.TLI
	}
	return a.Log < b.Log || a.Log == b.Log && a.Seg < b.Seg
}
