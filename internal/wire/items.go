package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Items calls yield with each value of the JSON array list, in order, and
// stops at the first error yield returns, returning it. It checks the
// array's structure (values separated by commas, the closing bracket,
// nothing after it) without validating or copying the values: each one's
// decoding validates it. It allocates nothing, so a caller can count the
// items before it makes room for them.
func Items(list []byte, yield func(item json.RawMessage) error) error {
	list = bytes.TrimSpace(list)
	if len(list) < 2 || list[0] != '[' {
		return fmt.Errorf("%w: want an array", ErrNotJSON)
	}
	i := skipSpace(list, 1)
	if list[i] == ']' {
		return closes(list, i)
	}
	for {
		end := valueEnd(list, i)
		if end == i || end > len(list) {
			return errMalformedList
		}
		if err := yield(list[i:end]); err != nil {
			return err
		}
		i = skipSpace(list, end)
		if i >= len(list) {
			return errMalformedList
		}
		switch list[i] {
		case ',':
			i = skipSpace(list, i+1)
		case ']':
			return closes(list, i)
		default:
			return errMalformedList
		}
	}
}

var errMalformedList = fmt.Errorf("%w: malformed list", ErrNotJSON)

// closes reports errMalformedList unless the bracket at list[i] ends list.
func closes(list []byte, i int) error {
	if skipSpace(list, i+1) != len(list) {
		return errMalformedList
	}
	return nil
}

// StringEnd returns the index just past the JSON string that starts with
// the quote at b[i], or len(b)+1 when the string is not closed.
func StringEnd(b []byte, i int) int { return stringEnd(b, i) }
