package capture

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"

	"golang.org/x/net/bpf"

	"github.com/presscap/presscap/probe/internal/filter"
)

// MinRuleSnap is the smallest slice a rule may keep: less would cut into
// the Ethernet, VLAN, IP and transport headers an engineer needs.
const MinRuleSnap = 64

// Rule is one ring rule: packets that Filter (tcpdump syntax; empty
// matches every packet) accepts are kept whole, cut to Snaplen bytes, or
// discarded. The first matching rule of a list wins. The same JSON serves
// the rules file of `probe capture -rules` and ring.rules of the probe
// configuration:
//
//	{"filter": "udp portrange 10000-20000", "snaplen": 96}
//	{"filter": "port 22", "discard": true}
//	{"filter": "", "discard": true}
//
// A missing "snaplen" keeps whole packets, so a forgotten field never
// throws traffic away; discarding is always spelled out.
type Rule struct {
	Filter  string `json:"filter"`
	Snaplen uint32 `json:"snaplen"`
	Discard bool   `json:"discard"`
}

// Check reports a problem with the rule's snap length or discard flag:
// field is the JSON field at fault ("" for the rule as a whole), problem
// is empty when the rule is fine. The filter is checked by compiling it.
func (r Rule) Check() (field, problem string) {
	switch {
	case r.Discard && r.Snaplen != 0:
		return "", "has both discard and snaplen"
	case r.Snaplen != 0 && r.Snaplen < MinRuleSnap:
		return "snaplen", fmt.Sprintf("%d is too small (at least %d, or 0 for whole packets)", r.Snaplen, MinRuleSnap)
	case r.Snaplen > MaxSnap:
		return "snaplen", fmt.Sprintf("%d is over the maximum %d", r.Snaplen, MaxSnap)
	}
	return "", ""
}

// snap is what the kernel program returns for the rule: 0 discards.
func (r Rule) snap() uint32 {
	switch {
	case r.Discard:
		return 0
	case r.Snaplen == 0:
		return MaxSnap
	}
	return r.Snaplen
}

// ParseRules reads a JSON list of rules. Errors name the rule by index.
func ParseRules(data []byte) ([]Rule, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var rules []Rule
	if err := dec.Decode(&rules); err != nil {
		return nil, fmt.Errorf(`rules: want a JSON list of {"filter": ..., "snaplen": ... | "discard": true}: %w`, err)
	}
	for i, r := range rules {
		if field, problem := r.Check(); problem != "" {
			name := fmt.Sprintf("rules[%d]", i)
			if field != "" {
				name += "." + field
			}
			return nil, fmt.Errorf("%s %s", name, problem)
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
// cut to defaultSnap (0: whole). End the list with {"filter": "",
// "discard": true} to discard them instead. It also returns the largest
// snap length the program can return, for Config.SnapLen.
func CompileRules(rules []Rule, defaultSnap uint32) ([]bpf.Instruction, int, error) {
	if defaultSnap == 0 || defaultSnap > MaxSnap {
		defaultSnap = MaxSnap
	}
	fr := make([]filter.Rule, len(rules))
	maxSnap := defaultSnap
	for i, r := range rules {
		fr[i] = filter.Rule{Expr: r.Filter, Snap: r.snap()}
		maxSnap = max(maxSnap, r.snap())
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

// CheckProgram says whether the kernel program of prog can be made: a
// program whose jumps outgrow BPF's 8 bits once the VLAN snap lengths are
// added compiles, but fails when the capture starts.
func CheckProgram(prog []bpf.Instruction) error {
	_, err := assemble(prog)
	return err
}
