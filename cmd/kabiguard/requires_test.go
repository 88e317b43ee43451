package main

import (
	"bytes"
	"fmt"
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
// modpost's Module.symvers of the build says they export. One spec builds kabiprov (xz) and
// kabiuser into two subpackages of one buildroot: the kabiuser subpackage requires what the
// kabiprov subpackage provides. rpm 4.18 runs the generator once per module, so a package of
// both requires kabiprov's symbols too, and provides them itself.
func TestRequiresGeneratorInRpmbuild(t *testing.T) {
	testkit.Slow(t, "runs rpmbuild")
	k, pair := kabipair(t)
	kernel := symversCRCs(t, k.Symvers)
	provided := providedBy(t, pair)
	b := newKmodBuilder(t, k)
	user, prov := kmodPkg{"kmod-kabiuser", userInstall(pair)}, kmodPkg{"kmod-kabiprov", provInstall(pair)}

	split := b.build("", user, prov)
	wantUser := expectedRequires(t, kernel, nil, pair["kabiuser"])
	if got := deps(t, split["kmod-kabiuser"], "--requires"); !slices.Equal(got, wantUser) {
		t.Errorf("subpackage kmod-kabiuser requires:\n got %q\nwant %q", got, wantUser)
	}
	if got := ksymLines(wantUser); !slices.Equal(got, provided) {
		t.Errorf("kmod-kabiuser's ksym() requirements %q are not what kmod-kabiprov provides %q", got, provided)
	}
	if got := deps(t, split["kmod-kabiprov"], "--provides"); !slices.Equal(got, provided) {
		t.Errorf("subpackage kmod-kabiprov provides:\n got %q\nwant %q", got, provided)
	}
	if got, want := deps(t, split["kmod-kabiprov"], "--requires"), expectedRequires(t, kernel, nil, pair["kabiprov"]); !slices.Equal(got, want) {
		t.Errorf("subpackage kmod-kabiprov requires:\n got %q\nwant %q", got, want)
	}
	if got := deps(t, split["kmod-kabiuser"], "--provides"); len(got) != 0 {
		t.Errorf("subpackage kmod-kabiuser provides %q, it exports nothing", got)
	}

	both := b.build("", kmodPkg{"kmod-kabipair", append(userInstall(pair), provInstall(pair)...)})["kmod-kabipair"]
	want := union(expectedRequires(t, kernel, nil, pair["kabiuser"]), expectedRequires(t, kernel, nil, pair["kabiprov"]))
	if got := deps(t, both, "--requires"); !slices.Equal(got, want) {
		t.Errorf("kmod-kabipair requires:\n got %q\nwant %q", got, want)
	}
	if got := deps(t, both, "--provides"); !slices.Equal(got, provided) || !slices.Equal(ksymLines(want), provided) {
		t.Errorf("kmod-kabipair provides %q; its ksym() requirements %q must be just that", got, ksymLines(want))
	}
}

// TestRequiresLegacyFindRequires: with rpm's whole-list interface (%__find_requires and
// %__find_provides, _use_internal_dependency_generator 0; kmod specs name find-requires.ksyms there), rpm
// 4.18 hands each subpackage's file list to one run: a package of both modules requires no
// ksym(), as find-requires.ksyms has it, and of two subpackages the kabiuser one requires
// what the kabiprov one provides.
func TestRequiresLegacyFindRequires(t *testing.T) {
	testkit.Slow(t, "runs rpmbuild")
	k, pair := kabipair(t)
	kernel := symversCRCs(t, k.Symvers)
	own := symversCRCs(t, filepath.Join(filepath.Dir(pair["kabiprov"]), "Module.symvers"))
	provided := providedBy(t, pair)
	b := newKmodBuilder(t, k)
	legacy := "%global _use_internal_dependency_generator 0\n" +
		"%global __find_requires " + b.bin + " requires --stdin --symvers " + k.Symvers + "\n" +
		"%global __find_provides " + b.bin + " provides --stdin\n"

	both := b.build(legacy, kmodPkg{"kmod-kabipair", append(userInstall(pair), provInstall(pair)...)})["kmod-kabipair"]
	if got, want := deps(t, both, "--requires"), expectedRequires(t, kernel, own, pair["kabiuser"], pair["kabiprov"]); !slices.Equal(got, want) || len(ksymLines(want)) != 0 {
		t.Errorf("kmod-kabipair requires:\n got %q\nwant %q (no ksym())", got, want)
	}
	if got := deps(t, both, "--provides"); !slices.Equal(got, provided) {
		t.Errorf("kmod-kabipair provides:\n got %q\nwant %q", got, provided)
	}
	split := b.build(legacy, kmodPkg{"kmod-kabiuser", userInstall(pair)}, kmodPkg{"kmod-kabiprov", provInstall(pair)})
	if got, want := deps(t, split["kmod-kabiuser"], "--requires"), expectedRequires(t, kernel, nil, pair["kabiuser"]); !slices.Equal(got, want) || !slices.Equal(ksymLines(got), provided) {
		t.Errorf("subpackage kmod-kabiuser requires:\n got %q\nwant %q, ksym() lines %q", got, want, provided)
	}
	if got := deps(t, split["kmod-kabiprov"], "--provides"); !slices.Equal(got, provided) {
		t.Errorf("subpackage kmod-kabiprov provides:\n got %q\nwant %q", got, provided)
	}
}

// TestRequiresMultifileProtocol: told that rpm 4.20 runs it (the multifile protocol the
// attribute declares), the generator answers with each file's lines after ";FILE", the file
// as rpm named it, in rpm's order, and counts all the files of the run as the package: the
// package of both requires no ksym(); provides name kabiprov only (kabiuser exports nothing).
// rpm 4.18 here cannot run it so; rpm 4.20's build/rpmfc.c genDeps is what it follows.
func TestRequiresMultifileProtocol(t *testing.T) {
	k, pair := kabipair(t)
	kernel := symversCRCs(t, k.Symvers)
	own := symversCRCs(t, filepath.Join(filepath.Dir(pair["kabiprov"]), "Module.symvers"))
	bin := testkit.BuildBinary(t, "kabiguard")
	stdin := pair["kabiuser"] + "\n" + pair["kabiprov"] + "\n"
	gen := func(args ...string) []string {
		cmd := exec.Command(bin, args...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("kabiguard %v: %v", args, err)
		}
		return lines(string(out))
	}
	want := append(append([]string{";" + pair["kabiuser"]}, expectedRequires(t, kernel, own, pair["kabiuser"])...),
		append([]string{";" + pair["kabiprov"]}, expectedRequires(t, kernel, own, pair["kabiprov"])...)...)
	if got := gen("requires", "--stdin", "--rpm-version=4.20.0", "--symvers", k.Symvers); !slices.Equal(got, want) {
		t.Errorf("requires, multifile:\n got %q\nwant %q", got, want)
	}
	if got, want := gen("provides", "--stdin", "--rpm-version=4.20.0"), append([]string{";" + pair["kabiprov"]}, providedBy(t, pair)...); !slices.Equal(got, want) {
		t.Errorf("provides, multifile:\n got %q\nwant %q", got, want)
	}
	// rpm 4.19 (and 4.18's empty %{?rpmversion}) run one file at a time: bare lines.
	if got := gen("requires", "--stdin", "--rpm-version=4.19.1", "--symvers", k.Symvers); slices.ContainsFunc(got, func(l string) bool { return strings.HasPrefix(l, ";") }) {
		t.Errorf("requires, singlefile: %q", got)
	}
}

// TestRequiresReadsOnlyNamedModules: a generator run reads only the modules rpm names, not
// the buildroot's other ones (300 of them, and one that is no module at all beside): its
// cost does not grow with the package, so rpm's one run per module stays linear.
func TestRequiresReadsOnlyNamedModules(t *testing.T) {
	k, pair := kabipair(t)
	br := t.TempDir()
	dir := filepath.Join(br, "lib", "modules", k.Release, "extra")
	must(t, os.MkdirAll(dir, 0o755))
	data, err := os.ReadFile(pair["kabiuser"])
	must(t, err)
	for i := range 300 {
		must(t, os.WriteFile(filepath.Join(dir, "copy"+strconv.Itoa(i)+".ko"), data, 0o644))
	}
	must(t, os.WriteFile(filepath.Join(dir, "broken.ko"), []byte("not ELF"), 0o644))
	cmd := exec.Command(testkit.BuildBinary(t, "kabiguard"), "requires", "--stdin", "--symvers", k.Symvers)
	cmd.Env = append(os.Environ(), "RPM_BUILD_ROOT="+br)
	cmd.Stdin = strings.NewReader(filepath.Join(dir, "copy7.ko") + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("requires: %v\n%s", err, out)
	}
	if want := expectedRequires(t, symversCRCs(t, k.Symvers), nil, pair["kabiuser"]); !slices.Equal(lines(string(out)), want) {
		t.Errorf("requires:\n got %q\nwant %q", lines(string(out)), want)
	}
}

func kabipair(t *testing.T) (*testkit.Kernel, map[string]string) {
	k := testkit.FetchKernel(t, "6.1.0-50")
	return k, testkit.BuildModules(t, k, filepath.Join("..", "..", "testdata", "src", "kabipair"))
}

// providedBy is ksym() of each export modpost's Module.symvers of the kabipair build lists.
func providedBy(t *testing.T, pair map[string]string) []string {
	var provided []string
	for sym, crc := range symversCRCs(t, filepath.Join(filepath.Dir(pair["kabiprov"]), "Module.symvers")) {
		provided = append(provided, "ksym("+sym+") = "+crc)
	}
	slices.Sort(provided)
	return provided
}

func userInstall(pair map[string]string) []string {
	return []string{"install -m 644 " + pair["kabiuser"] + " %{buildroot}%{dir}/kabiuser.ko"}
}

func provInstall(pair map[string]string) []string {
	return []string{"xz -c " + pair["kabiprov"] + " >%{buildroot}%{dir}/kabiprov.ko.xz"}
}

func ksymLines(ls []string) []string {
	return slices.DeleteFunc(slices.Clone(ls), func(l string) bool { return !strings.HasPrefix(l, "ksym(") })
}

func union(a, b []string) []string {
	u := append(slices.Clone(a), b...)
	slices.Sort(u)
	return slices.Compact(u)
}

// kmodBuilder builds kmod packages for a kernel with the real rpmbuild and kabiguard's file
// attribute.
type kmodBuilder struct {
	t               *testing.T
	k               *testkit.Kernel
	bin, top, attrs string
}

// kmodPkg is a (sub)package: its name and the %install commands that fill its module
// directory %{dir} (/lib/modules/K/extra/NAME).
type kmodPkg struct {
	name    string
	install []string
}

func newKmodBuilder(t *testing.T, k *testkit.Kernel) *kmodBuilder {
	for _, tool := range []string{"rpmbuild", "rpm", "xz"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (.ci/run installs rpm and xz-utils): %v", tool, err)
		}
	}
	b := &kmodBuilder{t: t, k: k, bin: testkit.BuildBinary(t, "kabiguard"), top: t.TempDir()}
	b.attrs = filepath.Join(b.top, "fileattrs")
	attr, err := os.ReadFile(filepath.Join(testkit.RepoDir(), "rpm", "kabiguard.attr"))
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.MkdirAll(b.attrs, 0o755))
	must(t, os.WriteFile(filepath.Join(b.attrs, "kabiguard.attr"), bytes.ReplaceAll(attr, []byte("@SBINDIR@"), []byte(filepath.Dir(b.bin))), 0o644))
	return b
}

