// Command kabiguard-gate runs inside the initramfs and stops the boot when a required module
// cannot load. Stub: the initramfs work implements it.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "kabiguard-gate: not implemented yet")
	os.Exit(2)
}
