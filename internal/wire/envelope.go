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
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotJSON, err)
	}
	for _, key := range slices.Concat(names, objectWrappers) {
		if inner := bytes.TrimSpace(top[key]); len(inner) > 0 && inner[0] == '{' {
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
	case '[':
		if !json.Valid(body) {
			return nil, nil, fmt.Errorf("%w: malformed list", ErrNotJSON)
		}
		return body, nil, nil
	case '{':
	default:
		return nil, nil, fmt.Errorf("%w: want a list, got %s", ErrNotJSON, describe(body))
	}
	keys := slices.Concat(names, listWrappers)
	for depth := 0; depth < 2; depth++ {
		var top map[string]json.RawMessage
		if err := json.Unmarshal(body, &top); err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrNotJSON, err)
		}
		meta, err := decodeMeta(top["meta"])
		if err != nil {
			return nil, nil, err
		}
		for _, key := range keys {
			inner := bytes.TrimSpace(top[key])
			if len(inner) > 0 && inner[0] == '[' {
				return inner, meta, nil
			}
			if len(inner) > 0 && bytes.Equal(inner, []byte("null")) {
				return nil, meta, nil
			}
		}
		data := bytes.TrimSpace(top["data"])
		if len(data) == 0 || data[0] != '{' {
			break
		}
		body = data
	}
	return nil, nil, fmt.Errorf("%w: no list under %q", ErrNotJSON, keys)
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
