package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"sort"
	"strings"
)

// EnvVar names a configuration file when -config is not given.
const EnvVar = "PRESSCAP_CONFIG"

// SearchPaths returns where the configuration is looked for when neither
// -config nor $PRESSCAP_CONFIG names a file, first match wins: a file the
// provider edits on the device's /perm partition, then the one shipped in
// the image.
func SearchPaths() []string {
	return []string{"/perm/presscap/config.json", "/etc/presscap/config.json"}
}

// Where the service's layers are, lowest first: the image's file, the
// provider's fleet file (from the server, see package fleetconfig) and a
// local edit on the device.
const (
	ImagePath = "/etc/presscap/config.json"
	FleetPath = "/perm/presscap/fleet.json"
	LocalPath = "/perm/presscap/config.json"
)

// LayerPaths are the files the service stacks when neither -config nor
// $PRESSCAP_CONFIG names one: built-in defaults ← image ← fleet ← local.
func LayerPaths() []string {
	return []string{ImagePath, FleetPath, LocalPath}
}

// LoadLayers reads the files of paths that exist and parses them as
// layers (ParseLayers), returning the paths it used.
func LoadLayers(paths []string) (Config, []string, error) {
	ls, used, err := ReadLayers(paths)
	if err != nil {
		return Config{}, used, err
	}
	c, err := ParseLayers(ls)
	return c, used, err
}

// ReadLayers reads the files of paths that exist, as layers named after
// them, and returns the paths it read (with the error, the one it could
// not).
func ReadLayers(paths []string) ([]Layer, []string, error) {
	var ls []Layer
	var used []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			// Named in used: the service drops an unreadable fleet layer
			// as it does an invalid one.
			return nil, append(used, p), fmt.Errorf("config: %w", err)
		}
		ls = append(ls, Layer{Name: "config " + p, Data: b})
		used = append(used, p)
	}
	return ls, used, nil
}

// Find returns the configuration file to use: flagPath if set, else the
// file $PRESSCAP_CONFIG names, else the first of SearchPaths that exists.
// It returns "" (and no error) when no file exists: the defaults apply.
func Find(flagPath string, getenv func(string) string) (string, error) {
	if flagPath != "" {
		return flagPath, nil
	}
	if p := getenv(EnvVar); p != "" {
		return p, nil
	}
	for _, p := range SearchPaths() {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("config %s: %w", p, err)
		}
	}
	return "", nil
}

// Load reads and parses the file at path over the defaults. It does not
// validate; call Validate.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes a JSON configuration over DefaultConfig. A list in the file
// replaces the default list whole. Unknown fields, wrong types and bad
// durations or sizes are errors that name the field. Values that earlier
// versions accepted and this one corrects are corrected here, each with a
// warning (Config.Warnings).
func Parse(data []byte) (Config, error) {
	return ParseLayers([]Layer{{Data: data}})
}

// Layer is one configuration file of a stack (see LayerPaths).
type Layer struct {
	Name string // in errors; "" adds nothing
	Data []byte
}

// ParseLayers decodes layers over DefaultConfig, each over the ones before
// as Parse decodes one file over the defaults: an object merges field by
// field, a value or list a later layer names replaces the earlier one
// whole. A layer that sets the top-level exports, trigger.before or
// trigger.after and not trigger.profiles drops the profiles below it (see
// pressWithoutProfiles). Errors are prefixed with the name of the layer
// they are in.
func ParseLayers(layers []Layer) (Config, error) {
	c := DefaultConfig()
	// ring.max_age follows the trigger and its profiles unless a layer
	// names it.
	c.Ring.MaxAge = maxAgeUnset
	linksSet := false
	for _, l := range layers {
		below := c.Trigger.Profiles
		set, err := c.decode(l.Data)
		if err != nil {
			if l.Name != "" {
				err = fmt.Errorf("%s: %w", l.Name, err)
			}
			return Config{}, err
		}
		linksSet = linksSet || set
		if len(below) > 0 && pressWithoutProfiles(l.Data) {
			c.Trigger.Profiles = nil
		}
	}
	if c.Ring.MaxAge == maxAgeUnset {
		c.Ring.MaxAge = c.NeededAge()
	}
	c.network(linksSet)
	c.upgrade()
	return c, nil
}

