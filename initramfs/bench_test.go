package initramfs

import (
	"bytes"
	"os/exec"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
)

// BenchmarkList lists dracut images of each compression: kabiguard's reader (Open + Entries),
// and the `kabiguard initramfs ls` command, against dracut's `lsinitrd` on the same image.
// `make bench` prints the ratios of the commands, each a fresh process.
func BenchmarkList(b *testing.B) {
	kg := testkit.BuildBinary(b, "kabiguard")
	for _, v := range []struct{ name, arg string }{{"none", "--no-compress"}, {"gzip", "--gzip"}, {"zstd", "--zstd"}, {"xz", "--xz"}} {
		b.Run(v.name, func(b *testing.B) {
			img := dracutImage(b, b.TempDir(), v.arg)
			b.Run("kabiguard", func(b *testing.B) {
				for b.Loop() {
					im, err := Open(img, Options{})
					if err != nil {
						b.Fatal(err)
					}
					if len(im.Entries()) == 0 {
						b.Fatal("no entries")
					}
					im.Close()
				}
			})
			b.Run("kabiguard-cli", func(b *testing.B) {
				for b.Loop() {
					if out, err := exec.Command(kg, "initramfs", "ls", img).Output(); err != nil || !bytes.Contains(out, []byte("usr/bin")) {
						b.Fatalf("kabiguard initramfs ls: %v\n%s", err, out)
					}
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
