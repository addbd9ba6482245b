package miosa

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"

	"github.com/r3labs/sse/v2"
)

// This file holds the SDK's one reader of server-sent events: framing,
// size bounds, the byte-order mark, and how a stream that is not one is
// refused, event ids. Each stream's own loop lives with its service: the
// readiness wait in readiness.go, the streamed exec in execstream.go. A
// stream is opened through the request pipeline (its consume mode), like
// any call: same headers, redirect guard and attempt deadline for the
// headers, and no goroutine of its own. Of the r3labs library only the
// frame splitter is used; its client (a reconnect loop that ignores the
// context, a goroutine per subscription, bodies left open on rejection) is
// not.

// maxStreamEvent bounds one event block of a stream. A larger event ends
// the stream: the readiness wait falls back to polling, and a streamed exec
// ends with its outcome unknown.
const maxStreamEvent = 1 << 20

// maxEventID bounds an event id the SDK keeps to send back as Last-Event-ID.
const maxEventID = 1 << 10

// streamRefusedError is a stream answer (readiness, or a streamed exec's
// 2xx) that is not an event stream: a non-200 status (404 from servers that
// predate the endpoint) or a 200 of another media type.
type streamRefusedError struct {
	StatusCode  int
	ContentType string
}

func (e *streamRefusedError) Error() string {
	if e.StatusCode == http.StatusOK {
		return fmt.Sprintf("stream answered 200 with content type %q, not text/event-stream", e.ContentType)
	}
	return fmt.Sprintf("stream answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
}

// eventReader reads one server-sent-event stream, one complete event at a
// time, on the caller's goroutine: nothing reads ahead in the background,
// and the caller's loop decides when to stop. The readiness wait, the
// streamed exec and a followed process all read through it.
type eventReader struct {
	events *sse.EventStreamReader
	// lastID is the stream's last event id: the value of the last "id"
	// field received, kept across events as the format says, so a broken
	// stream can be resumed after it with Last-Event-ID.
	lastID string
}

// streamEvent is one complete event: its name and data. Both point into the
// reader's buffer and are valid only until the next call to next.
type streamEvent struct {
	name, data []byte
}

// newEventReader admits only a 200 text/event-stream answer. Anything else is
// a *streamRefusedError, its body drained briefly (as any refused answer's
// is) so the connection can be reused without waiting on a body that does
// not end.
func newEventReader(resp *http.Response) (*eventReader, error) {
	contentType := resp.Header.Get("Content-Type")
	if mediaType, _, _ := mime.ParseMediaType(contentType); resp.StatusCode != http.StatusOK || mediaType != "text/event-stream" {
		drainBriefly(resp.Body)
		return nil, &streamRefusedError{StatusCode: resp.StatusCode, ContentType: contentType}
	}
	return &eventReader{events: sse.NewEventStreamReader(shortReads{&completeEvents{ReadCloser: resp.Body}}, maxStreamEvent)}, nil
}

// next returns the stream's next complete event, comments and unnamed
// events included (callers match names exactly and skip the rest). It fails
// with io.EOF when the stream ended cleanly, with ctx's cause when ctx ended
// (the parser reports a read cut by cancellation as a clean end, so only the
// context can tell them apart), with errEventTooLarge for an event over
// maxStreamEvent bytes, and otherwise with the read's error.
func (r *eventReader) next(ctx context.Context) (streamEvent, error) {
	block, err := r.events.ReadEvent()
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return streamEvent{}, context.Cause(ctx)
		case errors.Is(err, bufio.ErrTooLong):
			return streamEvent{}, errEventTooLarge
		}
		return streamEvent{}, err
	}
	var ev streamEvent
	ev.name, ev.data = eventFields(block, &r.lastID)
	return ev, nil
}

// errEventTooLarge is a stream event over maxStreamEvent bytes.
var errEventTooLarge = fmt.Errorf("stream event larger than %d bytes", maxStreamEvent)

// completeEvents passes an event stream through only up to the end of its
// last complete event (one terminated by a blank line) and drops an
// unterminated tail when the stream ends. The parser would otherwise dispatch
// a half-received "event: ready" from a connection cut mid-event, which the
// event-stream format says must be discarded. A tail longer than
// maxStreamEvent fails the read instead of growing without bound. A UTF-8
// byte-order mark that starts the stream is removed, as the format requires:
// the parser would read it as part of the first field's name and lose the
// first event.
type completeEvents struct {
	io.ReadCloser
	// buf[off:released] is released and not yet read; buf[released:] is held
	// back until an event terminator arrives.
	buf           []byte
	off, released int
	err           error
	pastBOM       bool // the stream's start has been checked for a byte-order mark
	filled        bool // the last read filled the buffer
}

