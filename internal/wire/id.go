package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// ID decodes an identifier that servers send either as a JSON string or as
// a JSON integer (a process's pid, a window's id): both become the same
// text, the integer written in decimal exactly as sent. null is empty. A
// fraction, an exponent, or any other JSON value is an error, so a
// malformed id is never silently read as another one.
type ID string

// UnmarshalJSON implements json.Unmarshaler.
func (id *ID) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	switch {
	case bytes.Equal(data, []byte("null")):
		*id = ""
		return nil
	case len(data) > 0 && data[0] == '"':
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		*id = ID(s)
		return nil
	case isInteger(data):
		*id = ID(data)
		return nil
	}
	return fmt.Errorf("id %.40s: want a string or an integer", data)
}

// isInteger reports whether b is a JSON integer: an optional minus sign and
// decimal digits, without a fraction or an exponent, at most 64 digits.
func isInteger(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 64 || (b[0] == '0' && len(b) > 1) {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
