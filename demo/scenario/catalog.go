package scenario

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

//go:embed catalog/*.lab
var catalogFS embed.FS

// Names returns the names of the built-in scenarios, sorted with the
// article's two first.
func Names() []string {
	ents, _ := fs.ReadDir(catalogFS, "catalog")
	var names []string
	for _, e := range ents {
		names = append(names, strings.TrimSuffix(e.Name(), ".lab"))
	}
	rank := func(n string) int {
		switch n {
		case "close":
			return 0
		case "shutdown":
			return 1
		}
		return 2
	}
	sort.SliceStable(names, func(i, j int) bool {
		if rank(names[i]) != rank(names[j]) {
			return rank(names[i]) < rank(names[j])
		}
		return names[i] < names[j]
	})
	return names
}

// Source returns the text of a built-in scenario.
func Source(name string) ([]byte, error) {
	b, err := catalogFS.ReadFile("catalog/" + name + ".lab")
	if err != nil {
		msg := fmt.Sprintf("scenario: no built-in scenario %q; valid names: %s", name, strings.Join(Names(), ", "))
		if n := nearest(name, Names()); n != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", n)
		}
		return nil, fmt.Errorf("%s", msg)
	}
	return b, nil
}

// Builtin parses a built-in scenario.
func Builtin(name string) (*Script, error) {
	b, err := Source(name)
	if err != nil {
		return nil, err
	}
	return Parse(name+".lab", bytes.NewReader(b))
}
