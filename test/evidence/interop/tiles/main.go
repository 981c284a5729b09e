// Independent check of our tiles with Go's golang.org/x/mod/sumdb/tlog: it reads tiles at the
// C2SP paths (Go's tile/8/<L>/<N> minus the height), recomputes the tree hash of the signed
// checkpoint from them, and proves records with them. Usage: go run ./tiles <tenant dir> <vkey file>
package main

import (
	"encoding/base64"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Reads C2SP tiles (tile/<L>/<N>[.p/<W>]) from our store for Go's tlog (tile/8/<L>/<N>[.p/<W>]).
type storeTiles struct{ dir string }

func (s storeTiles) Height() int { return 8 }
func (s storeTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		p := strings.Replace(t.Path(), "tile/8/", "tile/", 1)
		b, err := os.ReadFile(s.dir + "/" + p)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}
func (s storeTiles) SaveTiles([]tlog.Tile, [][]byte) {}

func main() {
	dir := os.Args[1]
	vkey, _ := os.ReadFile(os.Args[2])
	v, err := note.NewVerifier(strings.TrimSpace(string(vkey)))
	if err != nil {
		panic(err)
	}
	cp, _ := os.ReadFile(dir + "/checkpoint")
	n, err := note.Open(cp, note.VerifierList(v))
	if err != nil {
		panic(err)
	}
	lines := strings.Split(n.Text, "\n")
	size, _ := strconv.ParseInt(lines[1], 10, 64)
	rb, _ := base64.StdEncoding.DecodeString(lines[2])
	var root tlog.Hash
	copy(root[:], rb)
	tree := tlog.Tree{N: size, Hash: root}
	hr := tlog.TileHashReader(tree, storeTiles{dir})
	got, err := tlog.TreeHash(size, hr)
	if err != nil || got != root {
		panic(fmt.Sprint("tree hash from tiles differs: ", err))
	}
	for _, i := range []int64{0, 255, 256, 65535, 65536, size - 1} {
		p, err := tlog.ProveRecord(size, i, hr)
		if err != nil {
			panic(err)
		}
		h, _ := hr.ReadHashes([]int64{tlog.StoredHashIndex(0, i)})
		if err := tlog.CheckRecord(p, size, root, i, h[0]); err != nil {
			panic(err)
		}
	}
	fmt.Println("Go sumdb/tlog: tree hash of", size, "from our tiles matches the signed checkpoint; proofs from our tiles verify")
}
