package ssh

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/pgwarm/pgwarm/host"
	"net"
	"os"
	"path/filepath"

	xssh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// hostKeys checks server keys against one known_hosts file, strictly unless
// acceptNew, which records unknown keys but still refuses changed ones.
type hostKeys struct {
	file      string
	acceptNew bool
	hash      bool // record new keys hashed (HashKnownHosts yes, or the file is hashed)
}

// db loads the file; a missing file is an empty database.
func (k hostKeys) db() (xssh.HostKeyCallback, error) {
	if _, err := os.Stat(k.file); errors.Is(err, os.ErrNotExist) {
		return func(string, net.Addr, xssh.PublicKey) error { return &knownhosts.KeyError{} }, nil
	}
	cb, err := knownhosts.New(k.file)
	if err != nil {
		return nil, fmt.Errorf("known_hosts %s: %w", k.file, err)
	}
	return cb, nil
}

// algorithms lists the host key algorithms known_hosts has for addr, so the
// server is asked for a key type we can check (as ssh does); nil when none
// is known, leaving the defaults.
func (k hostKeys) algorithms(addr string) ([]string, error) {
	cb, err := k.db()
	if err != nil {
		return nil, err
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	probe, err := xssh.NewPublicKey(pub) // a key no file contains: the error lists the known ones
	if err != nil {
		return nil, err
	}
	var ke *knownhosts.KeyError
	if err := cb(addr, &net.TCPAddr{IP: net.IPv4zero}, probe); !errors.As(err, &ke) {
		return nil, nil
	}
	var algos []string
	seen := map[string]bool{}
	for _, w := range ke.Want {
		t := w.Key.Type()
		names := []string{t}
		if t == xssh.KeyAlgoRSA {
			names = []string{xssh.KeyAlgoRSASHA512, xssh.KeyAlgoRSASHA256, xssh.KeyAlgoRSA}
		}
		for _, n := range names {
			if !seen[n] {
				seen[n] = true
				algos = append(algos, n)
			}
		}
	}
	return algos, nil
}

// callback is the xssh.HostKeyCallback. The errors it returns wrap
// ErrHostKeyUnknown or ErrHostKeyChanged and say what to do.
func (k hostKeys) callback() (xssh.HostKeyCallback, error) {
	cb, err := k.db()
	if err != nil {
		return nil, err
	}
	return func(addr string, remote net.Addr, key xssh.PublicKey) error {
		err := cb(addr, remote, key)
		var ke *knownhosts.KeyError
		var re *knownhosts.RevokedError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &re):
			return fmt.Errorf("%w: %s offers key %s, which %s line %d marks as revoked",
				host.ErrHostKeyChanged, knownhosts.Normalize(addr), xssh.FingerprintSHA256(key), re.Revoked.Filename, re.Revoked.Line)
		case !errors.As(err, &ke):
			return err
		case len(ke.Want) > 0:
			w := ke.Want[0]
			return fmt.Errorf("%w: %s now offers %s %s, but %s line %d has %s %s; if the host was reinstalled on purpose, remove the old entry (ssh-keygen -R %s -f %s) and connect again",
				host.ErrHostKeyChanged, knownhosts.Normalize(addr), key.Type(), xssh.FingerprintSHA256(key),
				w.Filename, w.Line, w.Key.Type(), xssh.FingerprintSHA256(w.Key),
				host.Quote(knownhosts.Normalize(addr)), host.Quote(w.Filename))
		case k.acceptNew:
			return k.record(addr, key)
		default:
			return fmt.Errorf("%w: %s offers %s %s, which is not in %s; check the fingerprint, then rerun with --accept-new-host-keys (or add it with ssh-keyscan)",
				host.ErrHostKeyUnknown, knownhosts.Normalize(addr), key.Type(), xssh.FingerprintSHA256(key), k.file)
		}
	}, nil
}

// record appends one line for addr in ssh's format. One write with
// O_APPEND keeps concurrent dials of different hosts from interleaving.
func (k hostKeys) record(addr string, key xssh.PublicKey) error {
	if err := os.MkdirAll(filepath.Dir(k.file), 0o700); err != nil {
		return fmt.Errorf("recording host key: %w", err)
	}
	old, err := os.ReadFile(k.file)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("recording host key: %w", err)
	}
	name := knownhosts.Normalize(addr)
	if k.hash || bytes.HasPrefix(old, []byte("|1|")) || bytes.Contains(old, []byte("\n|1|")) {
		name = knownhosts.HashHostname(name)
	}
	line := name + " " + key.Type() + " " + base64.StdEncoding.EncodeToString(key.Marshal()) + "\n"
	if len(old) > 0 && !bytes.HasSuffix(old, []byte("\n")) {
		line = "\n" + line
	}
	f, err := os.OpenFile(k.file, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("recording host key: %w", err)
	}
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return fmt.Errorf("recording host key in %s: %w", k.file, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("recording host key in %s: %w", k.file, err)
	}
	return nil
}
