package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// Diff lists the fields whose values differ between a and b, named by
// their paths in the YAML (listen, log.level, apps[1].adapter.url,
// pages[0].tokens.support-bot), in the order of the Config's fields. A
// list whose length changed is one path (apps); so is a section present
// in one and absent in the other (pages[0].rules.return). Values not
// written in the file (secrets read from the environment, what is
// compiled from the file) are compared through the fields they come
// from: a secret changes with its *_env key.
func Diff(a, b *Config) []string {
	var out []string
	diffValue("", reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem(), &out)
	return out
}

func diffValue(path string, a, b reflect.Value, out *[]string) {
	switch a.Kind() {
	case reflect.Pointer:
		switch {
		case a.IsNil() && b.IsNil():
		case a.IsNil() || b.IsNil():
			*out = append(*out, path)
		default:
			diffValue(path, a.Elem(), b.Elem(), out)
		}
	case reflect.Struct:
		t := a.Type()
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			if path != "" {
				name = path + "." + name
			}
			diffValue(name, a.Field(i), b.Field(i), out)
		}
	case reflect.Slice:
		if a.Len() != b.Len() {
			*out = append(*out, path)
			return
		}
		for i := range a.Len() {
			diffValue(fmt.Sprintf("%s[%d]", path, i), a.Index(i), b.Index(i), out)
		}
	case reflect.Map:
		keys := map[string]reflect.Value{}
		for _, k := range slices.Concat(a.MapKeys(), b.MapKeys()) {
			keys[fmt.Sprint(k.Interface())] = k
		}
		names := make([]string, 0, len(keys))
		for n := range keys {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			av, bv := a.MapIndex(keys[n]), b.MapIndex(keys[n])
			if !av.IsValid() || !bv.IsValid() {
				*out = append(*out, path+"."+n)
				continue
			}
			diffValue(path+"."+n, av, bv, out)
		}
	default:
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			*out = append(*out, path)
		}
	}
}
