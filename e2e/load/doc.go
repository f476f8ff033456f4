// Package load drives HTTP load for the e2e scenarios and the demo: a
// closed loop of workers whose number follows a schedule, counting every
// success and failure.
package load
