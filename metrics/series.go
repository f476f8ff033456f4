package metrics

import "time"

// Point is one sample of a range query's series.
type Point struct {
	T time.Time
	V float64
}

// Series is one series of a range query: its labels and its samples in time
// order. A range query from Prometheus and one run offline over a file of
// series (package memprom) both answer with these.
type Series struct {
	Labels map[string]string
	Points []Point
}
