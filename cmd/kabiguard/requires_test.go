package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
)

// symversCRCs parses a Module.symvers file the test's own way: symbol -> crc column.
func symversCRCs(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Split(line, "\t")
		if len(f) < 2 {
			t.Fatalf("%s: line %q", path, line)
		}
		out[f[1]] = normCRC(t, f[0])
	}
	return out
}

// normCRC writes a CRC as 0x and eight hex digits, whatever width the tool printed.
func normCRC(t *testing.T, s string) string {
	t.Helper()
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 32)
	if err != nil {
		t.Fatalf("crc %q: %v", s, err)
	}
	return "0x" + strconv.FormatUint(v|1<<32, 16)[1:]
}

// expectedRequires computes, from the real modprobe --dump-modversions of the package's
// modules, the kernel's Module.symvers and modpost's Module.symvers of the package's own
// build (what its modules export), the lines find-requires.ksyms' rules give.
func expectedRequires(t *testing.T, kernel, own map[string]string, mods ...string) []string {
	t.Helper()
	set := map[string]bool{}
	for _, m := range mods {
		out, err := exec.Command("modprobe", "--dump-modversions", m).Output()
		if err != nil {
			t.Fatalf("modprobe --dump-modversions %s: %v", m, err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			crc, sym, ok := strings.Cut(line, "\t")
			if !ok {
				t.Fatalf("modprobe printed %q", line)
			}
			crc = normCRC(t, crc)
			switch {
			case own[sym] == crc:
			case kernel[sym] == crc:
				set["kernel("+sym+") = "+crc] = true
			default:
				set["ksym("+sym+") = "+crc] = true
			}
		}
	}
	var want []string
	for l := range set {
		want = append(want, l)
	}
	slices.Sort(want)
	return want
}

func lines(s string) []string {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// TestRequiresMatchesModversions: `kabiguard requires` of real modules built against a real
// kernel's headers equals what the real modprobe --dump-modversions of the same modules gives
// under find-requires.ksyms' rules; module_layout is one of them (the kernel exports it).
// Alone, kabiuser needs kabiprov's exports as ksym(); with kabiprov in the package, not at all.
func TestRequiresMatchesModversions(t *testing.T) {
	k := testkit.FetchKernel(t, "6.1.0-50")
	demo := testkit.BuildModules(t, k, filepath.Join("..", "..", "testdata", "src", "kabidemo"))["kabidemo"]
	pair := testkit.BuildModules(t, k, filepath.Join("..", "..", "testdata", "src", "kabipair"))
	kernel := symversCRCs(t, k.Symvers)
	own := symversCRCs(t, filepath.Join(filepath.Dir(pair["kabiprov"]), "Module.symvers"))
	if len(own) != 2 {
		t.Fatalf("kabipair's Module.symvers has %d exports, want kabiprov's 2", len(own))
	}
	root := testkit.NewRoot(t, k) // Module.symvers at usr/src/linux-headers-K, as Debian has it
	for _, tc := range []struct {
		name string
		mods []string
		own  map[string]string
		ksym int
	}{
		{"kabidemo", []string{demo}, nil, 0},
		{"kabiuser alone", []string{pair["kabiuser"]}, nil, 2},
		{"kabiuser and kabiprov", []string{pair["kabiuser"], pair["kabiprov"]}, own, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := expectedRequires(t, kernel, tc.own, tc.mods...)
			if !slices.Contains(want, "kernel(module_layout) = "+kernel["module_layout"]) {
				t.Fatalf("expected lines lack module_layout: %v", want)
			}
			if n := len(want) - len(slices.DeleteFunc(slices.Clone(want), func(l string) bool { return strings.HasPrefix(l, "ksym(") })); n != tc.ksym {
				t.Fatalf("expected %d ksym() lines, the rules give %d: %v", tc.ksym, n, want)
			}
			for _, args := range [][]string{{"--symvers", k.Symvers}, {"--root", root}} {
				var out, errOut bytes.Buffer
				if code := run(append(append([]string{"requires"}, args...), tc.mods...), &out, &errOut); code != exitOK {
					t.Fatalf("requires %v: exit %d: %s", args, code, errOut.String())
				}
				if got := lines(out.String()); !slices.Equal(got, want) {
					t.Errorf("requires %v:\n got %q\nwant %q", args, got, want)
				}
			}
		})
	}
}

// TestRequiresWithoutKernelExports: a module whose kernel's exports are nowhere is an error
// that says how to give them, not a guess.
func TestRequiresWithoutKernelExports(t *testing.T) {
	k := testkit.FetchKernel(t, "6.1.0-50")
	demo := testkit.BuildModules(t, k, filepath.Join("..", "..", "testdata", "src", "kabidemo"))["kabidemo"]
	var out, errOut bytes.Buffer
	if code := run([]string{"requires", "--root", t.TempDir(), demo}, &out, &errOut); code != exitError {
		t.Fatalf("exit %d, want %d; stdout %q", code, exitError, out.String())
	}
	if !strings.Contains(errOut.String(), k.Release) || !strings.Contains(errOut.String(), "--symvers") {
		t.Errorf("message %q names neither the kernel nor --symvers", errOut.String())
	}
}

// TestProvidesFromSymvers: `kabiguard provides` of a kernel gives one kernel(SYMBOL) = CRC a
// line per export of the headers' Module.symvers, whether read from it (--root with the
// headers) or from --symvers.
func TestProvidesFromSymvers(t *testing.T) {
	k := testkit.FetchKernel(t, "6.1.0-50")
	want := symversCRCs(t, k.Symvers)
	root := testkit.NewRoot(t, k)
	for _, args := range [][]string{{"--kernel", k.Release, "--root", root}, {"--symvers", k.Symvers}} {
		var out, errOut bytes.Buffer
		if code := run(append([]string{"provides"}, args...), &out, &errOut); code != exitOK {
			t.Fatalf("provides %v: exit %d: %s", args, code, errOut.String())
		}
		got := lines(out.String())
		if len(got) != len(want) {
			t.Fatalf("provides %v: %d lines, Module.symvers has %d exports", args, len(got), len(want))
		}
		if !slices.IsSorted(got) {
			t.Errorf("provides %v: not sorted", args)
		}
		for i := 0; i < len(got); i += len(got) / 50 { // a sample, spread over the output
			sym, crc, ok := strings.Cut(strings.TrimPrefix(got[i], "kernel("), ") = ")
			if !ok || want[sym] != crc {
				t.Errorf("provides %v: line %q, Module.symvers says %s %s", args, got[i], sym, want[sym])
			}
		}
	}
}

// TestRequiresGeneratorInRpmbuild: kmod packages built by the real rpmbuild with the shipped
// file attribute (rpm/kabiguard.attr, its path filled in as make install does, the only
// attribute in _fileattrsdir, loaded with rpm 4.18's --load) require exactly the lines the
// real modprobe --dump-modversions of their modules gives, and provide ksym() for what
// modpost's Module.symvers of the build says they export. rpm runs the generators once per
// module, one of them xz-compressed; kabiguard finds the package's other module itself, so the
// package of both requires no ksym(), and the one of kabiuser alone requires what the one of
// kabiprov alone provides.
func TestRequiresGeneratorInRpmbuild(t *testing.T) {
	testkit.Slow(t, "runs rpmbuild")
	for _, tool := range []string{"rpmbuild", "rpm", "xz"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (.ci/run installs rpm and xz-utils): %v", tool, err)
		}
	}
	k := testkit.FetchKernel(t, "6.1.0-50")
	pair := testkit.BuildModules(t, k, filepath.Join("..", "..", "testdata", "src", "kabipair"))
	kernel := symversCRCs(t, k.Symvers)
	own := symversCRCs(t, filepath.Join(filepath.Dir(pair["kabiprov"]), "Module.symvers"))
	var provided []string
	for sym, crc := range own {
		provided = append(provided, "ksym("+sym+") = "+crc)
	}
	slices.Sort(provided)
	b := newKmodBuilder(t, k)
	user, prov := "install -m 644 "+pair["kabiuser"]+" %{buildroot}%{dir}/kabiuser.ko", "xz -c "+pair["kabiprov"]+" >%{buildroot}%{dir}/kabiprov.ko.xz"

	both := b.build("kmod-kabipair", user, prov)
	if got, want := deps(t, both, "--requires"), expectedRequires(t, kernel, own, pair["kabiuser"], pair["kabiprov"]); !slices.Equal(got, want) {
		t.Errorf("kmod-kabipair requires:\n got %q\nwant %q", got, want)
	}
	if got := deps(t, both, "--provides"); !slices.Equal(got, provided) {
		t.Errorf("kmod-kabipair provides:\n got %q\nwant %q", got, provided)
	}
	alone := b.build("kmod-kabiuser", user)
	want := expectedRequires(t, kernel, nil, pair["kabiuser"])
	if got := deps(t, alone, "--requires"); !slices.Equal(got, want) {
		t.Errorf("kmod-kabiuser requires:\n got %q\nwant %q", got, want)
	}
	if got := deps(t, b.build("kmod-kabiprov", prov), "--provides"); !slices.Equal(got, provided) {
		t.Errorf("kmod-kabiprov provides:\n got %q\nwant %q", got, provided)
	}
	var ksyms []string
	for _, l := range want {
		if strings.HasPrefix(l, "ksym(") {
			ksyms = append(ksyms, l)
		}
	}
	if !slices.Equal(ksyms, provided) {
		t.Errorf("kmod-kabiuser's ksym() requirements %q are not what kmod-kabiprov provides %q", ksyms, provided)
	}
}

