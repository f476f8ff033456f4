// Package plot draws the demo's time-series chart (load, in-flight and
// queued requests, replicas) as one standalone SVG file that a browser
// opens without fetching anything else.
//
// A Chart has two y axes: series on the Left axis share one scale (request
// counts), series on the Right axis another (replica counts). Both scales
// start at 0 and are rounded to 1, 2 or 5 times a power of ten; an axis
// whose values are all whole numbers gets whole-number ticks, so a replica
// count that peaks at 4 is labelled 0, 1, 2, 3, 4. The x axis is in
// seconds since the start of the run. Markers draw dashed vertical lines
// at notable moments, such as the time the load stops.
//
// Points whose value is NaN or infinite are skipped, an empty chart still
// renders its axes, and the same Chart always produces the same bytes, so
// a golden file catches any visual change in review.
package plot
