package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// procState is the state letter of pid in /proc, "" when it is gone.
func procState(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	if i := bytes.LastIndexByte(b, ')'); i >= 0 {
		if f := bytes.Fields(b[i+1:]); len(f) > 0 {
			return string(f[0])
		}
	}
	return "?"
}

// topDescendant finds the nearest descendant of root running pgwarm-wal
// (its own children, the ssh shim's serve, are further down).
func topDescendant(t *testing.T, root int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		children := map[int][]int{}
		comm := map[int]string{}
		des, _ := os.ReadDir("/proc")
		for _, de := range des {
			pid, err := strconv.Atoi(de.Name())
			if err != nil {
				continue
			}
			if pp := parentOf(pid); pp > 0 {
				children[pp] = append(children[pp], pid)
			}
			c, _ := os.ReadFile("/proc/" + de.Name() + "/comm")
			comm[pid] = strings.TrimSpace(string(c))
		}
		for level := []int{root}; len(level) > 0; {
			var next []int
			for _, p := range level {
				for _, c := range children[p] {
					if comm[c] == "pgwarm-wal" {
						return c
					}
					next = append(next, c)
				}
			}
			level = next
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("pgwarm-wal restore did not start")
	return 0
}

// A waiting restore (--wait, pg_standby mode, and --linger) exits within
// 2 s of the server process that started it being killed, and writes
// nothing afterwards, although its segment and its trigger then appear.
// The server is the process that runs restore_command through /bin/sh -c:
// either the restore's parent (a shell that exec's, or the server itself),
// or its grandparent, with a shell in between that keeps waiting.
func TestRestoreDiesWithItsServer(t *testing.T) {
	layouts := map[string]string{
		"parent":      `"$@" 2>"$ERR" & wait`,
		"grandparent": `sh -c '"$@" 2>"$ERR"; :' sh "$@" & wait`,
	}
	ssh := func(t *testing.T) backend { return sshBackend(t, "push,get,list") }
	// Each backend, mode and layout at least once, each pair of them
	// once; one at a time, so that the 2 s are not spent waiting for a CPU.
	for _, c := range []struct {
		mk           func(*testing.T) backend
		mode, layout string
	}{
		{localBackend, "wait", "parent"},
		{localBackend, "linger", "grandparent"},
		{ssh, "wait", "grandparent"},
		{ssh, "linger", "parent"},
	} {
		b := c.mk(t)
		t.Run(b.name+"/"+c.mode+"/"+c.layout, func(t *testing.T) {
			restoreDiesWithServer(t, b, c.mode, layouts[c.layout])
		})
	}
}

func restoreDiesWithServer(t *testing.T, b backend, mode, script string) {
	src := t.TempDir()
	b.run(t, "ship", "--archive", b.url, writeFile(t, src, seg1, fakeSegment(seg1, sysA, 1)), seg1).want(t, 0)
	data := t.TempDir()
	if err := os.Mkdir(filepath.Join(data, "pg_wal"), 0o700); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(data, "pg_wal", "RECOVERYXLOG")
	trigger := filepath.Join(t.TempDir(), "promote.trigger")
	errFile := filepath.Join(t.TempDir(), "stderr")
	args := []string{binPath, "restore", "--archive", b.url, "--trigger", trigger}
	if mode == "wait" {
		args = append(args, "--wait")
	} else {
		args = append(args, "--linger", "60s")
	}
	server := exec.Command("sh", append([]string{"-c", script, "server"}, append(args, seg2, dest)...)...)
	server.Env = append(append(os.Environ(), b.env...), "ERR="+errFile)
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	pid := topDescendant(t, server.Process.Pid)
	t.Cleanup(func() {
		if procState(pid) != "" && procState(pid) != "Z" {
			_ = syscall.Kill(pid, syscall.SIGKILL) // the orphan this test made
		}
	})
	time.Sleep(500 * time.Millisecond) // waiting for seg2 by now
	if s := procState(pid); s == "" || s == "Z" {
		t.Fatalf("restore exited before its server was killed: %s", readErr(errFile))
	}
	if err := server.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = server.Wait()
	killed := time.Now()
	for procState(pid) != "" && procState(pid) != "Z" {
		if time.Since(killed) > 2*time.Second {
			// Go on: what it does next is the harm.
			t.Errorf("restore (pid %d) still running 2 s after its server was killed", pid)
			_ = syscall.Kill(pid, syscall.SIGQUIT) // Go prints every goroutine to ERR
			time.Sleep(time.Second)
			t.Logf("where it was (SIGQUIT):\n%s", readErr(errFile))
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("%v after its server was killed, restore is %q", time.Since(killed).Round(time.Millisecond), procState(pid))
	// What an orphan would have handed over: the segment, then the trigger.
	b.run(t, "ship", "--archive", b.url, writeFile(t, src, seg2, fakeSegment(seg2, sysA, 2)), seg2).want(t, 0)
	if err := os.WriteFile(trigger, []byte("smart\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if des, _ := os.ReadDir(filepath.Join(data, "pg_wal")); len(des) != 0 {
		t.Fatalf("written after the server was killed: %s", des[0].Name())
	}
	if msg := readErr(errFile); !t.Failed() && !strings.Contains(msg, "the server process that started this restore is gone") {
		t.Fatalf("restore's last words: %q", msg)
	}
}

func readErr(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}
