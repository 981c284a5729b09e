// Checks tlog-cosignature/v1 (Ed25519, type 0x04) lines that a witness returned and we stored,
// with Go's golang.org/x/mod/sumdb/note: note.Open must verify both the log's checkpoint
// signature and the witness's cosignature. The cosignature verifier is written here from the
// C2SP spec (x/mod ships only type 0x01), independently of our TypeScript.
//
//	go run ./cosig <dir of *.note files> <log vkey file> <witness vkey>
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

type cosigV1 struct {
	name string
	hash uint32
	pub  ed25519.PublicKey
	last uint64
}

func (v *cosigV1) Name() string    { return v.name }
func (v *cosigV1) KeyHash() uint32 { return v.hash }
func (v *cosigV1) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig)
	if t == 0 || t >= 1<<63 {
		return false
	}
	m := fmt.Appendf(nil, "cosignature/v1\ntime %d\n", t)
	m = append(m, msg...)
	if !ed25519.Verify(v.pub, m, sig[8:]) {
		return false
	}
	v.last = t
	return true
}

func parseCosigVkey(s string) (*cosigV1, error) {
	parts := strings.SplitN(s, "+", 3)
	if len(parts) != 3 {
		return nil, fmt.Errorf("malformed witness vkey")
	}
	key, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(key) != 33 || key[0] != 0x04 {
		return nil, fmt.Errorf("witness vkey is not base64(0x04 || ed25519 key)")
	}
	h := sha256.New()
	h.Write([]byte(parts[0]))
	h.Write([]byte{'\n', 0x04})
	h.Write(key[1:])
	sum := h.Sum(nil)
	if hex.EncodeToString(sum[:4]) != parts[1] {
		return nil, fmt.Errorf("witness vkey id %s does not match its key", parts[1])
	}
	return &cosigV1{name: parts[0], hash: binary.BigEndian.Uint32(sum[:4]), pub: ed25519.PublicKey(key[1:])}, nil
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: cosig <dir> <log vkey file> <witness vkey>")
		os.Exit(2)
	}
	logKey, err := os.ReadFile(os.Args[2])
	check(err)
	logV, err := note.NewVerifier(strings.TrimSpace(string(logKey)))
	check(err)
	w, err := parseCosigVkey(os.Args[3])
	check(err)
	files, err := filepath.Glob(filepath.Join(os.Args[1], "*.note"))
	check(err)
	sort.Strings(files)
	if len(files) == 0 {
		check(fmt.Errorf("no *.note files in %s", os.Args[1]))
	}
	for _, f := range files {
		msg, err := os.ReadFile(f)
		check(err)
		n, err := note.Open(msg, note.VerifierList(logV, w))
		if err != nil {
			check(fmt.Errorf("%s: %v", f, err))
		}
		var byLog, byWitness bool
		for _, s := range n.Sigs {
			byLog = byLog || (s.Name == logV.Name() && s.Hash == logV.KeyHash())
			byWitness = byWitness || (s.Name == w.name && s.Hash == w.hash)
		}
		if !byLog || !byWitness {
			check(fmt.Errorf("%s: log signature %v, witness cosignature %v", f, byLog, byWitness))
		}
		lines := bytes.SplitN(msg, []byte("\n"), 3)
		fmt.Printf("cosignature by %s on %s size %s at %s verified by Go sumdb/note\n", w.name, lines[0], lines[1], time.Unix(int64(w.last), 0).UTC().Format(time.RFC3339))
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
}
