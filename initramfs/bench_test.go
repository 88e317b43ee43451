package initramfs

import (
	"os/exec"
	"testing"
)

// BenchmarkList lists dracut images of each compression: kabiguard's reader (Open + Entries)
// against dracut's `lsinitrd` on the same image. `make bench` prints the ratios.
func BenchmarkList(b *testing.B) {
	for _, v := range []struct{ name, arg string }{{"none", "--no-compress"}, {"gzip", "--gzip"}, {"zstd", "--zstd"}, {"xz", "--xz"}} {
		b.Run(v.name, func(b *testing.B) {
			img := dracutImage(b, b.TempDir(), v.arg)
			b.Run("kabiguard", func(b *testing.B) {
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
			})
			b.Run("lsinitrd", func(b *testing.B) {
				for b.Loop() {
					if err := exec.Command("lsinitrd", img).Run(); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
