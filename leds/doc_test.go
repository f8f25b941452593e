package leds

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/doctable"
)

// ledDoc is where the provider reads the LED table.
const ledDoc = "../docs/provider/leds-and-sounds.md"

// render writes a pattern as the tests compare them: "+500 -500",
// milliseconds on (+) and off (-), "once" for a momentary pattern.
func render(p Pattern) string {
	var parts []string
	for _, st := range p.Steps {
		sign := "-"
		if st.On {
			sign = "+"
		}
		parts = append(parts, sign+strconv.Itoa(int(st.Dur/time.Millisecond)))
	}
	if p.Once {
		parts = append(parts, "once")
	}
	return strings.Join(parts, " ")
}

// expandDocPattern turns the table's pattern column ("on", "+500 −500",
// "+50 −50, ten times, once", "3 × (+300 −300), pause 2 s") into render's
// form; ok is false for a form it does not know.
func expandDocPattern(col string) (string, bool) {
	col = strings.ReplaceAll(col, "−", "-")
	switch col {
	case "on":
		return "+0", true
	case "off":
		return "-0", true
	}
	parts := strings.Split(col, ", ")
	var steps []string
	if m := regexp.MustCompile(`^(\d+) × \(([^)]*)\)$`).FindStringSubmatch(parts[0]); m != nil {
		n, _ := strconv.Atoi(m[1])
		for range n {
			steps = append(steps, strings.Fields(m[2])...)
		}
	} else {
		steps = strings.Fields(parts[0])
	}
	for _, s := range steps {
		if !regexp.MustCompile(`^[+-]\d+$`).MatchString(s) {
			return "", false
		}
	}
	once := false
	for _, mod := range parts[1:] {
		switch {
		case mod == "once":
			once = true
		case mod == "ten times":
			base := steps
			steps = nil
			for range 10 {
				steps = append(steps, base...)
			}
		case strings.HasPrefix(mod, "pause ") && strings.HasSuffix(mod, " s"):
			sec, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(mod, "pause "), " s"))
			if err != nil || len(steps) == 0 || !strings.HasPrefix(steps[len(steps)-1], "-") {
				return "", false
			}
			steps[len(steps)-1] = "-" + strconv.Itoa(sec*1000)
		default:
			return "", false
		}
	}
	if once {
		steps = append(steps, "once")
	}
	return strings.Join(steps, " "), true
}

// TestLEDTableInDocs: the provider's LED table (docs/provider/
// leds-and-sounds.md) has a row for every state, whose pattern is the one
// the LED shows and whose description starts the state's Say.
func TestLEDTableInDocs(t *testing.T) {
	table, err := doctable.Read(ledDoc, "## LED patterns")
	if err != nil {
		t.Fatal(err)
	}
	tick := regexp.MustCompile("`([^`]+)`")
	seen := map[State]bool{}
	for _, cells := range table[1:] {
		if len(cells) != 3 {
			t.Fatalf("%s: LED table row %q has %d cells, want 3", ledDoc, cells, len(cells))
		}
		says, stateCol, patCol := cells[0], cells[1], cells[2]
		m := tick.FindStringSubmatch(stateCol)
		if m == nil {
			continue
		}
		s, err := ParseState(m[1])
		if err != nil {
			continue // the profile row names `trigger.profiles`, no state
		}
		seen[s] = true
		p := PatternOf(s)
		want := render(p)
		got, ok := expandDocPattern(patCol)
		switch {
		case !ok:
			t.Errorf("%s: %v: pattern %q is in no form this test reads", ledDoc, s, patCol)
		case got != want:
			t.Errorf("%s: %v: the table says %q (%s), the LED shows %s", ledDoc, s, patCol, got, want)
		}
		if !strings.HasPrefix(p.Say, says) {
			t.Errorf("%s: %v: the table says %q, the state's description is %q", ledDoc, s, says, p.Say)
		}
	}
	for _, s := range States() {
		if !seen[s] {
			t.Errorf("%s: the LED table has no row for %v", ledDoc, s)
		}
	}
}

// TestExpandDocPattern pins the table's forms.
func TestExpandDocPattern(t *testing.T) {
	for col, want := range map[string]string{
		"+500 −500":                  "+500 -500",
		"on":                         "+0",
		"+50 −50, ten times, once":   strings.Repeat("+50 -50 ", 10) + "once",
		"3 × (+300 −300), pause 2 s": "+300 -300 +300 -300 +300 -2000",
		"+300 −300 +300 −2000":       "+300 -300 +300 -2000",
	} {
		if got, ok := expandDocPattern(col); !ok || got != want {
			t.Errorf("expandDocPattern(%q) = %q, %v; want %q", col, got, ok, want)
		}
	}
	if _, ok := expandDocPattern("blinks a lot"); ok {
		t.Error("an unknown form was read")
	}
}
