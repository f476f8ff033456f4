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
// Ticks fall on round wall-clock times of each day and day ticks on
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
	// Sub-day ticks are wall-clock times of each day, made by time.Date,
	// which normalises a time skipped by daylight-saving time forward:
	// a tick equal to or before the previous one is dropped.
	sec := int(step / time.Second)
	for d := midnight; !d.After(to); d = d.AddDate(0, 0, 1) {
		k := 0
		if d.Equal(midnight) {
			k = (from.Hour()*3600 + from.Minute()*60 + from.Second()) / sec
		}
		for ; k*sec < 24*3600; k++ {
			t := time.Date(d.Year(), d.Month(), d.Day(), 0, 0, k*sec, 0, loc)
			if t.After(to) {
				break
			}
			if n := len(ticks); n > 0 && t.Sub(w.start).Seconds() <= ticks[n-1].Value {
				continue
			}
			add(t)
		}
	}
	return ticks
}

// at is the wall-clock time s seconds after start.
func (w wallTicks) at(s float64) time.Time {
	return w.start.Add(time.Duration(s * float64(time.Second)))
}
