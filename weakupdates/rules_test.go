package weakupdates

import (
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/kabi"
	"github.com/kabiguard/kabiguard/kabi/inventory"
	"github.com/kabiguard/kabiguard/kabi/module"
	"github.com/kabiguard/kabiguard/kabi/symvers"
)

// The planner's rules as a table (MakePlan alone: no Sync, no link made), over roots of the
// embedded sample. The expected refusals are computed from the sample's files by loadProblems
// (the module's symbol versions against the kernel's Module.symvers and the providers' exports),
// never copied from a run.

// loadProblems is what keeps the sample build ref ("RELEASE/NAME") from loading into kernel,
// with the sample builds providers loaded alongside: each versioned symbol whose CRC differs
// from its exporter's (a provider first, then the kernel), and each needed symbol nobody
// exports; sorted by symbol, module_layout first, as the loader reports them.
func loadProblems(t *testing.T, ref, kernel string, providers ...string) []kabi.Problem {
	t.Helper()
	m := parseSample(t, ref)
	table, err := symvers.Load(filepath.Join(sampleDir, "kernels", kernel, "symvers.xz"))
	if err != nil {
		t.Fatal(err)
	}
	exported := func(name string) (uint32, bool) {
		for _, p := range providers {
			for _, e := range parseSample(t, p).Exports {
				if e.Name == name {
					return e.CRC, true
				}
			}
		}
		e, ok := table.Lookup(name)
		return e.CRC, ok
	}
	var out []kabi.Problem
	versioned := map[string]bool{}
	for _, s := range m.Modversions() {
		versioned[s.Name] = true
		switch crc, ok := exported(s.Name); {
		case !ok:
			out = append(out, kabi.Problem{Symbol: s.Name, Kind: kabi.KindMissing, Want: kabi.FormatCRC(s.CRC)})
		case crc != s.CRC:
			out = append(out, kabi.Problem{Symbol: s.Name, Kind: kabi.KindCRC, Want: kabi.FormatCRC(s.CRC), Have: kabi.FormatCRC(crc)})
		}
	}
	for _, u := range m.Undefined {
		if _, ok := exported(u.Name); !ok && !versioned[u.Name] && !u.Weak {
			out = append(out, kabi.Problem{Symbol: u.Name, Kind: kabi.KindMissing, Want: "(unversioned)"})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if (out[i].Symbol == "module_layout") != (out[j].Symbol == "module_layout") {
			return out[i].Symbol == "module_layout"
		}
		return out[i].Symbol < out[j].Symbol
	})
	return out
}

