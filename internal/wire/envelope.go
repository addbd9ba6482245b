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

// Object returns the JSON object inside body, unwrapping the first of "data",
// "result" or names whose value is itself an object. A bare object is returned
// as it is. An empty body yields nil and no error.
func Object(body []byte, names ...string) (json.RawMessage, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, nil
	}
	if body[0] != '{' {
		return nil, fmt.Errorf("%w: want an object, got %s", ErrNotJSON, describe(body))
	}
	if !json.Valid(body) {
		return nil, fmt.Errorf("%w: malformed object", ErrNotJSON)
	}
	keys := slices.Concat(names, objectWrappers)
	for _, inner := range members(body, keys) {
		if len(inner) > 0 && inner[0] == '{' {
			return inner, nil
		}
	}
	return body, nil
}

// List returns the JSON array inside body and the meta block beside it, if
// any. It accepts a bare array, or an object holding the array under one of
// names, "data", "items" or "results"; a "data" object holding any of those
// is looked into once more. An empty body or a null list is an empty list.
func List(body []byte, names ...string) (json.RawMessage, *Meta, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || bytes.Equal(body, []byte("null")) {
		return nil, nil, nil
	}
	switch body[0] {
	case '[', '{':
	default:
		return nil, nil, fmt.Errorf("%w: want a list, got %s", ErrNotJSON, describe(body))
	}
	if !json.Valid(body) {
		return nil, nil, fmt.Errorf("%w: malformed list", ErrNotJSON)
	}
	if body[0] == '[' {
		return body, nil, nil
	}
	keys := slices.Concat(names, listWrappers, []string{"meta"})
	for depth := 0; depth < 2; depth++ {
		values := members(body, keys)
		meta, err := decodeMeta(values[len(keys)-1])
		if err != nil {
			return nil, nil, err
		}
		for _, inner := range values[:len(keys)-1] {
			if len(inner) > 0 && inner[0] == '[' {
				return inner, meta, nil
			}
			if bytes.Equal(inner, []byte("null")) {
				return nil, meta, nil
			}
		}
		data := values[slices.Index(keys, "data")]
		if len(data) == 0 || data[0] != '{' {
			break
		}
		body = data
	}
	return nil, nil, fmt.Errorf("%w: no list under %q", ErrNotJSON, keys[:len(keys)-1])
}

// members returns, for each of keys, the value that key has in the JSON
// object obj (the last one if it repeats, as encoding/json does), or nil.
// It walks obj's top level once without decoding or copying anything, so it
// relies on obj being valid JSON: callers check with json.Valid first.
func members(obj []byte, keys []string) []json.RawMessage {
	values := make([]json.RawMessage, len(keys))
	i := skipSpace(obj, 1)
	for i < len(obj) && obj[i] == '"' {
		keyEnd := stringEnd(obj, i)
		key := obj[i:keyEnd]
		i = skipSpace(obj, skipSpace(obj, keyEnd)+1) // past ':'
		valueEnd := valueEnd(obj, i)
		if k := keyIndex(key, keys); k >= 0 {
			values[k] = obj[i:valueEnd]
		}
		i = skipSpace(obj, valueEnd)
		if i < len(obj) && obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
	}
	return values
}

// keyIndex returns the index in keys of the quoted JSON string key, or -1.
func keyIndex(key []byte, keys []string) int {
	unquoted := key[1 : len(key)-1]
	if bytes.IndexByte(unquoted, '\\') >= 0 {
		var s string
		if json.Unmarshal(key, &s) != nil {
			return -1
		}
		unquoted = []byte(s)
	}
	for k, name := range keys {
		if string(unquoted) == name {
			return k
		}
	}
	return -1
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the JSON string starting at b[i].
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(b)
}

// valueEnd returns the index just past the JSON value starting at b[i].
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return len(b)
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
		return len(b)
	}
	j := i // a number, true, false or null
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
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
