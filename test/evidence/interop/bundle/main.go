// Independent check of a case bundle with Go's golang.org/x/mod/sumdb/{note,tlog}: checkpoint
// signatures, tlog-proof inclusion proofs and consistency proofs.
// Usage: go run ./bundle <extracted bundle dir> <vkey file> <tree size>
package main

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func parseCheckpoint(text string) (int64, tlog.Hash) {
	lines := strings.Split(text, "\n")
	n, err := strconv.ParseInt(lines[1], 10, 64)
	must(err)
	b, err := base64.StdEncoding.DecodeString(lines[2])
	must(err)
	var h tlog.Hash
	copy(h[:], b)
	return n, h
}

func main() {
	dir := os.Args[1]
	vkeyBytes, err := os.ReadFile(os.Args[2])
	must(err)
	v, err := note.NewVerifier(strings.TrimSpace(string(vkeyBytes)))
	must(err)
	verifiers := note.VerifierList(v)
	// Checkpoint signatures.
	top := os.Args[3]
	cpBytes, err := os.ReadFile(dir + "/checkpoints/" + top)
	must(err)
	n, err := note.Open(cpBytes, verifiers)
	must(err)
	size, root := parseCheckpoint(n.Text)
	fmt.Println("checkpoint", top, "verified by Go sumdb/note; size", size)
	// Inclusion proofs (tlog-proof files).
	entries, _ := os.ReadDir(dir + "/proofs")
	for _, e := range entries {
		f, _ := os.Open(dir + "/proofs/" + e.Name())
		sc := bufio.NewScanner(f)
		sc.Scan()
		sc.Scan()
		idx, _ := strconv.ParseInt(strings.TrimPrefix(sc.Text(), "index "), 10, 64)
		var proof tlog.RecordProof
		for sc.Scan() && sc.Text() != "" {
			b, _ := base64.StdEncoding.DecodeString(sc.Text())
			var h tlog.Hash
			copy(h[:], b)
			proof = append(proof, h)
		}
		f.Close()
		entry, err := os.ReadFile(fmt.Sprintf("%s/entries/%d.json", dir, idx))
		must(err)
		must(tlog.CheckRecord(proof, size, root, idx, tlog.RecordHash(entry)))
		fmt.Println("inclusion of entry", idx, "in", size, "verified by Go sumdb/tlog")
	}
	// Consistency proofs.
	cons, _ := os.ReadDir(dir + "/consistency")
	for _, e := range cons {
		b, _ := os.ReadFile(dir + "/consistency/" + e.Name())
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		old, _ := strconv.ParseInt(strings.TrimPrefix(lines[1], "old "), 10, 64)
		var proof tlog.TreeProof
		for _, l := range lines[3:] {
			hb, _ := base64.StdEncoding.DecodeString(l)
			var h tlog.Hash
			copy(h[:], hb)
			proof = append(proof, h)
		}
		ob, _ := os.ReadFile(fmt.Sprintf("%s/checkpoints/%d", dir, old))
		on, err := note.Open(ob, verifiers)
		must(err)
		osize, oroot := parseCheckpoint(on.Text)
		must(tlog.CheckTree(proof, size, root, osize, oroot))
		fmt.Println("consistency", osize, "->", size, "verified by Go sumdb/tlog")
	}
}
