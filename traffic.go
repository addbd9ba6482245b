package miosa

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// traffic is what every call through one Client shares beyond its
// configuration, so that a fleet of goroutines using the Client behaves as
// one well-mannered client: the pacing of the requests it starts
// (pacing.go), the budget its retries of failures draw on
// (retrybudget.go), the warm-up of its connections (connwarmup.go), the
// health checks of its open readiness streams (healthchecks.go), and
// whether its server ends a readiness stream after the verdict.
type traffic struct {
	pacer  pacer
	budget retryBudget
	conns  connWarmup
	checks healthChecks
	// streamsStayOpen says the server kept a readiness stream open after
	// its verdict: later waits close theirs at once (readiness.go).
	streamsStayOpen atomic.Bool
}

func newTraffic(conf *settings) *traffic {
	t := &traffic{}
	t.pacer.init(conf.rateLimit)
	t.conns.init(conf.baseURL)
	return t
}

// await returns when a request of a call may start, and that time: at its
// turn in the pacing, and once a cold origin has its first connection. now
// is the time it is asked at. It returns the context to send the request
// under, which carries the connection hook when this call leads the
// warm-up (the caller then releases the lead once the attempt is over), and
// an error when ctx would end, or ended, first.
func (t *traffic) await(ctx context.Context, conf *settings, now time.Time) (time.Time, context.Context, *connLead, error) {
	now, err := t.pacer.wait(ctx, now)
	if err != nil {
		return now, ctx, nil, err
	}
	now, lead, err := t.conns.enter(ctx, conf.baseURL, now)
	if err != nil {
		return now, ctx, nil, fmt.Errorf("%w while waiting for the first connection to the API", err)
	}
	if lead != nil {
		ctx = lead.trace(ctx)
	}
	return now, ctx, lead, nil
}

// windowCount counts events in time slots of one width over a sliding
// span of slots, forgetting what is older. Its owner guards it.
type windowCount struct {
	width  time.Duration
	counts []int32
	last   int64 // the slot of the latest event or sum; slots after it are empty
}

func newWindowCount(width time.Duration, slots int) windowCount {
	return windowCount{width: width, counts: make([]int32, slots)}
}

func (w *windowCount) slot(t time.Time) int64 { return t.UnixNano() / int64(w.width) }

// advance moves the window on to slot, emptying the slots it passes.
func (w *windowCount) advance(slot int64) {
	if slot <= w.last {
		return
	}
	for s := max(w.last+1, slot-int64(len(w.counts))+1); s <= slot; s++ {
		w.counts[s%int64(len(w.counts))] = 0
	}
	w.last = slot
}

// add counts one event at now.
func (w *windowCount) add(now time.Time) {
	slot := w.slot(now)
	w.advance(slot)
	if slot > w.last-int64(len(w.counts)) {
		w.counts[slot%int64(len(w.counts))]++
	}
}

// sum returns how many events were counted in the slots from from's to
// to's, as far as the window still holds them.
func (w *windowCount) sum(from, to time.Time) int {
	hi := w.slot(to)
	w.advance(hi)
	lo := max(w.slot(from), w.last-int64(len(w.counts))+1)
	n := 0
	for s := lo; s <= min(hi, w.last); s++ {
		n += int(w.counts[s%int64(len(w.counts))])
	}
	return n
}
