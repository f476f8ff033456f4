// Package childproc starts the child processes of the e2e suite's
// benchmarks and soak test (routingbench, soak) and stops each of them by
// its pid whatever happens: on return, on a signal (the caller's deferred
// [Process.Stop]), and, through Pdeathsig, if the parent dies.
//
// A child runs in a process group of its own, so that stopping it stops
// what it started too; its stdout and stderr are appended to dir/name.log,
// so that a child restarted under the same name keeps one log. It is
// Linux-only, as the suite is (Pdeathsig).
package childproc