func parseSample(t *testing.T, ref string) *module.Module {
	t.Helper()
	m, err := module.Parse(ref, sampleModule(t, ref))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// wantDecision is a planned decision; rejected are the builds refused before the chosen one
// (all of them when none is), best first. "ROOT" in a problem stands for the root.
type wantDecision struct {
	state    State
	from     string // release directory of the chosen build (Native, Weak)
	rejected []wantRejection
}

type wantRejection struct {
	from     string
	problems []kabi.Problem
}

func TestPlannerRules(t *testing.T) {
	const (
		k50rt = "6.1.0-50-rt-amd64" // another flavour: offered only with share_builds = any
		k612  = "6.12.0-1-amd64"    // another series, likewise
	)
	demo53 := loadProblems(t, k50+"/kabidemo", k53)
	demo54 := loadProblems(t, k50+"/kabidemo", k54)
	demo54on53 := loadProblems(t, k54+"/kabidemo", k53)
	userAlone := loadProblems(t, k50+"/kabiuser", k53)
	userWithProv := loadProblems(t, k50+"/kabiuser", k53, k50+"/kabiprov")
	prov53 := loadProblems(t, k50+"/kabiprov", k53)
	// What the sample is built to show (testdata/sample/README.md): without these the rows
	// below would not test their rule.
	if len(demo53) != 0 || len(demo54) == 0 || len(demo54on53) == 0 || len(prov53) != 0 {
		t.Fatalf("sample: kabidemo-50 on 53 %v, on 54 %v; kabidemo-54 on 53 %v; kabiprov-50 on 53 %v", demo53, demo54, demo54on53, prov53)
	}
	if len(userAlone) == 0 || len(userWithProv) != 0 {
		t.Fatalf("sample: kabiuser-50 on 53 alone %v, with kabiprov-50 %v: it should need kabiprov", userAlone, userWithProv)
	}
	for _, p := range demo54 {
		if p.Kind != kabi.KindCRC {
			t.Fatalf("sample: kabidemo-50 on 54 %v, want CRC mismatches only", demo54)
		}
	}
	demoBuild := "extra/kabidemo/kabidemo.ko.xz"
	cases := []struct {
		rule string
		spec rootSpec
		pol  Policy
		want map[string]*wantDecision // "RELEASE/module" -> decision (nil: none, not offered)
	}{{
		rule: "native wins: a kernel's own build, even over a newer one",
		spec: rootSpec{kernels: []string{k50, k53}, builds: with(demoBuilds, k54+"/"+demoBuild, k54+"/kabidemo")},
		want: map[string]*wantDecision{
			k50 + "/kabidemo": {state: Native, from: k50},
			k50 + "/kabiprov": {state: Native, from: k50},
		},
	}, {
		rule: "weak from the newest kernel whose build loads; the newer ones' refusals kept",
		spec: rootSpec{kernels: []string{k53}, builds: map[string]string{
			k49 + "/" + demoBuild: k50 + "/kabidemo",
			k50 + "/" + demoBuild: k50 + "/kabidemo",
			k54 + "/" + demoBuild: k54 + "/kabidemo",
		}},
		want: map[string]*wantDecision{
			k53 + "/kabidemo": {state: Weak, from: k50, rejected: []wantRejection{{k54, demo54on53}}},
		},
	}, {
		rule: "CRC mismatch: incompatible, each symbol with both CRCs",
		spec: rootSpec{kernels: []string{k54}, builds: map[string]string{k50 + "/" + demoBuild: k50 + "/kabidemo"}},
		want: map[string]*wantDecision{
			k54 + "/kabidemo": {state: Incompatible, rejected: []wantRejection{{k50, demo54}}},
		},
	}, {
		rule: "never_weak: excluded, never linked",
		spec: rootSpec{kernels: []string{k53}, builds: demoBuilds},
		pol:  Policy{Never: map[string]bool{"kabidemo": true}},
		want: map[string]*wantDecision{
			k53 + "/kabidemo": {state: Excluded},
			k53 + "/kabiprov": {state: Weak, from: k50},
		},
	}, {
		rule: "providers chosen first: the user loads with the provider chosen for the kernel",
		spec: rootSpec{kernels: []string{k53}, builds: demoBuilds},
		want: map[string]*wantDecision{
			k53 + "/kabiprov": {state: Weak, from: k50},
			k53 + "/kabiuser": {state: Weak, from: k50},
		},
	}, {
		rule: "a user without its provider: incompatible, the missing symbols named",
		spec: rootSpec{kernels: []string{k53}, builds: map[string]string{k50 + "/extra/kabiuser/kabiuser.ko.xz": k50 + "/kabiuser"}},
		want: map[string]*wantDecision{
			k53 + "/kabiuser": {state: Incompatible, rejected: []wantRejection{{k50, userAlone}}},
		},
	}, {
		rule: "blocked: a file kabiguard did not create holds the link path",
		spec: rootSpec{kernels: []string{k53}, builds: demoBuilds,
			files: map[string]string{"lib/modules/" + k53 + "/weak-updates/kabidemo/kabidemo.ko.xz": "the admin's\n"}},
		want: map[string]*wantDecision{
			k53 + "/kabidemo": {state: Blocked, rejected: []wantRejection{{k50, append([]kabi.Problem{{
				Kind: kabi.KindBlocked, Want: "weak-updates/kabidemo/kabidemo.ko.xz",
				Have: "ROOT/lib/modules/" + k53 + "/weak-updates/kabidemo/kabidemo.ko.xz"}}, demo53...)}}},
			k53 + "/kabiprov": {state: Weak, from: k50},
		},
	}, {
		rule: "share_builds = series (default): other flavours and series offer nothing",
		spec: rootSpec{kernels: []string{k53}, builds: map[string]string{
			k50rt + "/" + demoBuild:                 k50 + "/kabidemo",
			k612 + "/extra/kabiprov/kabiprov.ko.xz": k50 + "/kabiprov",
		}},
		want: map[string]*wantDecision{k53 + "/kabidemo": nil, k53 + "/kabiprov": nil},
	}, {
		rule: "share_builds = any: every directory offers",
		spec: rootSpec{kernels: []string{k53}, builds: map[string]string{
			k50rt + "/" + demoBuild:                 k50 + "/kabidemo",
			k612 + "/extra/kabiprov/kabiprov.ko.xz": k50 + "/kabiprov",
		}},
		pol: Policy{ShareAny: true},
		want: map[string]*wantDecision{
			k53 + "/kabidemo": {state: Weak, from: k50rt},
			k53 + "/kabiprov": {state: Weak, from: k612},
		},
	}}
	for _, c := range cases {
		t.Run(c.rule, func(t *testing.T) {
			root := newRoot(t, c.spec)
			inv, err := inventory.Scan(root)
			if err != nil {
				t.Fatal(err)
			}
			plan := MakePlan(inv, c.pol, LoadKernels(inv, c.pol))
			for key, want := range c.want {
				release, name, _ := strings.Cut(key, "/")
				kp := plan.Kernel(release)
				if kp == nil || kp.Kernel == nil {
					t.Fatalf("%s: no loaded kernel plan", release)
				}
				checkDecision(t, root, key, kp, kp.Decisions[name], want)
			}
		})
	}
}

// checkDecision compares d with want, and the kernel's links with d: a Weak decision links
// its build at its Sub, any other none.
func checkDecision(t *testing.T, root, key string, kp *KernelPlan, d *Decision, want *wantDecision) {
	t.Helper()
	if want == nil || d == nil {
		if want != nil || d != nil {
			t.Errorf("%s: decision %+v, want %+v", key, d, want)
		}
		return
	}
	if d.State != want.state || d.From != want.from {
		t.Errorf("%s: %s from %q, want %s from %q (rejected %+v)", key, d.State, d.From, want.state, want.from, d.Rejected)
	}
	if d.State == Weak {
		if d.Build == nil || d.Link != d.Build.Sub || kp.Links[d.Link] != d.Build.Path || d.Build.Kernel != want.from {
			t.Errorf("%s: weak decision %+v, links %v: want its build linked at its sub path", key, d, kp.Links)
		}
	}
	var got []wantRejection
	for _, r := range d.Rejected {
		problems := make([]kabi.Problem, len(r.Problems))
		for i, p := range r.Problems {
			p.Have = strings.ReplaceAll(p.Have, root, "ROOT")
			problems[i] = p
		}
		got = append(got, wantRejection{r.From, problems})
	}
	if !reflect.DeepEqual(got, want.rejected) {
		t.Errorf("%s: rejected\n  %+v\nwant\n  %+v", key, got, want.rejected)
	}
}
