package miosa

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/miosa-ai/miosa-go/internal/wire"
)

// sendForObject sends op and decodes the single object in its answer, under
// whichever envelope the server used; wrappers name the resource's own key.
func sendForObject[T any](ctx context.Context, c *Client, op call, opts []Option, wrappers ...string) (*T, error) {
	res, err := c.send(ctx, op, opts)
	if err != nil {
		return nil, err
	}
	if v, ok := decodeGuess[T](res.body, wrappers); ok {
		return v, nil
	}
	raw, err := wire.Object(res.body, wrappers...)
	if err == nil && raw == nil {
		err = errors.New("empty response body")
	}
	var v *T
	if err == nil {
		v, err = decodeObject[T](raw)
	}
	if err != nil {
		return nil, fmt.Errorf("miosa: %s %s: decoding the response: %w", op.method, op.path, err)
	}
	return v, nil
}

// decodeGuess decodes, in one pass, the object an answer most likely is:
// the value of its only member when that is one of wrappers, "data" or
// "result" ({"data":{...}}), or else, for a type that notes envelope keys
// as it decodes (a computer), the whole body. Finding the object first
// would read the body twice. It reports false when the guess does not
// hold, and the caller then reads the body carefully: a wrong single-member
// guess is not one JSON value, so it fails to decode (every type decoded
// here validates its input), and a bare guess that meets an envelope key
// holding an object is refused by the type.
func decodeGuess[T any](body []byte, wrappers []string) (*T, bool) {
	if inner, ok := wire.SoleMember(body, wrappers...); ok {
		v, err := decodeObject[T](inner)
		return v, err == nil
	}
	var v T
	if bare, ok := any(&v).(interface{ decodeBare([]byte, []string) bool }); ok && bare.decodeBare(body, wrappers) {
		return &v, true
	}
	return nil, false
}

// decodeObject decodes one JSON object. A type that decodes itself is
// handed the bytes directly: it validates them as it decodes (wire does
// not), and json.Unmarshal would validate them once more before calling it.
// The bytes belong to this call, so a type may keep them as its Raw.
func decodeObject[T any](raw []byte) (*T, error) {
	var v T
	var err error
	switch u := any(&v).(type) {
	case interface{ decodeOwned([]byte) error }:
		err = u.decodeOwned(raw)
	case json.Unmarshaler:
		err = u.UnmarshalJSON(raw)
	default:
		err = json.Unmarshal(raw, &v)
	}
	if err != nil {
		return nil, err
	}
	return &v, nil
}

// sendForList sends op and decodes the list in its answer, with the
// pagination meta when the server sent one.
func sendForList[T any](ctx context.Context, c *Client, op call, opts []Option, wrappers ...string) ([]T, *wire.Meta, error) {
	res, err := c.send(ctx, op, opts)
	if err != nil {
		return nil, nil, err
	}
	raw, meta, err := wire.List(res.body, wrappers...)
	var items []T
	if err == nil && raw != nil {
		err = json.Unmarshal(raw, &items)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("miosa: %s %s: decoding the response: %w", op.method, op.path, err)
	}
	return items, meta, nil
}

// errMissingID is the decoding error for an object that names no id: such
// an answer describes no resource the caller could use.
var errMissingID = errors.New(`the object has no "id"`)

// decodeResource decodes data into v and refuses an object that left *id
// empty: a resource (computer, template, build) is known by its id.
func decodeResource(data []byte, v any, id *string) error {
	if err := json.Unmarshal(data, v); err != nil {
		return err
	}
	if *id == "" {
		return errMissingID
	}
	return nil
}
