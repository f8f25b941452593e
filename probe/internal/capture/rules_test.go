package capture

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseRules(t *testing.T) {
	rules, err := ParseRules([]byte(`[
		{"filter": "udp port 5060"},
		{"filter": "tcp port 443", "snaplen": 96},
		{"filter": "", "discard": true}
	]`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Rule{{Filter: "udp port 5060"}, {Filter: "tcp port 443", Snaplen: 96}, {Discard: true}}
	if len(rules) != len(want) {
		t.Fatalf("got %d rules, want %d", len(rules), len(want))
	}
	for i := range want {
		if rules[i] != want[i] {
			t.Errorf("rule %d = %+v, want %+v", i, rules[i], want[i])
		}
	}
	// What the kernel program returns for each: whole, sliced, discarded.
	for i, snap := range []uint32{MaxSnap, 96, 0} {
		if got := rules[i].snap(); got != snap {
			t.Errorf("rule %d returns %d, want %d", i, got, snap)
		}
	}
	// The same type inside another document (the probe configuration).
	var cfg struct {
		Rules []Rule `json:"rules"`
	}
	if err := json.Unmarshal([]byte(`{"rules": [{"filter": "icmp", "snaplen": 64}]}`), &cfg); err != nil || cfg.Rules[0] != (Rule{Filter: "icmp", Snaplen: 64}) {
		t.Errorf("embedded rules: %+v, %v", cfg.Rules, err)
	}
}

func TestParseRulesErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"filter": "", "snaplen": 100}`, "want a JSON list"},
		{`[{"filter": "udp", "snaplen": 100, "discard": true}]`, `rules[0] has both discard and snaplen`},
		{`[{"filter": ""}, {"filter": "", "snaplen": 10}]`, `rules[1].snaplen 10 is too small`},
		{`[{"filter": "", "snaplen": 262145}]`, `rules[0].snaplen 262145 is over the maximum`},
		{`[{"filter": "", "snaplen": -1}]`, "snaplen"},
		{`[{"filter": "", "snap": 100}]`, `unknown field "snap"`},
		{`[{"filter": 5}]`, "filter"},
		{`[{"filter": "", "snaplen": 1.5}]`, "snaplen"},
	} {
		_, err := ParseRules([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseRules(%s) = %v, want an error containing %q", tc.in, err, tc.want)
		}
	}
}
