package exports

import (
	"os"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
)

// BenchmarkForKernel derives the exports of a real Debian 6.1 kernel from its image package:
// every export ("all", what `kabiguard exports` prints) or those a check of one module needs
// ("wanted": vmlinux whole plus the two modules that export the wanted module symbols), each
// without a cache (vmlinuz decoded, modules read) and with the cache the previous run wrote.
func BenchmarkForKernel(b *testing.B) {
	k := testkit.FetchKernel(b, "6.1.0-55")
	root := testkit.ImageRoot(b, k)
	for _, c := range []struct {
		name   string
		wanted map[string]bool
	}{
		{"all", nil},
		{"wanted", map[string]bool{modSym: true, nsSym: true, coreSym: true}},
	} {
		derive := func(b *testing.B) {
			if _, _, err := ForKernel(root, k.Release, c.wanted); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(c.name+"/cold", func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				os.Remove(CachePath(root, k.Release))
				b.StartTimer()
				derive(b)
			}
		})
		b.Run(c.name+"/cached", func(b *testing.B) {
			derive(b)
			for b.Loop() {
				derive(b)
			}
		})
	}
}
