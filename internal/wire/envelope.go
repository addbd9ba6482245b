// Package wire decodes the response shapes the MIOSA API is known to send.
//
// The server is inconsistent about envelopes: one object may arrive bare or
// wrapped in "data", "result" or a named key, and a list may arrive bare, under
// "data" or under a named key, with or without "meta". Everything here decodes
// from the one response body; nothing ever asks the server a second time.
package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// objectWrappers are the keys that may wrap a single object, in the order they
// are tried. Callers add the resource's own name (e.g. "computer").
var objectWrappers = []string{"data", "result"}

// listWrappers are the keys that may hold a list, in the order they are tried.
var listWrappers = []string{"data", "items", "results"}

// Meta is the pagination block that may sit beside a list.
type Meta struct {
	Total   int `json:"total"`
	Page    int `json:"page"`
	PerPage int `json:"per_page"`
}

// HasMore reports whether pages after Meta.Page exist. A page size or total
// the server did not send means there is nothing to go on, so no more pages.
func (m Meta) HasMore() bool {
	if m.PerPage <= 0 || m.Page <= 0 {
		return false
	}
	return m.Page*m.PerPage < m.Total
}

// ErrNotJSON is returned for a body that is not a JSON value of the expected kind.
var ErrNotJSON = errors.New("response is not the expected JSON")

// maxKeys bounds how many keys Object and List look for; callers name at
// most a few of their own.
const maxKeys = 12

// Object returns the JSON object inside body, unwrapping the first of the
// caller's names, "data" or "result" whose value is itself an object. A bare
// object is returned as it is. An empty body yields nil and no error.
//
// Object checks the structure of body's top level (keys, separators, the
// closing brace, nothing after it) but does not validate the values it
// skips: the caller decodes the object it gets back, which validates it,
// and validating it here too would read every answer twice.
func Object(body []byte, names ...string) (json.RawMessage, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, nil
	}
	if body[0] != '{' {
		return nil, fmt.Errorf("%w: want an object, got %s", ErrNotJSON, describe(body))
	}
	var found [maxKeys]json.RawMessage
	values := found[:min(len(names), maxKeys-len(objectWrappers))+len(objectWrappers)]
	if !members(body, values, names, objectWrappers) {
		return nil, fmt.Errorf("%w: malformed object", ErrNotJSON)
	}
	for _, inner := range values {
		if len(inner) > 0 && inner[0] == '{' {
			return inner, nil
		}
	}
	return body, nil
}

// SoleMember returns what stands between `{"key":` and the closing brace
// of body, when key is one of names, "data" or "result" and what follows it
// starts like an object. It does not look at anything in between: the
// result is the object under key only if it is one JSON value (if body has
// that single member), which the caller's decoding finds out as it decodes.
// That lets the common answer be read in one pass; when the decoding fails,
// Object reads body carefully.
func SoleMember(body []byte, names ...string) (json.RawMessage, bool) {
	body = bytes.TrimSpace(body)
	if len(body) < 2 || body[0] != '{' || body[len(body)-1] != '}' {
		return nil, false
	}
	i := skipSpace(body, 1)
	if i >= len(body) || body[i] != '"' {
		return nil, false
	}
	keyEnd := stringEnd(body, i)
	if keyEnd > len(body) || keyIndex(body[i:keyEnd], [][]string{names, objectWrappers}) < 0 {
		return nil, false
	}
	i = skipSpace(body, keyEnd)
	if i >= len(body) || body[i] != ':' {
		return nil, false
	}
	start, end := skipSpace(body, i+1), len(body)-1
	for end > start && isSpace(body[end-1]) {
		end--
	}
	if end-start < 2 || body[start] != '{' || body[end-1] != '}' {
		return nil, false
	}
	return body[start:end], true
}

// IsObject notes, as it is decoded, whether a JSON value is an object,
// without keeping the value: the decoding around it checks the value.
type IsObject bool

// UnmarshalJSON implements json.Unmarshaler.
func (o *IsObject) UnmarshalJSON(data []byte) error {
	*o = len(data) > 0 && data[0] == '{'
	return nil
}

// List returns the JSON array inside body and the meta block beside it, if
// any. It accepts a bare array, or an object holding the array under one of
// names, "data", "items" or "results"; a "data" object holding any of those
// is looked into once more. An empty body or a null list is an empty list.
// Like Object, it checks the structure of the objects it walks and leaves
// validating the list to its caller's decoding.
func List(body []byte, names ...string) (json.RawMessage, *Meta, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || bytes.Equal(body, []byte("null")) {
		return nil, nil, nil
	}
	switch body[0] {
	case '[':
		if valueEnd(body, 0) != len(body) {
			return nil, nil, fmt.Errorf("%w: malformed list", ErrNotJSON)
		}
		return body, nil, nil
	case '{':
	default:
		return nil, nil, fmt.Errorf("%w: want a list, got %s", ErrNotJSON, describe(body))
	}
	names = names[:min(len(names), maxKeys-len(listWrappers)-1)]
	var found [maxKeys]json.RawMessage
	values := found[:len(names)+len(listWrappers)+1] // the last is "meta"
	for depth := 0; depth < 2; depth++ {
		clear(values)
		if !members(body, values, names, listWrappers, metaKey) {
			return nil, nil, fmt.Errorf("%w: malformed list", ErrNotJSON)
		}
		meta, err := decodeMeta(values[len(values)-1])
		if err != nil {
			return nil, nil, err
		}
		for _, inner := range values[:len(values)-1] {
			if len(inner) > 0 && inner[0] == '[' {
				return inner, meta, nil
			}
			if bytes.Equal(inner, []byte("null")) {
				return nil, meta, nil
			}
		}
		data := values[len(names)] // listWrappers[0] is "data"
		if len(data) == 0 || data[0] != '{' {
			break
		}
		body = data
	}
	return nil, nil, fmt.Errorf("%w: no list under %q", ErrNotJSON, slices.Concat(names, listWrappers))
}

