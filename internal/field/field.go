// Package field is what the configuration sections of the probe share: the
// value types with units (Duration, Size, the one size parser that flags use
// too, MinPeriod) and the errors that name a problem by its JSON field.
// Each configuration section reports every problem it finds as Errors, so
// the probe's configuration can list them all in one run without picking
// field names back out of messages.
package field

import (
	"fmt"
	"strings"
)

// Error is one problem with one field, named by its JSON path
// ("upload.host_key", "trigger.devices[0].vendor").
type Error struct {
	Field   string
	Problem string
	Err     error // the underlying error, if any
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Field + ": " + e.Problem + ": " + e.Err.Error()
	}
	return e.Field + ": " + e.Problem
}

func (e *Error) Unwrap() error { return e.Err }

// Errors is every problem found, in field order.
type Errors []*Error

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Err returns es as an error, or nil when there is no problem (a nil
// Errors in an error interface would not be nil).
func (es Errors) Err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// Add records a problem with field.
func (es *Errors) Add(field, format string, args ...any) {
	*es = append(*es, &Error{Field: field, Problem: fmt.Sprintf(format, args...)})
}

// AddErr records a problem with field that err explains.
func (es *Errors) AddErr(field, problem string, err error) {
	*es = append(*es, &Error{Field: field, Problem: problem, Err: err})
}

// Under records sub, a section's problems named relative to it
// ("ports[1].interface", or "" for the section itself), as problems of the
// fields below prefix ("network.ports[1].interface", "network"). A section
// so validates itself without knowing where the configuration puts it.
func (es *Errors) Under(prefix string, sub Errors) {
	for _, e := range sub {
		f := prefix
		switch {
		case e.Field == "":
		case strings.HasPrefix(e.Field, "["):
			f += e.Field
		default:
			f += "." + e.Field
		}
		*es = append(*es, &Error{Field: f, Problem: e.Problem, Err: e.Err})
	}
}