// pressWithoutProfiles says whether a layer says what a press saves (the
// top-level exports, trigger.before or trigger.after) without naming
// trigger.profiles: a file written for one kind of press. The profiles of
// the layers below it (the image's buttons) would hide what it says, each
// with its own exports and window, so they are dropped: without profiles,
// every key is the same press, as before profiles existed.
func pressWithoutProfiles(data []byte) bool {
	var top struct {
		Exports json.RawMessage `json:"exports"`
		Trigger struct {
			Before   json.RawMessage `json:"before"`
			After    json.RawMessage `json:"after"`
			Profiles json.RawMessage `json:"profiles"`
		} `json:"trigger"`
	}
	if json.Unmarshal(data, &top) != nil {
		return false // decode has named the error
	}
	t := top.Trigger
	return t.Profiles == nil && (top.Exports != nil || t.Before != nil || t.After != nil)
}

// maxAgeUnset marks ring.max_age as named by no layer (a negative value,
// which a layer may not give anyway).
const maxAgeUnset = Duration(math.MinInt64)

// decode decodes one layer over c and says whether it named links.
func (c *Config) decode(data []byte) (bool, error) {
	var generic any
	if err := json.Unmarshal(data, &generic); err != nil {
		return false, describeJSONError(data, err)
	}
	if _, ok := generic.(map[string]any); !ok {
		return false, &FieldError{Field: "(top level)", Problem: "must be a JSON object"}
	}
	if es := checkUnknown(reflect.TypeOf(Config{}), generic, ""); len(es) > 0 {
		return false, es
	}
	saved := map[string]reflect.Value{}
	clearSlices(reflect.ValueOf(c).Elem(), saved)
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		// The decoder stops at the first value of the wrong type: every
		// one is named, each decoded on its own.
		if es := typeErrors(data); len(es) > 0 {
			return false, es
		}
		return false, describeJSONError(data, err)
	}
	linksSet := c.Links != nil
	restoreSlices(reflect.ValueOf(c).Elem(), saved)
	return linksSet, nil
}

// network derives from network.ports what they decide: the capture links
// (unless the file lists links too, which Validate refuses) and, inline,
// pcapng as the exports' default format.
func (c *Config) network(linksSet bool) {
	if c.Network.Mode == ModeSingle || len(c.Network.Ports) == 0 {
		return
	}
	c.linksWithPorts = linksSet
	if !linksSet {
		c.Links = c.Network.portLinks()
	}
	if c.Network.Mode == ModeInline {
		pcapng := func(es []Export) {
			for i := range es {
				if es[i].Format == "" {
					es[i].Format = "pcapng"
				}
			}
		}
		pcapng(c.Exports)
		for _, p := range c.Trigger.Profiles {
			pcapng(p.Exports)
		}
	}
}

// clearSlices sets every slice field to nil, remembering the default, so
// that a list in the file replaces the default instead of being merged
// into its elements (encoding/json decodes into existing elements).
func clearSlices(v reflect.Value, saved map[string]reflect.Value) {
	eachSlice(v, "", func(p string, f reflect.Value) {
		saved[p] = reflect.ValueOf(f.Interface())
		f.Set(reflect.Zero(f.Type()))
	})
}

// restoreSlices puts back the defaults clearSlices saved for the lists the
// file did not set.
func restoreSlices(v reflect.Value, saved map[string]reflect.Value) {
	eachSlice(v, "", func(p string, f reflect.Value) {
		if f.IsNil() {
			if d, ok := saved[p]; ok {
				f.Set(d)
			}
		}
	})
}

// eachSlice calls fn for every exported slice field of the struct v and of
// the structs nested in it, with the field's path (".Ring.Filters").
func eachSlice(v reflect.Value, path string, fn func(path string, f reflect.Value)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := v.Field(i)
		if !t.Field(i).IsExported() {
			continue
		}
		p := path + "." + t.Field(i).Name
		switch f.Kind() {
		case reflect.Slice:
			fn(p, f)
		case reflect.Struct:
			eachSlice(f, p, fn)
		}
	}
}

