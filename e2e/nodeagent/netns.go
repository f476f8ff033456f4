package nodeagent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// maxLinkName is the longest network interface name Linux takes (IFNAMSIZ-1).
const maxLinkName = 15

// podNetwork is the network namespace of one pod and the host end of its
// veth pair.
type podNetwork struct {
	netns    string
	hostVeth string
	addr     netip.Addr
}

// networkNames returns the names of a pod's namespace and host veth: the
// prefix and a hash of the pod's UID, so that a pod keeps its names across
// agent restarts and Cleanup finds them by prefix.
func networkNames(prefix, uid string) (netns, hostVeth string) {
	sum := sha256.Sum256([]byte(uid))
	h := hex.EncodeToString(sum[:])
	return prefix + "-" + h[:12], prefix + h[:maxLinkName-len(prefix)]
}

// setupNetwork makes a pod's namespace: the veth pair, its end eth0 in the
// namespace with addr/bits, lo up and the default route through gateway. A
// namespace or veth of the same name (left by an agent that died) is
// removed first. On failure what was made is removed again. It takes three
// runs of ip: pod start-up latency counts.
func setupNetwork(ctx context.Context, ipPath, prefix, uid, bridge string, addr netip.Addr, bits int, gateway netip.Addr) (_ *podNetwork, err error) {
	netns, veth := networkNames(prefix, uid)
	n := &podNetwork{netns: netns, hostVeth: veth, addr: addr}
	if n.leftover() {
		if err := teardownNetwork(ctx, ipPath, n); err != nil {
			return nil, fmt.Errorf("removing the leftover network namespace %s: %w", netns, err)
		}
	}
	defer func() {
		if err != nil {
			_ = teardownNetwork(context.WithoutCancel(ctx), ipPath, n)
		}
	}()
	if err := runIP(ctx, ipPath, "netns", "add", netns); err != nil {
		return nil, fmt.Errorf("setting up network namespace %s: %w", netns, err)
	}
	host := []string{
		"link add " + veth + " type veth peer name eth0 netns " + netns,
		"link set " + veth + " master " + bridge,
		"link set " + veth + " up",
	}
	if err := runIPBatch(ctx, ipPath, nil, host); err != nil {
		return nil, fmt.Errorf("setting up network namespace %s: %w", netns, err)
	}
	inside := []string{
		"link set lo up",
		"addr add " + netip.PrefixFrom(addr, bits).String() + " dev eth0",
		"link set eth0 up",
		"route add default via " + gateway.String(),
	}
	if err := runIPBatch(ctx, ipPath, []string{"-n", netns}, inside); err != nil {
		return nil, fmt.Errorf("setting up network namespace %s: %w", netns, err)
	}
	return n, nil
}

// leftover reports whether n's namespace or veth exists already.
func (n *podNetwork) leftover() bool {
	_, errNS := os.Stat(filepath.Join("/run/netns", n.netns))
	_, errLink := os.Stat(filepath.Join("/sys/class/net", n.hostVeth))
	return errNS == nil || errLink == nil
}

