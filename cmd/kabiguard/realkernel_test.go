package main

// Tests against real Debian kernels and the real kmod tools. They need root, the Debian archive
// (first run: apt-get download into $KABIGUARD_TEST_CACHE, default /var/cache/kabiguard-test)
// and kmod, gcc and make, as .ci/run installs.

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
	"github.com/kabiguard/kabiguard/kabi"
	"github.com/kabiguard/kabiguard/kabi/module"
	"github.com/kabiguard/kabiguard/kmod"
)

func moduleFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && kmod.IsModule(p) {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// parallel runs fn over items on two workers (the machine has two cores).
func parallel(items []string, fn func(string)) {
	var wg sync.WaitGroup
	ch := make(chan string)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range ch {
				fn(it)
			}
		}()
	}
	for _, it := range items {
		ch <- it
	}
	close(ch)
	wg.Wait()
}

// TestSymbolsEqualsModprobeOnRealTrees compares `kabiguard symbols` with
// `modprobe --dump-modversions` byte for byte on every module of a Debian 6.1 tree (plain,
// signed .ko) and a Debian 6.12 tree (.ko.xz).
func TestSymbolsEqualsModprobeOnRealTrees(t *testing.T) {
	for _, abi := range []string{"6.1.0-54", "6.12.107+deb12"} {
		t.Run(abi, func(t *testing.T) {
			k := testkit.FetchKernel(t, abi)
			files := moduleFiles(t, filepath.Join(k.Root, "lib", "modules", k.Release))
			if len(files) < 3000 {
				t.Fatalf("only %d modules in %s", len(files), k.Release)
			}
			var mu sync.Mutex
			var mismatches []string
			versioned := 0
			parallel(files, func(p string) {
				want, err := exec.Command("modprobe", "--dump-modversions", p).Output()
				var got, stderr bytes.Buffer
				code := run([]string{"symbols", p}, &got, &stderr)
				mu.Lock()
				defer mu.Unlock()
				if err != nil || code != 0 || !bytes.Equal(got.Bytes(), want) {
					mismatches = append(mismatches, fmt.Sprintf("%s: modprobe err %v, kabiguard exit %d %s", p, err, code, stderr.String()))
				}
				if len(want) > 0 {
					versioned++
				}
			})
			if len(mismatches) > 0 {
				t.Fatalf("%d of %d modules differ, first: %s", len(mismatches), len(files), mismatches[0])
			}
			if versioned < len(files)*9/10 {
				t.Fatalf("only %d of %d modules have symbol versions: the comparison is too weak", versioned, len(files))
			}
			t.Logf("%d modules identical to modprobe --dump-modversions", len(files))
		})
	}
}

var depmodLine = regexp.MustCompile(`^depmod: WARNING: (\S+) (needs unknown symbol|disagrees about version of symbol) (\S+)$`)

// depmodProblems places mods into a hard-linked copy of target's tree and runs the real
// `depmod -n -e -E Module.symvers`; it returns "module:kind:symbol" for every warning about
// the placed modules.
func depmodProblems(t *testing.T, target *testkit.Kernel, mods map[string]string) map[string]bool {
	t.Helper()
	root := t.TempDir()
	tree := filepath.Join(root, "lib", "modules", target.Release)
	testkit.HardlinkTree(t, filepath.Join(target.Root, "lib", "modules", target.Release), tree)
	extra := filepath.Join(tree, "extra")
	os.MkdirAll(extra, 0o755)
	for _, p := range mods {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(extra, filepath.Base(p)), data, 0o644)
	}
	cmd := exec.Command("depmod", "-n", "-e", "-E", target.Symvers, "-b", root, target.Release)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = nil, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("depmod: %v: %s", err, stderr.String())
	}
	out := map[string]bool{}
	for _, line := range strings.Split(stderr.String(), "\n") {
		m := depmodLine.FindStringSubmatch(line)
		if m == nil || !strings.HasPrefix(m[1], extra) {
			continue
		}
		kind := kabi.KindMissing
		if strings.HasPrefix(m[2], "disagrees") {
			kind = kabi.KindCRC
		}
		out[inventoryName(m[1])+":"+kind+":"+m[3]] = true
	}
	return out
}