// kmodBuilder builds kmod packages for a kernel with the real rpmbuild and kabiguard's file
// attribute.
type kmodBuilder struct {
	t          *testing.T
	k          *testkit.Kernel
	top, attrs string
}

func newKmodBuilder(t *testing.T, k *testkit.Kernel) *kmodBuilder {
	bin := testkit.BuildBinary(t, "kabiguard")
	b := &kmodBuilder{t: t, k: k, top: t.TempDir()}
	b.attrs = filepath.Join(b.top, "fileattrs")
	attr, err := os.ReadFile(filepath.Join(testkit.RepoDir(), "rpm", "kabiguard.attr"))
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.MkdirAll(b.attrs, 0o755))
	must(t, os.WriteFile(filepath.Join(b.attrs, "kabiguard.attr"), bytes.ReplaceAll(attr, []byte("@SBINDIR@"), []byte(filepath.Dir(bin))), 0o644))
	return b
}

// build makes package name whose %install runs the commands (%{dir} is its module directory)
// and returns the .rpm.
func (b *kmodBuilder) build(name string, install ...string) string {
	t := b.t
	t.Helper()
	spec := filepath.Join(b.top, name+".spec")
	must(t, os.WriteFile(spec, []byte(`Name: `+name+`
Version: 1
Release: 1
Summary: kabiguard test kmod
License: GPL-2.0
%global dir /lib/modules/`+b.k.Release+`/extra/`+name+`
%global kabiguard_requires_opts --symvers `+b.k.Symvers+`
%description
test
%install
mkdir -p %{buildroot}%{dir}
`+strings.Join(install, "\n")+`
%files
%{dir}
`), 0o644))
	// rpm reads attribute names from _fileattrsdir but their macros from its macro path
	// (/usr/lib/rpm/fileattrs/*.attr, where make install puts the file): --load stands in.
	cmd := exec.Command("rpmbuild", "-bb", "--nodeps", "--define", "_topdir "+b.top, "--define", "_fileattrsdir "+b.attrs,
		"--load", filepath.Join(b.attrs, "kabiguard.attr"),
		"--define", "__os_install_post %{nil}", "--define", "debug_package %{nil}", "--define", "_build_id_links none", spec)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rpmbuild %s: %v\n%s", name, err, out)
	}
	rpms, _ := filepath.Glob(filepath.Join(b.top, "RPMS", "*", name+"-1-1.*.rpm"))
	if len(rpms) != 1 {
		t.Fatalf("rpmbuild made %v", rpms)
	}
	return rpms[0]
}

// deps is what rpm -qp --requires or --provides says of a package: its kernel() and ksym()
// lines, sorted.
func deps(t *testing.T, rpm, query string) []string {
	t.Helper()
	out, err := exec.Command("rpm", "-qp", query, rpm).Output()
	if err != nil {
		t.Fatalf("rpm -qp %s %s: %v", query, rpm, err)
	}
	var got []string
	for _, l := range lines(string(out)) {
		if strings.HasPrefix(l, "kernel(") || strings.HasPrefix(l, "ksym(") {
			got = append(got, l)
		}
	}
	slices.Sort(got)
	return got
}
