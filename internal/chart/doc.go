// Package chart draws Nemesis's time-series charts (load and replicas over
// time) as standalone SVG files, with gonum.org/v1/plot: the demo's chart
// of a run, and the chart `nemesis rules backtest --plot FILE.svg` writes
// of what rule sets would have done over past days. A well-kept plotting
// library does the axes, ticks, text measurement and legend, so this
// package only decides what to draw.
//
// # Two panels, not two y axes
//
// A chart has two quantities on one time axis: load (requests, or the
// value of a rule set's query), on the Left axis, and replica counts, on
// the Right axis. gonum/plot has one y axis per plot, so instead of
// drawing a second axis by hand the chart stacks two panels, load above
// and replicas below, aligned by plot.Align so that they share the time
// axis, its ticks and its grid. This reads better than two y scales
// overlaid: every line is measured against the axis beside it, load and
// replica lines never cross each other meaninglessly, and the several
// step lines of a backtest (each rule set, the simulated replicas, the
// actual ones) get a panel of their own. A chart with series on one axis
// only has one panel. Each panel's legend stands in a column on its
// right, where it hides no line.
//
// # Scales and time
//
// Both y scales start at 0 and end on a round tick (1, 2 or 5 times a
// power of ten); the replica axis has whole-number ticks. With a zero
// Chart.Start the time axis is in seconds since the start (the demo);
// with a Start it is labelled with wall-clock times in Start's location,
// on round times of day ("15:04", "Mon 15:04" past a day, "Mon 2 Jan" for
// day ticks), which a backtest over days needs. Markers are dashed
// vertical lines with a label, such as "load stops".
//
// # Standalone, deterministic, small
//
// The SVG fetches nothing: text is in Liberation Sans, with Arial,
// Helvetica and sans-serif as fallbacks, which share its metrics, rather
// than an embedded font of 400 kB, and the only URL in the file is the
// SVG namespace. The same chart always yields the same bytes, so golden
// files in testdata catch any visual change in review (go test
// ./internal/chart -run TestGolden -update rewrites them). Points whose
// value is NaN or infinite leave a gap in their line; empty series and
// empty charts render. Lines are drawn in the Okabe-Ito palette, which
// stays distinct under the common forms of colour blindness.
//
// A backtest of a week at 15 s steps has 40,320 points per line. A step
// line emits vertices only where its value changes, and any line keeps at
// most four vertices per pixel column (first, lowest, highest, last),
// which draws the same pixels, so the file's size depends on the chart's
// width and the number of changes, not on the number of points.
package chart