// build makes one spec: pkgs[0] the main package, the others subpackages, with the spec
// lines defs before them, and returns each package's .rpm by name.
func (b *kmodBuilder) build(defs string, pkgs ...kmodPkg) map[string]string {
	t := b.t
	t.Helper()
	dir := func(p kmodPkg) string { return "/lib/modules/" + b.k.Release + "/extra/" + p.name }
	var sub, install, files strings.Builder
	for i, p := range pkgs {
		if i > 0 {
			fmt.Fprintf(&sub, "%%package -n %s\nSummary: %s\n%%description -n %s\ntest\n", p.name, p.name, p.name)
			fmt.Fprintf(&files, "%%files -n %s\n", p.name)
		} else {
			files.WriteString("%files\n")
		}
		fmt.Fprintf(&files, "%s\n", dir(p))
		fmt.Fprintf(&install, "%%global dir %s\nmkdir -p %%{buildroot}%%{dir}\n%s\n", dir(p), strings.Join(p.install, "\n"))
	}
	spec := filepath.Join(b.top, pkgs[0].name+".spec")
	must(t, os.WriteFile(spec, []byte(`Name: `+pkgs[0].name+`
Version: 1
Release: 1
Summary: kabiguard test kmod
License: GPL-2.0
%global kabiguard_requires_opts --symvers `+b.k.Symvers+`
`+defs+`%description
test
`+sub.String()+`%install
`+install.String()+files.String()), 0o644))
	// rpm reads attribute names from _fileattrsdir but their macros from its macro path
	// (/usr/lib/rpm/fileattrs/*.attr, where make install puts the file): --load stands in.
	rpmdir := t.TempDir()
	cmd := exec.Command("rpmbuild", "-bb", "--nodeps", "--define", "_topdir "+b.top, "--define", "_rpmdir "+rpmdir, "--define", "_fileattrsdir "+b.attrs,
		"--load", filepath.Join(b.attrs, "kabiguard.attr"),
		"--define", "__os_install_post %{nil}", "--define", "debug_package %{nil}", "--define", "_build_id_links none", spec)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rpmbuild %s: %v\n%s", spec, err, out)
	}
	rpms := map[string]string{}
	for _, p := range pkgs {
		found, _ := filepath.Glob(filepath.Join(rpmdir, "*", p.name+"-1-1.*.rpm"))
		if len(found) != 1 {
			t.Fatalf("rpmbuild made %v for %s", found, p.name)
		}
		rpms[p.name] = found[0]
	}
	return rpms
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
