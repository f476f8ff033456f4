package chart

import (
	"time"

	"gonum.org/v1/plot"
)

// scaleTicks places ticks at every step of a nice scale, which covers the
// axis exactly, so the axis ends on a labelled tick.
type scaleTicks struct{ s scale }

// Ticks implements plot.Ticker.
func (t scaleTicks) Ticks(_, _ float64) []plot.Tick {
	vs := t.s.ticks()
	ticks := make([]plot.Tick, 0, len(vs))
	for _, v := range vs {
		ticks = append(ticks, plot.Tick{Value: v, Label: t.s.label(v)})
	}
	return ticks
}

// unlabelled keeps another ticker's ticks without their labels, for the
// time axis of every panel but the lowest.
type unlabelled struct{ plot.Ticker }

// Ticks implements plot.Ticker. A tick with no label is a minor tick to
// gonum, which draws it shorter; the grid still uses it.
func (u unlabelled) Ticks(lo, hi float64) []plot.Tick {
	ts := u.Ticker.Ticks(lo, hi)
	for i := range ts {
		ts[i].Label = ""
	}
	return ts
}

// wallTicks places ticks on round wall-clock times (whole minutes, hours,
// days) in start's location, for an axis in seconds since start. gonum's
// plot.TimeTicks formats times well but places ticks at round numbers of
// Unix seconds, which are not round times of day, hence this ticker.
type wallTicks struct {
	start time.Time
	max   int // most ticks that fit
}

const day = 24 * time.Hour

// Ticks implements plot.Ticker for lo and hi in seconds since start.
// Sub-day ticks are counted from each local midnight and day ticks fall on
// midnights (weeks on Mondays), so a change of daylight-saving time shifts
// no tick off the hour.
func (w wallTicks) Ticks(lo, hi float64) []plot.Tick {
	from, to := w.at(lo), w.at(hi)
	span := to.Sub(from)
	// The tick intervals tried, smallest first.
	steps := [...]time.Duration{
		time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
		time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
		time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour,
		day, 2 * day, 7 * day, 14 * day, 28 * day,
	}
	step := steps[len(steps)-1]
	for _, s := range steps {
		if span/s <= time.Duration(w.max) {
			step = s
			break
		}
	}
	if span/step > time.Duration(w.max) { // spans of years: whole multiples of 28 days
		step *= span/(step*time.Duration(w.max)) + 1
	}

	layout := "15:04"
	switch {
	case step < time.Minute:
		layout = "15:04:05"
	case step >= day:
		layout = "Mon 2 Jan"
	case span >= day:
		layout = "Mon 15:04"
	}

	loc := w.start.Location()
	midnight := time.Date(from.Year(), from.Month(), from.Day(), 0, 0, 0, 0, loc)
	var ticks []plot.Tick
	add := func(t time.Time) {
		if !t.Before(from) && !t.After(to) {
			ticks = append(ticks, plot.Tick{Value: t.Sub(w.start).Seconds(), Label: t.Format(layout)})
		}
	}
	if step >= day {
		days := int(step / day)
		if days%7 == 0 { // weeks start on Monday
			midnight = midnight.AddDate(0, 0, -(int(midnight.Weekday())+6)%7)
		}
		for d := midnight; !d.After(to); d = d.AddDate(0, 0, days) {
			add(d)
		}
		return ticks
	}
	for d := midnight; !d.After(to); d = d.AddDate(0, 0, 1) {
		next := d.AddDate(0, 0, 1)
		// Start at the first step of this day at or after from.
		first := d
		if from.After(d) {
			first = d.Add((from.Sub(d) + step - 1) / step * step)
		}
		for t := first; t.Before(next) && !t.After(to); t = t.Add(step) {
			add(t)
		}
	}
	return ticks
}

// at is the wall-clock time s seconds after start.
func (w wallTicks) at(s float64) time.Time {
	return w.start.Add(time.Duration(s * float64(time.Second)))
}
