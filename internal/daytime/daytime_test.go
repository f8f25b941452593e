package daytime

import "testing"

func TestParse(t *testing.T) {
	if h, m, err := Parse("07:05"); err != nil || h != 7 || m != 5 {
		t.Fatalf("07:05: %d %d %v", h, m, err)
	}
	for _, s := range []string{"7:05", "07:5", "24:00", "23:60", "-1:00", "ab:cd", "0705", ""} {
		if _, _, err := Parse(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}
