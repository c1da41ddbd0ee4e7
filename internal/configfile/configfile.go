// Package configfile decodes TOML configuration strictly: an unknown key, a value of the
// wrong type and an invalid value are each reported with the key's full name and the
// file's name, and every problem in a file is reported at once rather than the first.
package configfile

import (
	"encoding"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Validator is a configuration section that can check its values. Each error should
// start with the key it is about ("listen: …").
type Validator interface {
	Validate() []error
}

// Load reads path into v (a pointer to a struct with toml tags), which should already hold
// the defaults: keys absent from the file keep them.
func Load(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return Decode(path, data, v)
}

// Decode decodes data, named name in errors, into v. It returns every problem at once,
// joined with errors.Join; each line names the file and the key.
func Decode(name string, data []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("configfile: decode into %T, want a pointer to a struct", v)
	}
	var raw map[string]toml.Primitive
	md, err := toml.Decode(string(data), &raw)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return fmt.Errorf("%s: line %d: %s", name, pe.Position.Line, pe.Message)
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	d := decoder{name: name, md: md}
	d.section(raw, rv.Elem(), "", true)
	return errors.Join(d.errs...)
}

type decoder struct {
	name string
	md   toml.MetaData
	errs []error
}

func (d *decoder) fail(format string, args ...any) {
	d.errs = append(d.errs, fmt.Errorf("%s: "+format, append([]any{d.name}, args...)...))
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// isSection tells whether a field is a nested table to decode key by key.
func isSection(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && !reflect.PointerTo(t).Implements(textUnmarshaler)
}

// section decodes one table key by key. typed says whether the metadata can tell the
// TOML types of the keys (not inside arrays of tables).
func (d *decoder) section(prims map[string]toml.Primitive, rv reflect.Value, prefix string, typed bool) {
	fields := map[string]int{}
	for i := 0; i < rv.NumField(); i++ {
		f := rv.Type().Field(i)
		tag := strings.Split(f.Tag.Get("toml"), ",")[0]
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		fields[tag] = i
	}
	keys := make([]string, 0, len(prims))
	for k := range prims {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		path := prefix + key
		i, ok := fields[key]
		if !ok {
			d.fail("unknown key %q", path)
			continue
		}
		fv := rv.Field(i)
		ft := fv.Type()
		switch {
		case isSection(ft):
			if typed && d.md.Type(strings.Split(path, ".")...) != "Hash" {
				d.fail("key %q: want a table ([%s]), got %s", path, path, d.typeOf(path, typed))
				continue
			}
			var sub map[string]toml.Primitive
			if err := d.md.PrimitiveDecode(prims[key], &sub); err != nil {
				d.fail("key %q: want a table ([%s]): %v", path, path, err)
				continue
			}
			d.section(sub, fv, path+".", typed)
		case ft.Kind() == reflect.Slice && isSection(ft.Elem()):
			if typed && d.md.Type(strings.Split(path, ".")...) != "ArrayHash" {
				d.fail("key %q: want an array of tables ([[%s]]), got %s", path, path, d.typeOf(path, typed))
				continue
			}
			var subs []map[string]toml.Primitive
			if err := d.md.PrimitiveDecode(prims[key], &subs); err != nil {
				d.fail("key %q: want an array of tables ([[%s]]): %v", path, path, err)
				continue
			}
			out := reflect.MakeSlice(ft, len(subs), len(subs))
			for j, sub := range subs {
				d.section(sub, out.Index(j), fmt.Sprintf("%s[%d].", path, j), false)
			}
			fv.Set(out)
		default:
			if err := d.md.PrimitiveDecode(prims[key], fv.Addr().Interface()); err != nil {
				d.fail("key %q: %s", path, describe(err, ft, d.typeOf(path, typed)))
			}
		}
	}
}

func (d *decoder) typeOf(path string, typed bool) string {
	if !typed {
		return "a value of another type"
	}
	switch t := strings.ToLower(d.md.Type(strings.Split(path, ".")...)); t {
	case "":
		return "a value of another type"
	case "integer", "array", "arrayhash":
		return "an " + strings.TrimSuffix(t, "hash")
	case "hash":
		return "a table"
	default:
		return "a " + t
	}
}

// describe turns a decoding error into "want X, got Y" or the value's own complaint.
func describe(err error, want reflect.Type, got string) string {
	if reflect.PointerTo(want).Implements(textUnmarshaler) {
		// A TextUnmarshaler's error says what is wrong with the value itself.
		msg := err.Error()
		if i := strings.LastIndex(msg, "): "); i >= 0 && strings.HasPrefix(msg, "toml:") {
			msg = msg[i+3:]
		}
		return strings.TrimPrefix(msg, "toml: ")
	}
	return fmt.Sprintf("wrong type: want %s, got %s", kindName(want), got)
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array of " + strings.TrimPrefix(strings.TrimPrefix(kindName(t.Elem()), "a "), "an ") + "s"
	case reflect.Map, reflect.Struct:
		return "a table"
	}
	return t.String()
}

// Problems prefixes each of a section's validation errors with the file and section.
func Problems(file, section string, errs []error) []error {
	out := make([]error, 0, len(errs))
	for _, e := range errs {
		key := section
		if key != "" {
			key += "."
		}
		out = append(out, fmt.Errorf("%s: %s%w", file, key, e))
	}
	return out
}

// Duration is a time.Duration written as a string such as "30s" or "5m".
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q (want e.g. \"30s\", \"5m\", \"1h30m\")", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// String returns the duration as "1m30s".
func (d Duration) String() string { return time.Duration(d).String() }

// Keys lists the dotted keys of a configuration struct, following nested sections (not
// maps or arrays of tables), for checking that a documented file shows every key.
func Keys(v any) []string {
	var out []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("toml"), ",")[0]
			if tag == "" || tag == "-" || !f.IsExported() {
				continue
			}
			if isSection(f.Type) {
				walk(f.Type, prefix+tag+".")
				continue
			}
			out = append(out, prefix+tag)
		}
	}
	walk(reflect.TypeOf(v), "")
	sort.Strings(out)
	return out
}
