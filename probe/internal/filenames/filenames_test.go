package filenames

import (
	"testing"
	"time"
)

// TestProducedMatchesWhatIsGiven: every name the export gives is
// recognised, and names it never gives are not.
func TestProducedMatchesWhatIsGiven(t *testing.T) {
	at := time.Date(2026, 11, 27, 2, 0, 0, 123e6, time.FixedZone("x", 3600))
	for _, synced := range []bool{true, false} {
		base := Base("probe-1.lan_x", at, synced)
		for _, b := range []string{base, WithProfile(base, "phone"), WithProfile(base, "tv-2")} {
			for _, n := range []string{Capture(b, "all", "pcap"), Capture(b, "sip.v4-x_y", "pcapng"), Manifest(b), Report(b)} {
				if !Produced(n) || !ProducedBy(n, []string{"probe-1.lan_x"}) {
					t.Errorf("%s is given but not recognised", n)
				}
			}
		}
	}
	if got := WithProfile("h_20261127T010000.123Z", "phone"); got != "h_20261127T010000.123Z_phone" {
		t.Errorf("profile base %s", got)
	}
	for _, p := range []string{"phone", "a", "tv-2"} {
		if err := CheckProfile(p); err != nil {
			t.Errorf("profile %q refused: %v", p, err)
		}
	}
	for _, p := range []string{"", "Phone", "a_b", "-x", "a.b", "../x", "abcdefghijklmnopqrstu"} {
		if err := CheckProfile(p); err == nil {
			t.Errorf("profile %q accepted", p)
		}
	}
	if got := Base("h", at, false); got != "h_20261127T010000.123Z-unsynced" {
		t.Errorf("base %s", got)
	}
	for _, n := range []string{"holiday.jpg", "h_20261127T010000.123Z_all.txt", "h_20261127T010000Z_all.pcap",
		"_20261127T010000.123Z_all.pcap", "h_20261127T010000.123Z_.pcap", "h_20261127T010000.123Z_all.pcap.part",
		".tmp-h_20261127T010000.123Z_manifest.json", "h_20261127T010000.123Z_x.json", "h_20261127T010000.123Z-synced_all.pcap",
		"h_20261127T010000.123Z_report.htm", "h_20261127T010000.123Z_Phone_manifest.json", "h_20261127T010000.123Z_a_b_manifest.json", "h_20261127T010000.123Z_x_report.html.part", ".partial-h_20261127T010000.123Z_report.html"} {
		if Produced(n) {
			t.Errorf("%s recognised, but the probe never gives it", n)
		}
	}
}

// TestLabelledNamesAreSent: a label from fleet/labels.json goes into the
// host part, and the upload's check still recognises the names; a label
// that would change the fields of a name is refused.
func TestLabelledNamesAreSent(t *testing.T) {
	at := time.Date(2026, 12, 6, 21, 0, 0, 0, time.UTC)
	host := Host("presscap-a1b2c3d4", "T-4711.b")
	if host != "presscap-a1b2c3d4-T-4711.b" {
		t.Fatalf("host %q", host)
	}
	base := Base(host, at, true)
	for _, n := range []string{Capture(base, "all", "pcap"), Manifest(base)} {
		if !Produced(n) {
			t.Errorf("%s is given but not recognised", n)
		}
	}
	if Host("h", "") != "h" {
		t.Error("no label changed the host")
	}
	for _, l := range []string{"T-4711", "a", "Kunde.42"} {
		if err := CheckLabel(l); err != nil {
			t.Errorf("%q refused: %v", l, err)
		}
	}
	for _, l := range []string{"", "a_b", "../x", "a/b", "-x", ".x", "a b", "ä", string(make([]byte, MaxLabel+1))} {
		if err := CheckLabel(l); err == nil {
			t.Errorf("%q accepted", l)
		}
	}
}

// TestProducedBy: only the probe's own host part is sent, alone or with
// any label; another probe's or a made-up host's names are not.
func TestProducedBy(t *testing.T) {
	at := time.Date(2026, 12, 6, 21, 0, 0, 0, time.UTC)
	hosts := []string{"presscap-a1b2c3d4", "gokrazy", "probe-1.lan_x"}
	for _, host := range []string{"presscap-a1b2c3d4", Host("presscap-a1b2c3d4", "T-4711"), Host("presscap-a1b2c3d4", "old.label"),
		"gokrazy", "probe-1.lan_x", Host("probe-1.lan_x", "L")} {
		base := Base(host, at, false)
		for _, n := range []string{Capture(base, "all", "pcap"), Manifest(base), Report(base)} {
			if !ProducedBy(n, hosts) {
				t.Errorf("%s is the probe's but not recognised", n)
			}
		}
	}
	for _, host := range []string{"presscap-a1b2c3d5", "presscap-a1b2c3d", "xgokrazy", "gokrazy-", "gokrazy-a_b", "probe-1.lan", "evil"} {
		if n := Capture(Base(host, at, true), "all", "pcap"); ProducedBy(n, hosts) {
			t.Errorf("%s recognised as the probe's", n)
		}
	}
	if ProducedBy(Capture(Base("gokrazy", at, true), "all", "pcap"), nil) {
		t.Error("recognised with no hosts")
	}
}
