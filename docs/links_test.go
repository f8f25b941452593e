// Package docs holds no code: its tests keep the documentation's links true.
package docs

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// markdownFiles lists README.md and every .md file under docs/, as paths
// relative to the repository root.
func markdownFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"README.md"}
	err := filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".md") {
			files = append(files, filepath.Join("docs", p))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// prose returns the lines of a markdown file outside fenced code blocks,
// with inline code removed, so that examples are not taken for links.
func prose(md string) []string {
	var out []string
	fenced := false
	inline := regexp.MustCompile("`[^`]*`")
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			out = append(out, "")
			continue
		}
		if fenced {
			out = append(out, "")
			continue
		}
		out = append(out, inline.ReplaceAllString(line, ""))
	}
	return out
}

// anchors returns the anchors GitHub gives the headings of a markdown
// file: lower case, punctuation dropped, spaces as hyphens, a repeated
// heading numbered from -1.
func anchors(md string) map[string]bool {
	out := map[string]bool{}
	fenced := false
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		text := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(text) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('-')
			}
		}
		a := b.String()
		for n := 1; out[a]; n++ {
			a = fmt.Sprintf("%s-%d", b.String(), n)
		}
		out[a] = true
	}
	return out
}

// relativeLinks returns the relative link targets of a markdown file's
// prose, each with its line number.
func relativeLinks(md string) (targets []string, lines []int) {
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for i, line := range prose(md) {
		for _, m := range link.FindAllStringSubmatch(line, -1) {
			if strings.Contains(m[1], "://") || strings.HasPrefix(m[1], "mailto:") {
				continue
			}
			targets = append(targets, m[1])
			lines = append(lines, i+1)
		}
	}
	return targets, lines
}

// TestEveryPageLinked: every page under docs/ can be reached from
// README.md by following links, so none is lost after a move.
func TestEveryPageLinked(t *testing.T) {
	reached := map[string]bool{"README.md": true}
	queue := []string{"README.md"}
	for len(queue) > 0 {
		f := queue[0]
		queue = queue[1:]
		b, err := os.ReadFile(filepath.Join("..", f))
		if err != nil {
			continue // reported by TestRelativeLinksResolve
		}
		targets, _ := relativeLinks(string(b))
		for _, target := range targets {
			path, _, _ := strings.Cut(target, "#")
			if path == "" || !strings.HasSuffix(path, ".md") {
				continue
			}
			dest := filepath.Join(filepath.Dir(f), path)
			if !reached[dest] {
				reached[dest] = true
				queue = append(queue, dest)
			}
		}
	}
	for _, f := range markdownFiles(t) {
		if !reached[f] {
			t.Errorf("%s is linked from no page reachable from README.md", f)
		}
	}
}

// TestRelativeLinksResolve: every relative link in README.md and docs/
// names a file that exists and, with a #fragment, a heading in it.
func TestRelativeLinksResolve(t *testing.T) {
	n := 0
	for _, f := range markdownFiles(t) {
		b, err := os.ReadFile(filepath.Join("..", f))
		if err != nil {
			t.Fatal(err)
		}
		targets, lines := relativeLinks(string(b))
		for k, target := range targets {
			n++
			path, frag, _ := strings.Cut(target, "#")
			dest := f
			if path != "" {
				dest = filepath.Join(filepath.Dir(f), path)
			}
			where := fmt.Sprintf("%s:%d: link %s", f, lines[k], target)
			db, err := os.ReadFile(filepath.Join("..", dest))
			if err != nil {
				if st, serr := os.Stat(filepath.Join("..", dest)); serr == nil && st.IsDir() && frag == "" {
					continue
				}
				t.Errorf("%s: %s does not exist", where, dest)
				continue
			}
			if frag != "" && !anchors(string(db))[frag] {
				t.Errorf("%s: %s has no heading with anchor #%s", where, dest, frag)
			}
		}
	}
	if n < 50 {
		t.Errorf("found only %d relative links: is the parser still reading them?", n)
	}
}

// TestAnchors pins the anchor rule to GitHub's on headings the docs use.
func TestAnchors(t *testing.T) {
	a := anchors("# Title\n## Installing the probe's key on the server\n## The capture report (`probe report`)\n## Upload\n## Upload\n```\n# not a heading\n```\n")
	for _, want := range []string{"title", "installing-the-probes-key-on-the-server", "the-capture-report-probe-report", "upload", "upload-1"} {
		if !a[want] {
			t.Errorf("no anchor %q in %v", want, a)
		}
	}
	if a["not-a-heading"] {
		t.Error("a line in a code block was taken for a heading")
	}
}

// TestReadmeStaysShort: the README is the entrance, about 100 lines; the
// rest belongs under docs/provider, docs/reference or docs/dev.
func TestReadmeStaysShort(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n"); n > 130 {
		t.Errorf("README.md has %d lines; move the details under docs/ (provider, reference, dev)", n)
	}
}
