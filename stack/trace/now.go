package trace

import "time"

// Now returns the time since the start of the run on the recorder's clock
// (the T an event emitted now would get). It costs one clock read.
func (r *Recorder) Now() time.Duration { return r.clock.Now().Sub(r.start) }
