package cluster

import (
	"fmt"
	"os/exec"
	"strings"
)

// ipCmd runs `ip args…`.
func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// makeBridge creates bridge with the address cidr (e.g. 10.244.0.1/16) and
// brings it up.
func makeBridge(bridge, cidr string) error {
	if err := ipCmd("link", "add", bridge, "type", "bridge"); err != nil {
		return err
	}
	if err := ipCmd("addr", "add", cidr, "dev", bridge); err != nil {
		return err
	}
	return ipCmd("link", "set", bridge, "up")
}

// makeNetns creates network namespace ns joined to bridge by a veth pair
// (host side hostIf), with the address cidr on its eth0 and a default route
// via gateway.
func makeNetns(ns, hostIf, bridge, cidr, gateway string) error {
	steps := [][]string{
		{"netns", "add", ns},
		{"link", "add", hostIf, "type", "veth", "peer", "name", hostIf + "p"},
		{"link", "set", hostIf + "p", "netns", ns},
		{"link", "set", hostIf, "master", bridge},
		{"link", "set", hostIf, "up"},
		{"-n", ns, "link", "set", hostIf + "p", "name", "eth0"},
		{"-n", ns, "addr", "add", cidr, "dev", "eth0"},
		{"-n", ns, "link", "set", "eth0", "up"},
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "route", "add", "default", "via", gateway},
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			return err
		}
	}
	return nil
}

// removeNetwork deletes namespaces and links whose names start with prefix;
// errors are ignored, as things may already be gone.
func removeNetwork(prefix string) {
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) > 0 && strings.HasPrefix(f[0], prefix) {
				_ = ipCmd("netns", "del", f[0])
			}
		}
	}
	if out, err := exec.Command("ip", "-o", "link", "show").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			if strings.HasPrefix(name, prefix) {
				_ = ipCmd("link", "del", name)
			}
		}
	}
}
