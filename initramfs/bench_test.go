package initramfs

import (
	"os/exec"
	"testing"
	"time"
)

// BenchmarkListDracut lists dracut images (Open + Entries) and logs how long `lsinitrd` takes
// on the same image, for comparison.
func BenchmarkListDracut(b *testing.B) {
	for _, v := range []struct{ name, arg string }{{"none", "--no-compress"}, {"gzip", "--gzip"}, {"zstd", "--zstd"}, {"xz", "--xz"}} {
		b.Run(v.name, func(b *testing.B) {
			img := dracutImage(b, b.TempDir(), v.arg)
			start := time.Now()
			if err := exec.Command("lsinitrd", img).Run(); err != nil {
				b.Fatal(err)
			}
			ls := time.Since(start)
			b.ResetTimer()
			for b.Loop() {
				im, err := Open(img)
				if err != nil {
					b.Fatal(err)
				}
				if len(im.Entries()) == 0 {
					b.Fatal("no entries")
				}
				im.Close()
			}
			b.StopTimer()
			b.Logf("lsinitrd %s: %v wall", v.name, ls)
		})
	}
}
