package capture

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"golang.org/x/net/bpf"

	"github.com/presscap/presscap/probe/filter"
)

// Rule is one ring rule: packets that Filter (tcpdump syntax; empty
// matches everything) accepts are kept, cut to Snap bytes; Snap 0 discards
// them. The first matching rule of a list wins. In JSON:
//
//	{"filter": "udp port 5060", "snap": 262144}
//
// Both fields are required, so that a forgotten "snap" never silently
// discards traffic. The rules file of `probe capture -rules` is a JSON list
// of rules, and the service configuration embeds the same list.
type Rule struct {
	Filter string `json:"filter"`
	Snap   uint32 `json:"snap"`
}

// UnmarshalJSON requires both fields and refuses unknown ones.
func (r *Rule) UnmarshalJSON(b []byte) error {
	var raw struct {
		Filter *string `json:"filter"`
		Snap   *int64  `json:"snap"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return fmt.Errorf("rule: %w", err)
	}
	if raw.Filter == nil {
		return errors.New(`rule: missing "filter" (use "" to match every packet)`)
	}
	if raw.Snap == nil {
		return errors.New(`rule: missing "snap" (bytes to keep; 0 discards)`)
	}
	if *raw.Snap < 0 || *raw.Snap > MaxSnap {
		return fmt.Errorf(`rule: "snap" %d out of range 0..%d`, *raw.Snap, MaxSnap)
	}
	*r = Rule{Filter: *raw.Filter, Snap: uint32(*raw.Snap)}
	return nil
}

// ParseRules reads a JSON list of rules. Errors name the rule by index.
func ParseRules(data []byte) ([]Rule, error) {
	var raws []json.RawMessage
	if err := json.Unmarshal(data, &raws); err != nil {
		return nil, fmt.Errorf("rules: want a JSON list of {\"filter\": ..., \"snap\": ...}: %w", err)
	}
	rules := make([]Rule, len(raws))
	for i, raw := range raws {
		if err := json.Unmarshal(raw, &rules[i]); err != nil {
			return nil, fmt.Errorf("rules[%d]: %w", i, err)
		}
	}
	return rules, nil
}

// LoadRules reads a rules file.
func LoadRules(path string) ([]Rule, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	rules, err := ParseRules(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rules, nil
}

// CompileRules compiles rules into the kernel program for Config.Program:
// packets go by the first matching rule; packets no rule matches are kept
// cut to defaultSnap (0: MaxSnap). End the list with {"filter": "",
// "snap": 0} to discard them instead. It also returns the largest snap
// length the program can return, for Config.SnapLen.
func CompileRules(rules []Rule, defaultSnap uint32) ([]bpf.Instruction, int, error) {
	if defaultSnap == 0 || defaultSnap > MaxSnap {
		defaultSnap = MaxSnap
	}
	fr := make([]filter.Rule, len(rules))
	maxSnap := defaultSnap
	for i, r := range rules {
		fr[i] = filter.Rule{Expr: r.Filter, Snap: r.Snap}
		if r.Snap > maxSnap {
			maxSnap = r.Snap
		}
	}
	prog, err := filter.CompileRules(fr, filter.Live, defaultSnap)
	if err != nil {
		return nil, 0, fmt.Errorf("rules: %w", err)
	}
	return prog, int(maxSnap), nil
}

// CompileFilter compiles a single capture filter, as tcpdump's: packets it
// accepts are kept cut to snap (0: MaxSnap), the rest are discarded.
func CompileFilter(expr string, snap uint32) ([]bpf.Instruction, int, error) {
	if snap == 0 || snap > MaxSnap {
		snap = MaxSnap
	}
	prog, err := filter.Compile(expr, filter.Live, snap)
	if err != nil {
		return nil, 0, err
	}
	return prog, int(snap), nil
}