var metaKey = []string{"meta"}

// members walks the top level of the JSON object obj once, without decoding
// or copying anything, and sets values[k] to the value of the k-th key of
// keyLists taken in order (the last one if a key repeats, as encoding/json
// does). It reports false when obj is not structured as one object: a key
// that is not a string, a missing colon or comma, an unclosed value, or
// anything after the closing brace.
func members(obj []byte, values []json.RawMessage, keyLists ...[]string) bool {
	i := skipSpace(obj, 1)
	if i < len(obj) && obj[i] == '}' {
		return skipSpace(obj, i+1) == len(obj)
	}
	for i < len(obj) && obj[i] == '"' {
		keyEnd := stringEnd(obj, i)
		if keyEnd > len(obj) || obj[keyEnd-1] != '"' || keyEnd-i < 2 {
			return false
		}
		key := obj[i:keyEnd]
		i = skipSpace(obj, keyEnd)
		if i >= len(obj) || obj[i] != ':' {
			return false
		}
		i = skipSpace(obj, i+1)
		end := valueEnd(obj, i)
		if end == i || end > len(obj) {
			return false
		}
		if k := keyIndex(key, keyLists); k >= 0 && k < len(values) {
			values[k] = obj[i:end]
		}
		i = skipSpace(obj, end)
		if i >= len(obj) {
			return false
		}
		switch obj[i] {
		case ',':
			i = skipSpace(obj, i+1)
		case '}':
			return skipSpace(obj, i+1) == len(obj)
		default:
			return false
		}
	}
	return false
}

// keyIndex returns the index of the quoted JSON string key in keyLists
// taken in order, or -1.
func keyIndex(key []byte, keyLists [][]string) int {
	unquoted := key[1 : len(key)-1]
	if bytes.IndexByte(unquoted, '\\') >= 0 {
		var s string
		if json.Unmarshal(key, &s) != nil {
			return -1
		}
		unquoted = []byte(s)
	}
	k := 0
	for _, keys := range keyLists {
		for _, name := range keys {
			if string(unquoted) == name {
				return k
			}
			k++
		}
	}
	return -1
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// isSpace reports whether c is whitespace to JSON (a narrower set than
// Unicode's).
func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// stringEnd returns the index just past the JSON string starting at b[i],
// or len(b)+1 when the string is not closed.
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(b) + 1
}

// valueEnd returns the index just past the JSON value starting at b[i], or
// len(b)+1 when a string, object or array is not closed. Scalars are not
// checked: whoever decodes the value does that.
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = stringEnd(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return len(b) + 1
	}
	j := i // a number, true, false or null
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && !isSpace(b[j]) {
		j++
	}
	return j
}

// decodeMeta reads the pagination block. The server's meta is advisory: a
// field of an unexpected type (a string, a float, null) is read when it holds
// a whole number and otherwise left zero, which ends pagination after the
// current page rather than failing a list that arrived intact.
func decodeMeta(raw json.RawMessage) (*Meta, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, nil
	}
	var fields struct {
		Total   json.RawMessage `json:"total"`
		Page    json.RawMessage `json:"page"`
		PerPage json.RawMessage `json:"per_page"`
	}
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, fmt.Errorf("%w: meta: %v", ErrNotJSON, err)
	}
	return &Meta{Total: wholeNumber(fields.Total), Page: wholeNumber(fields.Page), PerPage: wholeNumber(fields.PerPage)}, nil
}

// wholeNumber reads a JSON number, or a string holding one, that is a
// non-negative whole number small enough for pagination; anything else is 0.
func wholeNumber(raw json.RawMessage) int {
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0
		}
		if f, err = strconv.ParseFloat(strings.TrimSpace(s), 64); err != nil {
			return 0
		}
	}
	if f < 0 || f > math.MaxInt32 || f != math.Trunc(f) {
		return 0
	}
	return int(f)
}

// describe names the kind of JSON value body starts with, for error messages
// that must not echo what the server sent.
func describe(body []byte) string {
	switch body[0] {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	}
	if body[0] == '-' || (body[0] >= '0' && body[0] <= '9') {
		return "a number"
	}
	return "non-JSON text"
}
