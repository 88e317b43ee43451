package weakupdates

import (
	"encoding/json"
	"testing"
)

// States and explanations are text in JSON, read back as they were written.
func TestStateAndWhyText(t *testing.T) {
	for s := Native; s <= Pending; s++ {
		b, err := json.Marshal(Row{State: s})
		if err != nil {
			t.Fatal(err)
		}
		var r Row
		if err := json.Unmarshal(b, &r); err != nil || r.State != s {
			t.Errorf("%s: %s read back as %v (%v)", s, b, r.State, err)
		}
	}
	if _, err := json.Marshal(Row{}); err == nil {
		t.Error("a Row without a state is encoded")
	}
	for _, w := range []Why{
		{Reason: ReasonLeftover}, {Reason: ReasonDangling}, {Reason: ReasonKernelRemoved},
		{ReasonCompatible, "6.1.0-50-amd64"}, {ReasonBetter, "6.1.0-50-amd64"}, {ReasonWasDangling, "6.1.0-50-amd64"},
		{ReasonUnwanted, "never_weak in etc/kabiguard/kabiguard.conf"},
	} {
		b, err := json.Marshal(Change{Why: w})
		if err != nil {
			t.Fatal(err)
		}
		var c Change
		if err := json.Unmarshal(b, &c); err != nil || c.Why != w {
			t.Errorf("%+v: %s read back as %+v (%v)", w, b, c.Why, err)
		}
	}
	if got := (Why{ReasonCompatible, "6.1.0-50-amd64"}).String(); got != "compatible build from 6.1.0-50-amd64" {
		t.Errorf("explanation %q", got)
	}
}
