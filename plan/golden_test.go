package plan

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/pgwarm/pgwarm/facts"
	"github.com/pgwarm/pgwarm/inventory"
	"github.com/pgwarm/pgwarm/templates"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/plan")

// Fixed inputs of every golden case: the replication password and the
// pgwarm-wal build apply would upload.
const (
	goldenPassword = "correct horse battery staple"
	goldenHelper   = "b7fcb1d39c2cf1da0ae599716a039f4724c491cad5bd56dd4f8bbc9c8131ef2b" // sha256("pgwarm-wal test build")
)

// goldenInput loads testdata/plan/<name>: inventory.yaml and facts.json
// (the observed hosts, as facts.Gather returns them).
func goldenInput(t *testing.T, dir string) Input {
	t.Helper()
	invFile := filepath.Join(dir, "inventory.yaml")
	inv, err := inventory.Load(invFile)
	if err != nil {
		t.Fatal(err)
	}
	invBytes, err := os.ReadFile(invFile)
	if err != nil {
		t.Fatal(err)
	}
	r, err := templates.RenderWith(inv, templates.Options{LookupEnv: func(string) (string, bool) { return goldenPassword, true }})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "facts.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f map[string]facts.Facts
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return Input{
		Inventory: inv, InventoryPath: filepath.ToSlash(invFile), InventoryHash: Hash(invBytes),
		Rendered: r, Facts: f, Helpers: map[string]string{"amd64": goldenHelper}, Version: "test",
	}
}

func TestGolden(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("..", "testdata", "plan", "*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			in := goldenInput(t, dir)
			p, err := Compute(in)
			got := map[string][]byte{}
			if err != nil {
				got["error.txt"] = []byte(err.Error() + "\n")
			} else {
				var txt bytes.Buffer
				if err := Human(&txt, p, false); err != nil {
					t.Fatal(err)
				}
				got["plan.txt"] = txt.Bytes()
				if got["plan.json"], err = p.JSON(); err != nil {
					t.Fatal(err)
				}
			}
			for _, name := range []string{"error.txt", "plan.txt", "plan.json"} {
				file := filepath.Join(dir, name)
				if *update {
					if g, ok := got[name]; ok {
						if err := os.WriteFile(file, g, 0o644); err != nil {
							t.Fatal(err)
						}
					} else {
						os.Remove(file)
					}
					continue
				}
				want, err := os.ReadFile(file)
				g, ok := got[name]
				switch {
				case err != nil && ok:
					t.Errorf("%s: produced but not expected (run go test ./plan -update):\n%s", name, g)
				case err == nil && !ok:
					t.Errorf("%s: expected but not produced", name)
				case ok && !bytes.Equal(g, want):
					t.Errorf("%s differs (run go test ./plan -update to accept):\n%s", name, UnifiedDiff(string(want), string(g)))
				}
			}
		})
	}
}