// checkUnknown walks the decoded JSON beside the Go type and reports every
// key that no field carries, with its full path (sorted within an object).
func checkUnknown(t reflect.Type, v any, path string) Errors {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if t.Implements(reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()) || reflect.PointerTo(t).Implements(reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()) {
			return nil
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil // a type error, reported by the decoder
		}
		fields := map[string]reflect.Type{}
		var names []string
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			if !sf.IsExported() {
				continue
			}
			name := strings.Split(sf.Tag.Get("json"), ",")[0]
			if name == "-" {
				continue
			}
			if name == "" {
				name = sf.Name
			}
			fields[strings.ToLower(name)] = sf.Type
			names = append(names, name)
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var es Errors
		for _, k := range keys {
			ft, ok := fields[strings.ToLower(k)]
			if !ok {
				es.Add(join(path, k), "unknown field (known: %s)", strings.Join(names, ", "))
				continue
			}
			es = append(es, checkUnknown(ft, m[k], join(path, k))...)
		}
		return es
	case reflect.Slice, reflect.Array:
		a, ok := v.([]any)
		if !ok {
			return nil
		}
		var es Errors
		for i, e := range a {
			es = append(es, checkUnknown(t.Elem(), e, fmt.Sprintf("%s[%d]", path, i))...)
		}
		return es
	}
	return nil
}

// typeErrors decodes every value of data on its own into the field of
// Config it sets and returns what does not fit, by field.
func typeErrors(data []byte) Errors {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // numbers as written, not rounded to a float64
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil
	}
	return checkTypes(reflect.TypeOf(Config{}), v, "")
}

func checkTypes(t reflect.Type, v any, path string) Errors {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	unmarshaler := reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()
	custom := t.Implements(unmarshaler) || reflect.PointerTo(t).Implements(unmarshaler)
	var es Errors
	switch m, isMap := v.(map[string]any); {
	case !custom && t.Kind() == reflect.Struct && isMap:
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			name := strings.Split(sf.Tag.Get("json"), ",")[0]
			if !sf.IsExported() || name == "-" {
				continue
			}
			if name == "" {
				name = sf.Name
			}
			for k, fv := range m {
				if strings.EqualFold(k, name) {
					es = append(es, checkTypes(sf.Type, fv, join(path, k))...)
				}
			}
		}
		sort.Slice(es, func(i, j int) bool { return es[i].Field < es[j].Field })
		return es
	case !custom && t.Kind() == reflect.Slice && t.Elem().Kind() != reflect.Uint8:
		if a, ok := v.([]any); ok {
			for i, e := range a {
				es = append(es, checkTypes(t.Elem(), e, fmt.Sprintf("%s[%d]", path, i))...)
			}
			return es
		}
	}
	b, err := json.Marshal(v)
	if err == nil {
		err = json.Unmarshal(b, reflect.New(t).Interface())
	}
	if err != nil {
		if fe, ok := describeJSONError(b, err).(*FieldError); ok {
			fe.Field = path
			return Errors{fe}
		}
		es.Add(path, "%v", err)
	}
	return es
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// describeJSONError turns encoding/json's errors into ones that name the
// field, or the line and column of a syntax error.
func describeJSONError(data []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		// Offset counts the bytes read, the offending one included.
		line, col := lineCol(data, se.Offset-1)
		return fmt.Errorf("line %d, column %d: %w", line, col, err)
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "(top level)"
		}
		problem := "got " + te.Value + ", want " + describeType(te.Type)
		if strings.Contains(te.Value, "(want") {
			problem = "bad value " + te.Value
		}
		return &FieldError{Field: field, Problem: problem}
	}
	return err
}

func describeType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "a list"
	case reflect.Struct:
		return "an object"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	}
	return t.String()
}

func lineCol(data []byte, off int64) (line, col int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	before := data[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(off) - bytes.LastIndexByte(before, '\n')
	return line, col
}
