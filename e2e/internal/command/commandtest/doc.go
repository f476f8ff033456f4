// Package commandtest runs a command's [command.Run] function in a test, as
// the process would run it: on a free loopback port, with its JSON log
// lines read back, until the test's context ends or the test does.
package commandtest
