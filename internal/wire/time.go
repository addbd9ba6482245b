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
		// Beyond ±292 years from 1970 the nanosecond count overflows into
		// a wrong but plausible time; refuse instead.
		if err != nil || math.Abs(secs) > math.MaxInt64/float64(time.Second) {
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
