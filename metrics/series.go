package metrics

import "time"

// Point is one value of a series at one instant, as a range query returns
// it. It is the shape shared by a real Prometheus' query_range answer and
// the in-memory engine of package memprom, so that a backtest reads both
// the same way.
type Point struct {
	T time.Time
	V float64
}

// Series is one series of a range query's answer: its labels and its
// points in time order.
type Series struct {
	Labels map[string]string
	Points []Point
}
