package config

import (
	"fmt"
	"slices"
	"strings"

	"github.com/presscap/presscap/probe/internal/ports"
)

// validate checks the section alone, naming fields relative to it
// ("ports[1].interface"), as every section's validate does; Validate adds
// the checks that span sections.
func (n Network) validate() Errors {
	var es Errors
	switch n.Mode {
	case ModeSingle:
		if len(n.Ports) > 0 {
			es.Add("ports", "only in inline or mirror mode (single mode captures links)")
		}
		return es
	case ModeInline:
		if len(n.Ports) != 2 {
			es.Add("ports", "inline mode bridges exactly two ports, %d given", len(n.Ports))
		}
	case ModeMirror:
		if len(n.Ports) == 0 {
			es.Add("ports", "mirror mode needs at least one capture port")
		}
	default:
		es.Add("mode", "%q is not one of inline, mirror, single", n.Mode)
		return es
	}
	names := map[string]int{}
	sides := map[string]bool{}
	for i, p := range n.Ports {
		f := fmt.Sprintf("ports[%d]", i)
		if problem := interfaceProblem(p.Interface); problem != "" {
			es.Add(f+".interface", "%s", problem)
		} else if p.Interface == ports.DefaultBridge {
			es.Add(f+".interface", "%q is the bridge the probe makes", p.Interface)
		}
		if j, dup := names[p.Interface]; dup {
			es.Add(f+".interface", "%q is network.ports[%d] already", p.Interface, j)
		}
		names[p.Interface] = i
		if p.Side != "" && !nameRE.MatchString(p.Side) {
			es.Add(f+".side", "%q is not usable in a file name (letters, digits, '.', '-', '_')", p.Side)
		}
		if n.Mode == ModeInline && sides[p.SideName()] {
			es.Add(f+".side", "%q names both sides of the bridge", p.SideName())
		}
		sides[p.SideName()] = true
	}
	// Sides, links and groups will share one namespace in exports[].link:
	// a side may not be another port's interface.
	for i, p := range n.Ports {
		if j, ok := names[p.Side]; ok && j != i {
			es.Add(fmt.Sprintf("ports[%d].side", i), "%q is network.ports[%d]'s interface", p.Side, j)
		}
	}
	return es
}

// interfaceProblem says why n is no interface name, or "".
func interfaceProblem(n string) string {
	switch {
	case n == "":
		return "is empty"
	case len(n) > 15 || n == "." || n == ".." || strings.ContainsAny(n, "/ \t\n:"):
		return fmt.Sprintf("%q is not an interface name", n)
	}
	return ""
}

// checkLinks checks links: single mode's, or that network.ports made
// them.
func (c Config) checkLinks() Errors {
	var es Errors
	switch n := c.Network; {
	case n.Mode == ModeSingle || len(n.Ports) == 0:
		es.Under("links", validateLinks(c.Links))
	case n.Mode != ModeInline && n.Mode != ModeMirror:
		// network.mode's problem: its ports make no links.
	case c.linksWithPorts:
		es.Add("links", "not allowed together with network.ports, which make the links (one per port, named after it)")
	case !slices.Equal(c.Links, n.portLinks()):
		es.Add("links", "are not the links network.ports make (build the configuration with Parse)")
	}
	return es
}

// validateLinks checks single mode's capture links.
func validateLinks(links []Link) Errors {
	var es Errors
	if len(links) == 0 {
		es.Add("", "at least one capture link is needed")
	}
	seen, ifaces := map[string]bool{}, map[string]bool{}
	for i, l := range links {
		f := fmt.Sprintf("[%d]", i)
		if problem := interfaceProblem(l.Interface); problem != "" {
			es.Add(f+".interface", "%s", problem)
		} else if ifaces[l.Interface] {
			// The capture opens each interface once and refuses a
			// second link on it.
			es.Add(f+".interface", "interface %q is listed twice (one link per interface)", l.Interface)
		}
		ifaces[l.Interface] = true
		n := l.LinkName()
		if n != "" && !nameRE.MatchString(n) {
			es.Add(f+".name", "%q is not usable in a file name", n)
		}
		if seen[n] {
			es.Add(f+".name", "link %q is listed twice", n)
		}
		seen[n] = true
	}
	return es
}
