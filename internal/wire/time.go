package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Time decodes the timestamps the server sends: RFC 3339 strings (with or
// without fractional seconds), null, "" and Unix seconds. Anything else is an
// error, so a malformed timestamp is never silently read as zero.
type Time struct{ time.Time }

// UnmarshalJSON implements json.Unmarshaler.
func (t *Time) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || bytes.Equal(data, []byte("null")) || bytes.Equal(data, []byte(`""`)) {
		t.Time = time.Time{}
		return nil
	}
	if data[0] != '"' {
		secs, err := strconv.ParseFloat(string(data), 64)
		if err != nil || math.Abs(secs) > maxSeconds {
			return fmt.Errorf("timestamp %.40s: not a time", data)
		}
		t.Time = time.Unix(0, int64(secs*float64(time.Second))).UTC()
		return nil
	}
	// The common case, an RFC 3339 string without escapes, parses from the
	// bytes without a string copy.
	if t.Time.UnmarshalJSON(data) == nil {
		return nil
	}
	var s string
	if len(data) >= 2 && data[len(data)-1] == '"' && !bytes.ContainsRune(data, '\\') {
		s = string(data[1 : len(data)-1]) // no escapes: the common case, without a second decode
	} else if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	parsed, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("timestamp %.40q: %w", s, err)
	}
	t.Time = parsed
	return nil
}

// maxSeconds is the most seconds a count of nanoseconds in an int64 (a
// time.Duration, or a Unix time) can hold: beyond it, about 292 years, the
// count overflows into a wrong but plausible value, so it is refused.
const maxSeconds = float64(math.MaxInt64 / int64(time.Second))

// Seconds decodes a duration sent as a number of seconds (null means
// zero). A value that is negative, not a number, or too long for a
// time.Duration is an error rather than a wrong duration.
type Seconds time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Seconds) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		*d = 0
		return nil
	}
	var secs float64
	if err := json.Unmarshal(data, &secs); err != nil || secs < 0 || secs > maxSeconds {
		return fmt.Errorf("duration %.40s: want a number of seconds from 0 to %.0f", data, maxSeconds)
	}
	*d = Seconds(secs * float64(time.Second))
	return nil
}
