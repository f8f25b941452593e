package config

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/doctable"
)

// jsonPaths lists the JSON path of every leaf field of t, lists written as
// "name[].field".
func jsonPaths(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		p := prefix + name
		ft := f.Type
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
			out = append(out, jsonPaths(ft.Elem(), p+"[].")...)
			continue
		}
		if ft.Kind() == reflect.Struct {
			out = append(out, jsonPaths(ft, p+".")...)
			continue
		}
		out = append(out, p)
	}
	return out
}

// jsonDefaults maps the JSON path of every leaf of v to the forms its
// value may take in the configuration reference (none for empty values); a list of structs
// contributes its first element.
func jsonDefaults(v reflect.Value, prefix string, out map[string][]string) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		p, fv := prefix+name, v.Field(i)
		switch {
		case fv.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			if fv.Len() > 0 {
				jsonDefaults(fv.Index(0), p+"[].", out)
			}
		case fv.Kind() == reflect.Struct:
			jsonDefaults(fv, p+".", out)
		case fv.IsZero():
		case f.Type.Name() == "Duration" && f.Type.ConvertibleTo(reflect.TypeOf(time.Duration(0))):
			out[p] = durationForms(time.Duration(fv.Int()))
		case fv.Kind() == reflect.Slice:
			for j := range fv.Len() {
				out[p] = append(out[p], fmt.Sprint(fv.Index(j).Interface()))
			}
		default:
			out[p] = []string{fmt.Sprint(fv.Interface())}
		}
	}
}

// durationForms are the ways a duration's default is written: "1m0s",
// "1m", "60s" (each quoted or not), any of which will do. They start with
// "~" to say so.
func durationForms(d time.Duration) []string {
	full := d.String()
	short := full
	if strings.HasSuffix(short, "m0s") || strings.HasSuffix(short, "h0s") {
		short = strings.TrimSuffix(short, "0s")
	}
	if strings.HasSuffix(short, "h0m") {
		short = strings.TrimSuffix(short, "0m")
	}
	return []string{"~", full, short, fmt.Sprintf("%gs", d.Seconds())}
}

// referenceDoc is the configuration reference that documents every field.
const referenceDoc = "docs/reference/configuration.md"

// readmeTable returns, for the first markdown table after heading in
// the configuration reference, each field named in backticks in a row's
// first cell and that row's second cell (the default).
func readmeTable(t *testing.T, heading string) map[string]string {
	t.Helper()
	table, err := doctable.Read("../../"+referenceDoc, heading)
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	tick := regexp.MustCompile("`([^`]+)`")
	for _, cells := range table[1:] {
		if len(cells) < 2 {
			continue
		}
		for _, m := range tick.FindAllStringSubmatch(cells[0], -1) {
			rows[m[1]] = cells[1]
		}
	}
	return rows
}

// TestReadmeDocumentsEveryField: docs/reference/configuration.md (its
// "Fields" table, and the "Upload" table for "upload") names every JSON field of
// Config with its real default, and names no field that does not exist.
func TestReadmeDocumentsEveryField(t *testing.T) {
	ref := readmeTable(t, "## Fields")
	up := readmeTable(t, "## Upload")
	paths := jsonPaths(reflect.TypeOf(Config{}), "")
	for _, p := range paths {
		table, key := ref, p
		if rest, ok := strings.CutPrefix(p, "upload."); ok {
			table, key = up, rest
		}
		def, ok := table[key]
		switch {
		case !ok:
			t.Errorf("%s does not document the field %s", referenceDoc, p)
		case def == "":
			t.Errorf("%s documents %s without a default", referenceDoc, p)
		}
	}
	// The documented defaults are the real ones.
	defaults := map[string][]string{}
	jsonDefaults(reflect.ValueOf(DefaultConfig()), "", defaults)
	for p, forms := range defaults {
		table, key := ref, p
		if rest, ok := strings.CutPrefix(p, "upload."); ok {
			table, key = up, rest
		}
		def, ok := table[key]
		if !ok {
			continue // reported above
		}
		if forms[0] == "~" {
			if !slices.ContainsFunc(forms[1:], func(s string) bool {
				return strings.Contains(def, "`"+s+"`") || strings.Contains(def, "`\""+s+"\"`")
			}) {
				t.Errorf("%s: %s default %q, want %s", referenceDoc, p, def, forms[1])
			}
			continue
		}
		for _, v := range forms {
			if !strings.Contains(def, v) {
				t.Errorf("%s: %s default %q lacks %q", referenceDoc, p, def, v)
			}
		}
	}
	for name := range ref {
		if name != "upload.*" && !slices.Contains(paths, name) {
			t.Errorf("%s's Fields table names %s, which is not a field", referenceDoc, name)
		}
	}
	for name := range up {
		if !slices.Contains(paths, "upload."+name) {
			t.Errorf("%s's Upload table names %s, which is not a field of upload", referenceDoc, name)
		}
	}
}
