package config

import (
	"fmt"

	"github.com/presscap/presscap/probe/internal/filter"
)

// validateExports checks a list of exports (the top level's or a
// profile's); their links must be ones the configuration captures.
func (c Config) validateExports(exports []Export) Errors {
	var es Errors
	names := map[string]bool{}
	for i, e := range exports {
		f := fmt.Sprintf("[%d]", i)
		es.Under(f, e.validate())
		if names[e.Name] {
			es.Add(f+".name", "%q is used twice", e.Name)
		}
		names[e.Name] = true
		if e.Link != "" && len(c.LinksOf(e.Link)) == 0 {
			es.Add(f+".link", "%q is not a link name or a side of network.ports", e.Link)
		}
	}
	return es
}

func (e Export) validate() Errors {
	var es Errors
	if !nameRE.MatchString(e.Name) {
		es.Add("name", "%q is not usable in a file name (letters, digits, '.', '-', '_')", e.Name)
	}
	if e.Filter != "" { // empty keeps every packet
		if _, err := filter.NewMatcher(e.Filter); err != nil {
			es.AddErr("filter", "does not compile", err)
		}
	}
	switch e.Format {
	case "", "pcap", "pcapng":
	default:
		es.Add("format", "%q is not one of pcap, pcapng", e.Format)
	}
	return es
}