func inventoryName(p string) string {
	base := filepath.Base(p)
	return strings.ReplaceAll(base[:strings.Index(base, ".ko")], "-", "_")
}

// TestCheckAgreesWithDepmod builds the project's modules and a real Debian DKMS module
// against each ABI's headers and checks each build against every other ABI, comparing
// kabiguard's CRC and missing-symbol problems with the real depmod's warnings (module_layout
// included: -E gives depmod the kernel's Module.symvers, which lists it). As a cross-check
// independent of depmod, module_layout must be reported exactly when the two kernels'
// module_layout CRCs differ. Namespaces and GPL-only exports depmod does not check; the unit
// tests and the QEMU boots cover them.
func TestCheckAgreesWithDepmod(t *testing.T) {
	abis := []string{"6.1.0-50", "6.1.0-53", "6.1.0-54", "6.1.0-55"}
	kernels := map[string]*testkit.Kernel{}
	builds := map[string]map[string]string{} // abi -> module name -> file
	for _, abi := range abis {
		k := testkit.FetchKernel(t, abi)
		kernels[abi] = k
		builds[abi] = map[string]string{}
		for _, src := range []string{"kabidemo", "kabipair"} {
			for name, p := range testkit.BuildModules(t, k, filepath.Join("..", "..", "testdata", "src", src)) {
				builds[abi][name] = p
			}
		}
		builds[abi]["v4l2loopback"] = testkit.V4L2Loopback(t, k)
	}
	compatible, incompatible := 0, 0
	for _, from := range abis {
		for _, to := range abis {
			if from == to {
				continue
			}
			t.Run(from+"->"+to, func(t *testing.T) {
				target := kernels[to]
				want := depmodProblems(t, target, builds[from])

				tk, err := kabi.KernelFromSymvers(target.Symvers)
				if err != nil {
					t.Fatal(err)
				}
				var mods []*module.Module
				for _, p := range builds[from] {
					m, err := module.Open(p)
					if err != nil {
						t.Fatal(err)
					}
					mods = append(mods, m)
				}
				// In-tree modules export to the built ones (v4l2loopback uses videodev):
				// depmod finds them in the tree, kabiguard in Module.symvers.
				got := map[string]bool{}
				layoutDiffers := symversCRC(t, kernels[from].Symvers, "module_layout") != symversCRC(t, target.Symvers, "module_layout")
				for _, v := range kabi.Check(tk, mods, nil) {
					sawLayout := false
					for _, p := range v.Problems {
						if p.Symbol == "module_layout" {
							sawLayout = true
						}
						if p.Kind == kabi.KindCRC || p.Kind == kabi.KindMissing {
							got[v.Name+":"+p.Kind+":"+p.Symbol] = true
						}
					}
					if sawLayout != layoutDiffers {
						t.Errorf("%s: module_layout reported %v, CRCs differ %v", v.Name, sawLayout, layoutDiffers)
					}
					if v.Compatible {
						compatible++
					} else {
						incompatible++
					}
				}
				if onlyGot, onlyWant := difference(got, want), difference(want, got); len(onlyGot)+len(onlyWant) > 0 {
					t.Fatalf("only kabiguard reports %v\nonly depmod reports %v", onlyGot, onlyWant)
				}
			})
		}
	}
	// The comparison means something only if both verdicts occur.
	if compatible == 0 || incompatible == 0 {
		t.Fatalf("compatible %d, incompatible %d: the fixture set does not exercise both verdicts", compatible, incompatible)
	}
	t.Logf("%d compatible and %d incompatible (module, kernel) pairs agree with depmod", compatible, incompatible)
}

func symversCRC(t *testing.T, path, sym string) string {
	tab, err := kabi.KernelFromSymvers(path)
	if err != nil {
		t.Fatal(err)
	}
	e, _ := tab.Symvers.Lookup(sym)
	return kabi.FormatCRC(e.CRC)
}

// difference lists the keys of a missing from b.
func difference(a, b map[string]bool) []string {
	var out []string
	for k := range a {
		if !b[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
