package main

import (
	"fmt"
	"strconv"
	"strings"
)

// stringList is a flag that may be given several times.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// headerMap is a repeatable "Name: value" flag.
type headerMap map[string]string

func (h headerMap) String() string {
	parts := make([]string, 0, len(h))
	for k, v := range h {
		parts = append(parts, k+": "+v)
	}
	return strings.Join(parts, ", ")
}

func (h headerMap) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return fmt.Errorf("%q is not a header: want \"Name: value\"", v)
	}
	h[name] = strings.TrimSpace(value)
	return nil
}

// serviceRef is a NAMESPACE/NAME:PORT flag.
type serviceRef struct {
	namespace, name string
	port            int32
}

func (r *serviceRef) String() string {
	if r.name == "" {
		return ""
	}
	return fmt.Sprintf("%s/%s:%d", r.namespace, r.name, r.port)
}

func (r *serviceRef) Set(v string) error {
	nsName, portStr, ok := strings.Cut(v, ":")
	namespace, name, ok2 := strings.Cut(nsName, "/")
	port, err := strconv.ParseInt(portStr, 10, 32)
	if !ok || !ok2 || namespace == "" || name == "" || err != nil || port <= 0 || port > 65535 {
		return fmt.Errorf("%q is not NAMESPACE/NAME:PORT", v)
	}
	r.namespace, r.name, r.port = namespace, name, int32(port)
	return nil
}
