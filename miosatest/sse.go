package miosatest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// StreamFault changes how the readiness stream behaves: StreamNormal,
// StreamStall or StreamEndWithoutVerdict.
type StreamFault int

const (
	// StreamNormal is the stream as the server sends it.
	StreamNormal StreamFault = iota
	// StreamStall sends headers and ": keepalive" heartbeats but never a
	// verdict, until the client goes away or the server closes.
	StreamStall
	// StreamEndWithoutVerdict sends headers and one heartbeat, then ends the
	// response cleanly without "ready" or "timeout".
	StreamEndWithoutVerdict
)

type streamFaultKey struct{}

// withStreamFault marks r's context with the stream fault to apply.
func withStreamFault(ctx context.Context, f StreamFault) context.Context {
	return context.WithValue(ctx, streamFaultKey{}, f)
}

func streamFaultOf(ctx context.Context) StreamFault {
	f, _ := ctx.Value(streamFaultKey{}).(StreamFault)
	return f
}

// readinessStream serves GET /sandboxes/{id}/readiness/stream as
// server-sent events: "event: ready" the moment the machine runs (at once if
// it already does), "event: timeout" when the engine's own wait expires, and
// ": keepalive" comments in between. Every frame is flushed as it is
// written. The handler returns when the client goes away or the engine
// closes.
func (e *engine) readinessStream(w http.ResponseWriter, r *http.Request) {
	if e.cfg.NoReadinessStream {
		writeError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
		return
	}
	id := r.PathValue("id")
	e.mu.Lock()
	m := e.machines[id]
	var ready chan struct{}
	if m != nil {
		ready = m.ready
	}
	e.mu.Unlock()
	if m == nil {
		notFound(w, "sandbox", id)
		return
	}

	send := startEventStream(w)
	if !send(": keepalive\n\n") {
		return
	}

	fault := streamFaultOf(r.Context())
	if e.cfg.SilentReadinessStream && fault == StreamNormal {
		fault = StreamStall
	}
	if fault == StreamEndWithoutVerdict {
		return
	}
	var timeout <-chan time.Time
	if fault == StreamStall {
		ready = nil // never delivers
	} else {
		t := time.NewTimer(e.cfg.StreamTimeout)
		defer t.Stop()
		timeout = t.C
	}
	heartbeat := time.NewTicker(e.cfg.HeartbeatInterval)
	defer heartbeat.Stop()
	for {
		select {
		case <-ready:
			e.mu.Lock()
			readyAt := m.readyAt
			e.mu.Unlock()
			if readyAt.IsZero() {
				// It ran and stopped again before this frame: the moment it
				// was ready is gone, but it was ready.
				readyAt = e.now()
			}
			send(eventFrame("ready", "", readyEvent(readyAt)))
			return
		case <-timeout:
			send(eventFrame("timeout", "", map[string]string{"reason": "not_ready_after_" + e.cfg.StreamTimeout.String()}))
			return
		case <-heartbeat.C:
			if !send(": keepalive\n\n") {
				return
			}
		case <-r.Context().Done():
			return
		case <-e.closing:
			return
		}
	}
}

// eventFrame is one server-sent event: its name, its id when id is not
// empty, and data encoded as JSON.
func eventFrame(name, id string, data any) string {
	body, _ := json.Marshal(data)
	frame := "event: " + name + "\n"
	if id != "" {
		frame += "id: " + id + "\n"
	}
	return frame + "data: " + string(body) + "\n\n"
}

// outputEventName is the event an output line goes out as.
func outputEventName(stderr bool) string {
	if stderr {
		return "stderr"
	}
	return "stdout"
}

// startEventStream answers 200 with a server-sent-event stream and returns
// the function that sends one frame: written and flushed at once, false
// once the client is gone.
func startEventStream(w http.ResponseWriter) func(frame string) bool {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	return func(frame string) bool {
		if _, err := io.WriteString(w, frame); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
}
