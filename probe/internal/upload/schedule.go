package upload

import "time"

// schedule is the daily start time and the optional window end.
type schedule struct {
	start     clockTime
	end       clockTime
	hasEnd    bool
	loc       *time.Location
	windowLen time.Duration // start to end, when hasEnd
}

func newSchedule(cfg Config) (schedule, error) {
	s := schedule{}
	var err error
	if s.start, err = parseClock(cfg.Time); err != nil {
		return s, err
	}
	if s.loc, err = cfg.location(); err != nil {
		return s, err
	}
	if cfg.WindowEnd != "" {
		if s.end, err = parseClock(cfg.WindowEnd); err != nil {
			return s, err
		}
		s.hasEnd = true
		d := time.Duration(s.end.hour*60+s.end.min-s.start.hour*60-s.start.min) * time.Minute
		if d <= 0 {
			d += 24 * time.Hour
		}
		s.windowLen = d
	}
	return s, nil
}

func (s schedule) on(day time.Time, c clockTime) time.Time {
	y, m, d := day.In(s.loc).Date()
	return time.Date(y, m, d, c.hour, c.min, 0, 0, s.loc)
}

// prev returns the latest start at or before now.
func (s schedule) prev(now time.Time) time.Time {
	t := s.on(now, s.start)
	if t.After(now) {
		t = s.on(now.AddDate(0, 0, -1), s.start)
	}
	return t
}

// next returns the first start after now.
func (s schedule) next(now time.Time) time.Time {
	t := s.on(now, s.start)
	if !t.After(now) {
		t = s.on(now.AddDate(0, 0, 1), s.start)
	}
	return t
}

// deadline returns when a run for the start slot, beginning at now, must
// stop starting files: the slot's window end, or for a run that starts
// after its window (a missed schedule caught up) the same window length
// counted from now. Zero means no window end.
func (s schedule) deadline(slot, now time.Time) time.Time {
	if !s.hasEnd {
		return time.Time{}
	}
	end := s.on(slot, s.end)
	if !end.After(slot) {
		end = s.on(slot.AddDate(0, 0, 1), s.end)
	}
	if now.Before(end) {
		return end
	}
	return now.Add(s.windowLen)
}
