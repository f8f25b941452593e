package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMapIsCurrent: the package map committed in docs/dev/architecture.md
// is the one the module's packages give now, and no import runs from a
// stage to a later one.
func TestMapIsCurrent(t *testing.T) {
	root, err := moduleRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := goList(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range violations(pkgs) {
		t.Errorf("import against the stages: %s", v)
	}
	for _, p := range pkgs {
		if p.Doc == "" {
			t.Errorf("package %s has no package comment: the map takes its purpose from it", p.Path)
		}
	}
	doc, err := os.ReadFile(filepath.Join(root, archDoc))
	if err != nil {
		t.Fatal(err)
	}
	want := render(pkgs)
	got, err := splice(string(doc), want)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(doc) {
		t.Errorf("the package map in %s is out of date: run `go run ./internal/tools/pkgmap -w`", archDoc)
	}
}

// TestViolationNamed: an import from a stage to a later one is reported
// with both packages and stages; the other direction and imports within a
// stage are not.
func TestViolationNamed(t *testing.T) {
	ring, _ := stageOf("ringfs")
	upload, _ := stageOf("probe/internal/upload")
	pkgs := []pkg{
		{Path: "ringfs", Stage: ring, Imports: []string{"probe/internal/upload"}},
		{Path: "probe/internal/upload", Stage: upload, Imports: []string{"ringfs"}},
		{Path: "probe/internal/upload/x", Stage: upload, Imports: []string{"probe/internal/upload"}},
	}
	v := violations(pkgs)
	if len(v) != 1 || !strings.Contains(v[0], `ringfs (stage "ring") imports probe/internal/upload (stage "upload"`) {
		t.Errorf("violations = %q, want the one of ringfs", v)
	}
}

// TestStageOf: the longest pattern decides, "/..." covers subpackages,
// and a package the table does not name has no stage.
func TestStageOf(t *testing.T) {
	for path, want := range map[string]string{
		"ringfs":                            "ring",
		"probe/internal/report":             "export",
		"probe/internal/report/reporttest":  "tests and benchmarks",
		"probe/internal/fleet":              "fleet reports",
		"probe/internal/fleet/reporter":     "fleet agents",
		"beeper/alsa":                       "feedback",
		"probe":                             "commands",
		"internal/testing/netnstest":        "tests and benchmarks",
		"probe/internal/captureless":        "",
		"probe/internal/somethingnew":       "",
		"probe/internal/fleet/newthing/sub": "",
	} {
		i, ok := stageOf(path)
		got := ""
		if ok {
			got = stages[i].name
		}
		if got != want {
			t.Errorf("stageOf(%s) = %q, want %q", path, got, want)
		}
	}
}

// TestUnplacedPackageFails: a package the stages table does not place
// stops the generator with its name and where to add it.
func TestUnplacedPackageFails(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"go.mod":            "module example.com/m\n\ngo 1.22\n",
		"ringfs/r.go":       "// Package ringfs is a stand-in.\npackage ringfs\n",
		"brandnew/thing.go": "// Package brandnew is not in the table.\npackage brandnew\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err := goList(dir)
	if err == nil || !strings.Contains(err.Error(), "brandnew") || !strings.Contains(err.Error(), "stages.go") {
		t.Fatalf("goList = %v, want an error naming brandnew and stages.go", err)
	}
	if strings.Contains(err.Error(), "ringfs") {
		t.Errorf("goList error %v names ringfs, which the table places", err)
	}
}

// TestPurpose: one line from a package comment.
func TestPurpose(t *testing.T) {
	for doc, want := range map[string]string{
		"Package config is the probe's one JSON configuration: its types, the defaults.":   "the probe's one JSON configuration",
		"Package tone renders short beeps as 16-bit PCM samples.":                          "renders short beeps as 16-bit PCM samples",
		"Command probe is the presscap back-in-time capture probe.":                        "the presscap back-in-time capture probe",
		"Command image builds presscap's gokrazy disk images and updates running devices:": "builds presscap's gokrazy disk images and updates running devices",
		"Command benchring is `make bench-ring`: it measures the ring against dd.":         "`make bench-ring`: it measures the ring against dd",
		"": "",
	} {
		if got := purpose(doc); got != want {
			t.Errorf("purpose(%q) = %q, want %q", doc, got, want)
		}
	}
}

// TestStageImports: each stage lists the other stages its packages
// import, in the table's order, and "—" when it imports none.
func TestStageImports(t *testing.T) {
	ring, _ := stageOf("ringfs")
	capture, _ := stageOf("probe/internal/capture")
	shared, _ := stageOf("internal/field")
	pkgs := []pkg{
		{Path: "internal/field", Stage: shared},
		{Path: "ringfs", Stage: ring, Imports: []string{"internal/field"}},
		{Path: "probe/internal/capture", Stage: capture, Imports: []string{"ringfs", "probe/internal/filter", "internal/field"}},
		{Path: "probe/internal/filter", Stage: capture},
	}
	got := strings.Join(stageImports(pkgs), "\n")
	want := "| shared | — |\n| ring | shared |\n| capture | shared, ring |"
	if got != want {
		t.Errorf("stageImports =\n%s\nwant\n%s", got, want)
	}
}
