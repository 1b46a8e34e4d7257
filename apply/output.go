package apply

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Printer is the one place apply writes to; every line about a host starts
// with the host's name. It is safe for concurrent use.
type Printer struct {
	mu       sync.Mutex
	w        io.Writer
	terminal bool // draw progress bars instead of periodic lines
}

// NewPrinter writes to w; terminal says whether w is a terminal.
func NewPrinter(w io.Writer, terminal bool) *Printer {
	return &Printer{w: w, terminal: terminal}
}

// Step announces step n of total.
func (p *Printer) Step(n, total int, title string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(p.w, StepLine(n, total, title))
}

// StepDone reports how long step n took, so an operator sees where time goes.
func (p *Printer) StepDone(n, total int, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(p.w, StepDoneLine(n, total, d))
}

// StepLine and StepDoneLine are how every workflow (apply, rebuild)
// announces a step and its end.
func StepLine(n, total int, title string) string { return fmt.Sprintf("[%d/%d] %s", n, total, title) }

func StepDoneLine(n, total int, d time.Duration) string {
	return fmt.Sprintf("[%d/%d] done in %s", n, total, d.Round(100*time.Millisecond))
}

// Hostf prints one line about host.
func (p *Printer) Hostf(host, format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	for _, l := range strings.Split(strings.TrimRight(msg, "\n"), "\n") {
		fmt.Fprintf(p.w, "%s: %s\n", host, l)
	}
}

// Progress reports the bytes of a long copy (the base backup).
type Progress interface {
	Set(done int64)
	Finish()
}

// Progress starts a progress report for host: a bar with bytes, rate and
// ETA on a terminal, otherwise a plain line every interval.
func (p *Printer) Progress(host, what string, total int64, interval time.Duration) Progress {
	if p.terminal {
		bar := progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(&lockedWriter{p}),
			progressbar.OptionSetDescription(host+": "+what),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(p.w) }),
			progressbar.OptionFullWidth(),
		)
		return &barProgress{bar: bar}
	}
	return &lineProgress{p: p, host: host, what: what, total: total, interval: interval, start: time.Now()}
}

type lockedWriter struct{ p *Printer }

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.p.mu.Lock()
	defer l.p.mu.Unlock()
	return l.p.w.Write(b)
}

type barProgress struct{ bar *progressbar.ProgressBar }

func (b *barProgress) Set(done int64) {
	if done > b.bar.GetMax64() {
		b.bar.ChangeMax64(done) // the total is an estimate
	}
	_ = b.bar.Set64(done)
}
func (b *barProgress) Finish() { _ = b.bar.Finish() }

type lineProgress struct {
	p        *Printer
	host     string
	what     string
	total    int64
	interval time.Duration
	start    time.Time
	last     time.Time
	done     int64
}

func (l *lineProgress) Set(done int64) {
	l.done = done
	if time.Since(l.last) < l.interval {
		return
	}
	l.last = time.Now()
	l.p.Hostf(l.host, "%s", ProgressLine(l.what, done, l.total, time.Since(l.start)))
}

func (l *lineProgress) Finish() {
	l.p.Hostf(l.host, "%s done: %s in %s", l.what, humanBytes(l.done), time.Since(l.start).Round(time.Second))
}

// ProgressLine is the plain progress line: bytes, percent, rate, ETA.
func ProgressLine(what string, done, total int64, elapsed time.Duration) string {
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(done) / s
	}
	line := fmt.Sprintf("%s: %s", what, humanBytes(done))
	if total > 0 {
		pct := min(100, done*100/total)
		line += fmt.Sprintf(" of ~%s (%d%%)", humanBytes(total), pct)
	}
	line += fmt.Sprintf(", %s/s", humanBytes(int64(rate)))
	if total > done && rate > 0 {
		eta := time.Duration(float64(total-done) / rate * float64(time.Second))
		line += ", ETA " + eta.Round(time.Second).String()
	}
	return line
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
