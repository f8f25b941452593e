package capture

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseRules(t *testing.T) {
	rules, err := ParseRules([]byte(`[
		{"filter": "udp port 5060", "snap": 262144},
		{"filter": "tcp port 443", "snap": 96},
		{"filter": "", "snap": 0}
	]`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Rule{{"udp port 5060", 262144}, {"tcp port 443", 96}, {"", 0}}
	if len(rules) != len(want) {
		t.Fatalf("got %d rules, want %d", len(rules), len(want))
	}
	for i := range want {
		if rules[i] != want[i] {
			t.Errorf("rule %d = %+v, want %+v", i, rules[i], want[i])
		}
	}
	// The same type inside another document (the service configuration).
	var cfg struct {
		Rules []Rule `json:"rules"`
	}
	if err := json.Unmarshal([]byte(`{"rules": [{"filter": "icmp", "snap": 64}]}`), &cfg); err != nil || cfg.Rules[0] != (Rule{"icmp", 64}) {
		t.Errorf("embedded rules: %+v, %v", cfg.Rules, err)
	}
}

func TestParseRulesErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"filter": "", "snap": 1}`, "want a JSON list"},
		{`[{"filter": "udp"}]`, `rules[0]: rule: missing "snap"`},
		{`[{"snap": 10}]`, `rules[0]: rule: missing "filter"`},
		{`[{"filter": "", "snap": 1}, {"filter": "", "snap": -1}]`, `rules[1]: rule: "snap" -1 out of range`},
		{`[{"filter": "", "snap": 262145}]`, `"snap" 262145 out of range`},
		{`[{"filter": "", "snap": 1, "slice": 3}]`, `unknown field "slice"`},
		{`[{"filter": 5, "snap": 1}]`, "rules[0]"},
		{`[{"filter": "", "snap": 1.5}]`, "rules[0]"},
	} {
		_, err := ParseRules([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseRules(%s) = %v, want an error containing %q", tc.in, err, tc.want)
		}
	}
}
