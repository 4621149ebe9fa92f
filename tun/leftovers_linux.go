package tun

import (
	"fmt"
	"net"
	"os"
	"strings"
)

// Leftovers lists what a lab could have left in the caller's network
// namespace: interfaces named like lab devices ("tcl-*") and named network
// namespaces (/run/netns). A Lab leaves none by design; tests and support
// checks use this to prove it. Cost: one interface listing and one
// directory read.
func Leftovers() ([]string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("tun: list interfaces: %w", err)
	}
	var left []string
	for _, i := range ifs {
		if strings.HasPrefix(i.Name, "tcl-") {
			left = append(left, "device "+i.Name)
		}
	}
	ents, err := os.ReadDir("/run/netns")
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("tun: list named namespaces: %w", err)
	}
	for _, e := range ents {
		left = append(left, "named namespace "+e.Name())
	}
	return left, nil
}