// A stream is read minEventRead bytes at a time at least; a busy one, whose
// reads fill the buffer, up to busyEventRead.
const (
	minEventRead  = 512
	busyEventRead = 4 << 10
)

var utf8BOM = []byte("\xEF\xBB\xBF")

func (r *completeEvents) Read(p []byte) (int, error) {
	for r.off == r.released {
		if r.err != nil {
			return 0, r.err
		}
		held := copy(r.buf, r.buf[r.released:])
		r.buf, r.off, r.released = r.buf[:held], 0, 0
		if held > maxStreamEvent {
			r.err = errEventTooLarge
			continue
		}
		// The buffer starts small, as a quiet stream (a readiness wait's
		// heartbeats) needs no more, and doubles while reads fill it.
		if cap(r.buf)-held < minEventRead || r.filled && cap(r.buf) < busyEventRead {
			r.buf = slices.Grow(r.buf, max(cap(r.buf), minEventRead, held))
		}
		n, err := r.ReadCloser.Read(r.buf[held:cap(r.buf)])
		r.buf = r.buf[:held+n]
		r.err = err
		r.filled = held+n == cap(r.buf)
		if !r.pastBOM {
			if len(r.buf) < len(utf8BOM) && bytes.HasPrefix(utf8BOM, r.buf) && err == nil {
				continue // the mark may still be arriving
			}
			r.pastBOM = true
			if bytes.HasPrefix(r.buf, utf8BOM) {
				r.buf = r.buf[:copy(r.buf, r.buf[len(utf8BOM):])]
			}
			held = 0
		}
		r.released = lastEventEnd(r.buf, held)
	}
	n := copy(p, r.buf[r.off:r.released])
	r.off += n
	return n, nil
}

// lastEventEnd returns the end of the last event terminator in b that ends
// after from, or 0 when there is none. The terminators are those the parser
// splits on: two line ends in a row, in any mix of CR, LF and CRLF.
func lastEventEnd(b []byte, from int) int {
	for end := len(b); end > from && end >= 2; end-- {
		switch b[end-1] {
		case '\r':
			if b[end-2] == '\r' {
				return end
			}
		case '\n':
			if b[end-2] == '\n' || (end >= 3 && b[end-3] == '\n' && b[end-2] == '\r') {
				return end
			}
		}
	}
	return 0
}

// shortReads hands the event parser at most maxParserRead bytes per read.
// The parser looks for the end of an event by searching everything it has
// buffered and not yet returned, once per event and once per kind of line
// end; fed a network-sized read of many small events it searches the same
// bytes over and over (quadratic in the read's size), which made it the
// slowest step of a busy stream. Short reads bound that rescan; they cost a
// copy from the buffer completeEvents already holds.
type shortReads struct{ r io.Reader }

// maxParserRead is the most shortReads passes on at once: a few output
// lines' worth.
const maxParserRead = 512

func (s shortReads) Read(p []byte) (int, error) {
	return s.r.Read(p[:min(len(p), maxParserRead)])
}

// eventFields returns the event name and data of one event block, read as
// the event-stream format says: lines end at CR, LF or CRLF; a line starting
// with a colon is a comment; one space after a field's colon is dropped; a
// field without a colon has an empty value; several data lines are joined
// with LF; an "id" field sets *lastID unless its value holds a NUL (an id
// over maxEventID bytes is refused the same way, since it would be sent back
// in a header). Other fields (retry) mean nothing here: the SDK decides
// itself when to reconnect. Both results point into block unless data lines
// had to be joined.
func eventFields(block []byte, lastID *string) (name, data []byte) {
	dataLines := 0
	for len(block) > 0 {
		end := bytes.IndexAny(block, "\r\n")
		line := block
		if end < 0 {
			block = nil
		} else {
			line = block[:end]
			if block[end] == '\r' && end+1 < len(block) && block[end+1] == '\n' {
				end++
			}
			block = block[end+1:]
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			name = value
		case "id":
			if len(value) <= maxEventID && bytes.IndexByte(value, 0) < 0 {
				*lastID = string(value)
			}
		case "data":
			if dataLines++; dataLines == 1 {
				data = value
			} else {
				data = append(append(slices.Clip(data), '\n'), value...)
			}
		}
	}
	return name, data
}

// streamEndpointMissing reports whether err is a stream's own endpoint
// answering 404 or 405, as servers that predate the endpoint do. A refusal
// that came after a redirect is not: the request reached a server that may
// have acted on it.
func streamEndpointMissing(err error) bool {
	var apiErr *APIError
	return errors.As(err, &apiErr) && !errors.Is(err, ErrOutcomeUnknown) &&
		(apiErr.StatusCode == http.StatusNotFound || apiErr.StatusCode == http.StatusMethodNotAllowed)
}