// teardownNetwork kills what is left in a pod's namespace, deletes the
// namespace (and so the veth pair) and the host veth if it survived. It
// ignores what does not exist.
func teardownNetwork(ctx context.Context, ipPath string, n *podNetwork) error {
	var errs []error
	if err := killNetnsProcesses(ctx, ipPath, n.netns); err != nil {
		errs = append(errs, err)
	}
	if err := runIP(ctx, ipPath, "netns", "del", n.netns); err != nil && !isMissing(err) {
		errs = append(errs, err)
	}
	if _, err := os.Stat(filepath.Join("/sys/class/net", n.hostVeth)); err == nil {
		if err := runIP(ctx, ipPath, "link", "del", n.hostVeth); err != nil && !isMissing(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// killNetnsProcesses SIGKILLs every process in a namespace: in normal
// operation there are none left when a namespace is deleted, but an agent
// that died leaves its pods running.
func killNetnsProcesses(ctx context.Context, ipPath, netns string) error {
	out, err := exec.CommandContext(ctx, ipPath, "netns", "pids", netns).Output()
	if err != nil {
		return nil // no such namespace
	}
	var errs []error
	for f := range strings.FieldsSeq(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 1 {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("killing process %d of network namespace %s: %w", pid, netns, err))
		}
	}
	// Give the kernel a moment to reap them so that the namespace goes.
	if len(out) > 0 {
		time.Sleep(50 * time.Millisecond)
	}
	return errors.Join(errs...)
}

// Cleanup removes what an earlier agent run that died left behind: it kills
// the processes in every network namespace whose name starts with prefix,
// deletes those namespaces, and deletes every network interface whose name
// starts with prefix (so the harness's bridge must not). Processes of
// hostNetwork pods cannot be found this way; they get SIGKILL when their
// agent dies.
func Cleanup(prefix string) error {
	if err := validPrefix(prefix); err != nil {
		return err
	}
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		return fmt.Errorf("cleaning up %q leftovers: %w", prefix, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var errs []error
	out, err := exec.CommandContext(ctx, ipPath, "netns", "list").Output()
	if err != nil {
		return fmt.Errorf("cleaning up %q leftovers: listing network namespaces: %w", prefix, err)
	}
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line) // "name (id: 3)"
		if len(fields) == 0 || !strings.HasPrefix(fields[0], prefix) {
			continue
		}
		if err := killNetnsProcesses(ctx, ipPath, fields[0]); err != nil {
			errs = append(errs, err)
		}
		if err := runIP(ctx, ipPath, "netns", "del", fields[0]); err != nil && !isMissing(err) {
			errs = append(errs, err)
		}
	}

	out, err = exec.CommandContext(ctx, ipPath, "-o", "link", "show").Output()
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("cleaning up %q leftovers: listing links: %w", prefix, err))...)
	}
	for line := range strings.Lines(string(out)) {
		// "7: nme2eab12@if2: <BROADCAST,...> ..."
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(fields[1], ":"), "@")
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		if err := runIP(ctx, ipPath, "link", "del", name); err != nil && !isMissing(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// validPrefix checks a name prefix: short enough to leave seven hex digits
// of hash in a 15-character interface name, and plain enough to be safe in
// every name it starts.
func validPrefix(prefix string) error {
	if len(prefix) < 2 || len(prefix) > 8 {
		return fmt.Errorf("name prefix %q: must be 2 to 8 characters", prefix)
	}
	for i, r := range prefix {
		switch {
		case r >= 'a' && r <= 'z':
		case i > 0 && r >= '0' && r <= '9':
		default:
			return fmt.Errorf("name prefix %q: must be lower-case letters and digits, starting with a letter", prefix)
		}
	}
	return nil
}

// ipError is a failed ip command with its output.
type ipError struct {
	args   []string
	output string
	err    error
}

func (e *ipError) Error() string {
	return fmt.Sprintf("ip %s: %v: %s", strings.Join(e.args, " "), e.err, e.output)
}

func (e *ipError) Unwrap() error { return e.err }

// runIPBatch runs commands (one ip command line each, without "ip") in one
// ip -batch run, with global options opts.
func runIPBatch(ctx context.Context, ipPath string, opts, commands []string) error {
	args := append(append([]string(nil), opts...), "-batch", "-")
	cmd := exec.CommandContext(ctx, ipPath, args...)
	cmd.Stdin = strings.NewReader(strings.Join(commands, "\n") + "\n")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return &ipError{args: append(args, commands...), output: strings.TrimSpace(out.String()), err: err}
	}
	return nil
}

func runIP(ctx context.Context, ipPath string, args ...string) error {
	cmd := exec.CommandContext(ctx, ipPath, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return &ipError{args: args, output: strings.TrimSpace(out.String()), err: err}
	}
	return nil
}

// isMissing reports whether an ip command failed because its object does
// not exist.
func isMissing(err error) bool {
	var e *ipError
	if !errors.As(err, &e) {
		return false
	}
	for _, s := range []string{"No such file", "Cannot find device", "does not exist", "not found"} {
		if strings.Contains(e.output, s) {
			return true
		}
	}
	return false
}
