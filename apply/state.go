package apply

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/pgwarm/pgwarm/facts"
	"github.com/pgwarm/pgwarm/host"
	"github.com/pgwarm/pgwarm/inventory"
	"github.com/pgwarm/pgwarm/plan"
	"github.com/pgwarm/pgwarm/templates"
)

// Options are the inputs of a run from outside the inventory.
type Options struct {
	// Password is the replication role's password (from the variable
	// replication.password_env names). It only ever goes into 0600 files
	// and, hashed, into CREATE/ALTER ROLE.
	Password string
	// Helper returns the local path of the pgwarm-wal binary for a host
	// architecture (amd64, arm64, ...).
	Helper func(arch string) (string, error)
	// Holder identifies this run in the lock: user@host.
	Holder string
	// ForceUnlock removes a lock left by another run.
	ForceUnlock bool
	// PidAlive reports whether a process of this machine is alive; used to
	// recognise a lock left by a killed run of the same operator.
	PidAlive func(pid int) bool
	// LocalHost is this machine's host name (the lock's holder host).
	LocalHost string
	// Plan is the plan the operator was shown (saved, or made by apply
	// and confirmed): apply changes only its hosts, and refuses to write
	// a file that changed on its host since the plan observed it. nil:
	// every host, no plan to hold to (rebuild, promote).
	Plan *plan.Plan
}

// State is what the steps share during one run.
type State struct {
	Inv      *inventory.Inventory
	Paths    inventory.Paths
	Rendered templates.Rendered
	Hosts    map[string]host.Host
	Facts    map[string]facts.Facts
	Opts     Options
	Out      *Printer

	mu       sync.Mutex
	pubKeys  map[string]string // host -> postgres user's public key line
	hostKeys map[string]string // host -> "type base64" of its ssh host key
	changed  map[string]bool   // host -> PostgreSQL configuration written this run
	switched map[string]string // primary -> last segment proved in the archive
	lockHeld string            // the lock content we wrote, for release
	// observed: host -> path -> the plan's fingerprint of that path
	// (plan.Observe), updated as apply writes; nil without a plan.
	observed map[string]map[string]string
	seeded   map[string]bool // host -> its data directory was replaced this run
}

// NewState prepares a run. hosts must hold a connection for every host in
// the inventory, facts the probe of every host.
func NewState(inv *inventory.Inventory, r templates.Rendered, hosts map[string]host.Host, f map[string]facts.Facts, opts Options, out *Printer) *State {
	s := &State{
		Inv: inv, Paths: inv.Paths(), Rendered: r, Hosts: hosts, Facts: f, Opts: opts, Out: out,
		pubKeys: map[string]string{}, hostKeys: map[string]string{}, changed: map[string]bool{}, switched: map[string]string{},
		seeded: map[string]bool{},
	}
	if opts.Plan != nil {
		s.observed = map[string]map[string]string{}
		for _, hp := range opts.Plan.Hosts {
			s.observed[hp.Name] = maps.Clone(hp.Observed)
		}
	}
	return s
}

// inPlan reports whether apply may change host name: it is one of the
// plan's hosts (every host without a plan).
func (s *State) inPlan(name string) bool {
	if s.Opts.Plan == nil {
		return true
	}
	_, ok := s.observed[name]
	return ok
}

// plannedPath reports whether the plan changes path on host (created,
// modified, removed, or installed): apply writes only those. Without a
// plan, every path. A data directory replaced by a seed in this run is
// written whole, as the seed left it to be: the plan compared its files
// with the directory the seed replaced.
func (s *State) plannedPath(hostName, p string) bool {
	if s.Opts.Plan == nil {
		return true
	}
	s.mu.Lock()
	seeded := s.seeded[hostName]
	s.mu.Unlock()
	if seeded && strings.HasPrefix(p, s.Paths.DataDir+"/") {
		return true
	}
	for _, hp := range s.Opts.Plan.Hosts {
		if hp.Name != hostName {
			continue
		}
		for _, c := range hp.Changes {
			if c.Path == p {
				return true
			}
		}
	}
	return false
}

// plannedAction reports whether the plan has a one-shot action on host
// whose subject starts with prefix ("seed ", "restart postgresql").
func (s *State) plannedAction(hostName, prefix string) bool {
	for _, hp := range s.Opts.Plan.Hosts {
		if hp.Name != hostName {
			continue
		}
		for _, c := range hp.Changes {
			if c.Action == plan.Run && strings.HasPrefix(c.Subject, prefix) {
				return true
			}
		}
	}
	return false
}

// planned returns the hosts of list apply may change, in list's order.
func (s *State) planned(list []inventory.Host) []inventory.Host {
	var out []inventory.Host
	for _, h := range list {
		if s.inPlan(h.Name) {
			out = append(out, h)
		}
	}
	return out
}

func (s *State) host(name string) host.Host { return s.Hosts[name] }

func (s *State) markChanged(h string) {
	s.mu.Lock()
	s.changed[h] = true
	s.mu.Unlock()
}

func (s *State) wasChanged(h string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed[h]
}

// FactsRequest is what apply needs to know about h before it starts.
func FactsRequest(inv *inventory.Inventory, h inventory.Host) facts.Request {
	p := inv.Paths()
	req := facts.Request{}
	if h.IsPostgres() {
		req.DataDir, req.BinDir, req.Service = p.DataDir, p.BinDir, p.Service
	}
	if h.Name == inv.Archive.Host {
		req.ArchivePath = inv.Archive.Path
		req.ArchiveUser = inv.Archive.User
	}
	return req
}

// HelperNextTo finds pgwarm-wal for an architecture next to the running
// executable (or in dir): pgwarm-wal-linux-ARCH first, then pgwarm-wal when
// ARCH is the architecture it was built for (buildArch).
func HelperNextTo(dir, buildArch string) func(arch string) (string, error) {
	return func(arch string) (string, error) {
		cands := []string{filepath.Join(dir, "pgwarm-wal-linux-"+arch)}
		if arch == buildArch {
			cands = append(cands, filepath.Join(dir, "pgwarm-wal"))
		}
		for _, c := range cands {
			if st, err := os.Stat(c); err == nil && st.Mode().IsRegular() {
				return c, nil
			}
		}
		return "", fmt.Errorf("no pgwarm-wal binary for linux/%s (looked for %v; build it with GOARCH=%s)", arch, cands, arch)
	}
}
